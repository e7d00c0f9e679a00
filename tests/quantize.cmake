# `moeserve quantize` (cli/cmd_quantize.c, engine/model/gguf_*.c, quant_scheme.c) and
# `--quantize TYPE` at load. Each scheme on the tiny checkpoint (and the K-quants on the 256-wide
# one, gguf-w256 from tests/gguf_tools.cmake): the file against tools/make_gguf.py's for the same
# type (identical header, identical float tensors, Q8_0 identical up to its tie rounding, other
# formats at least as accurate), then llama.cpp (node-llama-cpp) loads it and its
# log-probabilities match the reference on the dequantized weights with llama.cpp's activation
# quantization (tolerances: docs/GGUF.md). A scheme that needs a format this build lacks must be
# refused with one line naming it (tests/quantize/check_quantize.py); the same test checks the
# file once the format is registered. Bad input: tests/quantize/bad_input.py.

set(MS_QUANTIZE_DIR ${CMAKE_CURRENT_SOURCE_DIR}/quantize)
set(P_QUANT_CHAT 151644,872,198,3838,374,279,6722,315,9625,30,151645,198,151644,77091,198)

add_test(NAME quantize_bad_input
         COMMAND ${MS_PYTHON} ${MS_QUANTIZE_DIR}/bad_input.py $<TARGET_FILE:moeserve> ${MS_MODELS}/tiny
                 ${CMAKE_BINARY_DIR}/quantize/bad_input)
set_tests_properties(quantize_bad_input PROPERTIES FIXTURES_REQUIRED model_tiny TIMEOUT 120 LABELS "gguf;quantize")

# ms_quantize(NAME MODEL FIXTURE TYPE [TOL [GREEDY]]): TOL given and node found: llama.cpp too
# (in the normal build only)
function(ms_quantize name model fixture type)
  set(llama)
  # llama.cpp's side runs none of our C code: the normal build's run of the same file checks it
  if(MS_NODE AND ARGC GREATER 4 AND NOT MS_SANITIZED_BUILD)
    set(llama --tol ${ARGV4} --prompt-ids ${P_QUANT_CHAT})
    if(ARGC GREATER 5)
      list(APPEND llama --greedy ${ARGV5})
    endif()
  endif()
  add_test(NAME quantize_${name}
           COMMAND ${MS_PYTHON} ${MS_QUANTIZE_DIR}/check_quantize.py $<TARGET_FILE:moeserve> ${MS_MODELS}/${model}
                   --work ${CMAKE_BINARY_DIR}/quantize/${name} --type ${type} ${llama})
  set_tests_properties(quantize_${name} PROPERTIES FIXTURES_REQUIRED ${fixture} TIMEOUT 600 LABELS "gguf;quantize"
                       ENVIRONMENT "MS_NODE=${MS_NODE};NODE_PATH=${CMAKE_SOURCE_DIR}/node_modules")
endfunction()

# the tiny model (rows of 64 and 32): no K-quant blocks fit, so the K schemes fall back
ms_quantize(tiny_f32       tiny model_tiny f32       0.01 8)
ms_quantize(tiny_f16       tiny model_tiny f16       0.01 8)
ms_quantize(tiny_bf16      tiny model_tiny bf16      0.05 8)
# no greedy continuation on tiny at q8_0: docs/GGUF.md's open finding (llama.cpp after a 16th token)
ms_quantize(tiny_q8_0      tiny model_tiny q8_0      0.2)
foreach(t q4_0 q4_1 q5_0 q5_1 iq4_nl mxfp4_moe q4_k_m q5_k_m q3_k_m q2_k iq4_xs q6_k)
  ms_quantize(tiny_${t}    tiny model_tiny ${t}      0.2 4)
endforeach()

if(MS_NODE)  # gguf-w256 is made only where the llama.cpp tests run
  foreach(t q8_0 q4_k_m q6_k q5_k_m q3_k_m q2_k iq4_xs)
    ms_quantize(w256_${t}  gguf-w256 model_gguf_w256 ${t} 0.2 4)
  endforeach()
  # --quantize TYPE at load: the same weights as the file (tests/quantize/check_load_quant.py)
  foreach(t q4_k_m q6_k)
    add_test(NAME quantize_load_w256_${t}
             COMMAND ${MS_PYTHON} ${MS_QUANTIZE_DIR}/check_load_quant.py $<TARGET_FILE:moeserve>
                     ${MS_MODELS}/gguf-w256 --work ${CMAKE_BINARY_DIR}/quantize/load_w256_${t} --type ${t}
                     --prompt-ids ${P_QUANT_CHAT} --greedy 6)
    set_tests_properties(quantize_load_w256_${t} PROPERTIES FIXTURES_REQUIRED model_gguf_w256 TIMEOUT 600
                         LABELS "gguf;quantize")
  endforeach()
  # --quantize nvfp4 (a load-time scheme, no GGUF type): the engine's logits against numpy's
  # NVFP4 forward, their distance from BF16, generate (tests/quantize/check_load_nvfp4.py)
  add_test(NAME quantize_load_w256_nvfp4
           COMMAND ${MS_PYTHON} ${MS_QUANTIZE_DIR}/check_load_nvfp4.py $<TARGET_FILE:moeserve>
                   ${MS_MODELS}/gguf-w256 --work ${CMAKE_BINARY_DIR}/quantize/load_w256_nvfp4
                   --prompt-ids ${P_QUANT_CHAT})
  set_tests_properties(quantize_load_w256_nvfp4 PROPERTIES FIXTURES_REQUIRED model_gguf_w256 TIMEOUT 300
                       LABELS quantize)
endif()

# A GGUF as the input (tests/quantize/check_requant.py): checkpoint -> bf16 GGUF -> TYPE is
# byte-identical to checkpoint -> TYPE, TYPE -> TYPE copies every tensor, a quantized GGUF -> q8_0
# against numpy; on gguf-w256, llama.cpp loads the result.
# ms_requant(NAME MODEL FIXTURE TYPE FROM_QUANT [TOL GREEDY])
function(ms_requant name model fixture type from)
  set(llama)
  if(MS_NODE AND ARGC GREATER 6)
    set(llama --tol ${ARGV5} --prompt-ids ${P_QUANT_CHAT} --greedy ${ARGV6})
  endif()
  add_test(NAME quantize_requant_${name}
           COMMAND ${MS_PYTHON} ${MS_QUANTIZE_DIR}/check_requant.py $<TARGET_FILE:moeserve> ${MS_MODELS}/${model}
                   --work ${CMAKE_BINARY_DIR}/quantize/requant_${name} --type ${type} --from-quant ${from} ${llama})
  set_tests_properties(quantize_requant_${name} PROPERTIES FIXTURES_REQUIRED ${fixture} TIMEOUT 600
                       LABELS "gguf;quantize" ENVIRONMENT "MS_NODE=${MS_NODE};NODE_PATH=${CMAKE_SOURCE_DIR}/node_modules")
endfunction()
ms_requant(tiny_q4_k_m tiny model_tiny q4_k_m q8_0)
if(MS_NODE)
  ms_requant(w256_q8_0   gguf-w256 model_gguf_w256 q8_0   f32    0.2 4)
  ms_requant(w256_q4_k_m gguf-w256 model_gguf_w256 q4_k_m q8_0   0.2 4)
endif()

# The GGUF writer itself: every value type, arrays, alignment, offsets, padding, read back by the
# independent Python reader; error paths (duplicates, overflowing data, incomplete tensors, a
# target that appears meanwhile) in C.
add_executable(test_gguf_writer ${MS_QUANTIZE_DIR}/test_gguf_writer.c)
target_link_libraries(test_gguf_writer PRIVATE ms_model ms_common)
target_include_directories(test_gguf_writer PRIVATE ${CMAKE_SOURCE_DIR})
add_test(NAME quantize_gguf_writer
         COMMAND ${MS_PYTHON} ${MS_QUANTIZE_DIR}/check_gguf_writer.py $<TARGET_FILE:test_gguf_writer>
                 ${CMAKE_BINARY_DIR}/quantize/gguf_writer)
set_tests_properties(quantize_gguf_writer PROPERTIES TIMEOUT 60 LABELS "gguf;quantize")
