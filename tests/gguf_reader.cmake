# The GGUF reader (engine/model/gguf.c, gguf_config.c, the .gguf branch of weights.c): a GGUF that
# tools/make_gguf.py makes from the 256-wide tiny checkpoint must give moeserve the logits and the
# greedy ids of the checkpoint it came from (float types: the same weights) and agree with
# llama.cpp (node-llama-cpp) on the same file within docs/GGUF.md's tolerances; malformed files
# (tests/gguf/test_gguf_hostile.py) are refused with one line naming the file and the problem.

set(P_GGUF_READER 151644,872,198,3838,374,279,6722,315,9625,30,151645,198,151644,77091,198)

# ms_gguf_reader(NAME TYPE LLAMA_TOL args...)
function(ms_gguf_reader name type tol)
  add_test(NAME gguf_reader_${name}
           COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/gguf/compare_gguf_reader.py ${MS_MODELS}/gguf-w256
                   --moeserve $<TARGET_FILE:moeserve> --work ${CMAKE_BINARY_DIR}/gguf_reader/${name}
                   --type ${type} --tol ${tol} --prompt-ids ${P_GGUF_READER} ${ARGN})
  set_tests_properties(gguf_reader_${name} PROPERTIES FIXTURES_REQUIRED model_gguf_w256 TIMEOUT 300
                       LABELS gguf ENVIRONMENT "MS_NODE=${MS_NODE};NODE_PATH=${CMAKE_SOURCE_DIR}/node_modules")
endfunction()

if(MS_NODE)
  # the checkpoint is BF16: F32 and BF16 files hold its values exactly, F16 too at these magnitudes
  ms_gguf_reader(f32          f32    0.01 --hf-tol 1e-3)
  ms_gguf_reader(f16          f16    0.01 --hf-tol 1e-3)
  ms_gguf_reader(bf16         bf16   0.05 --hf-tol 1e-3)
  ms_gguf_reader(bf16_split3  bf16   0.05 --hf-tol 1e-3 --split 3)
  ms_gguf_reader(q8_0_split3  q8_0   0.2 --split 3)
  ms_gguf_reader(q4_k_m       q4_k_m 0.2)
  # every other weight format, each in the scheme that uses it, written by `moeserve quantize`
  foreach(t q4_0 q4_1 q5_0 q5_1 iq4_nl mxfp4_moe q6_k q5_k_m q3_k_m q2_k iq4_xs)
    ms_gguf_reader(${t}_quantized ${t} 0.2 --maker moeserve)
  endforeach()
endif()

# malformed files: exit 1 and one line naming the file and the problem, no crash (no sanitizer
# report in the Sanitize build)
add_test(NAME gguf_hostile
         COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/gguf/test_gguf_hostile.py $<TARGET_FILE:moeserve>
                 ${CMAKE_BINARY_DIR}/gguf_hostile)
set_tests_properties(gguf_hostile PROPERTIES TIMEOUT 120 LABELS gguf)

# The reader's API against tools/gguf_write.py's Python reader: the fuzz corpus's every-type file
# (v3 and v2) and a make_gguf.py file of the 256-wide model in two parts, BF16 (the real Qwen3
# vocabulary, merges, token types and chat template: what the tokenizer glue reads)
add_executable(gguf_dump ${CMAKE_CURRENT_SOURCE_DIR}/gguf/gguf_dump.c)
target_link_libraries(gguf_dump PRIVATE ms_model ms_common)
target_include_directories(gguf_dump PRIVATE ${CMAKE_SOURCE_DIR})
foreach(f types types_v2 qwen3moe)
  add_test(NAME gguf_dump_${f}
           COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/gguf/compare_gguf_dump.py $<TARGET_FILE:gguf_dump>
                   ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/gguf/${f}.gguf)
  set_tests_properties(gguf_dump_${f} PROPERTIES TIMEOUT 60 LABELS gguf)
endforeach()
if(MS_NODE)
  set(d ${CMAKE_BINARY_DIR}/gguf_dump)
  add_test(NAME gguf_dump_w256_split2
           COMMAND sh -c "mkdir -p ${d} && ${MS_PYTHON} ${CMAKE_SOURCE_DIR}/tools/make_gguf.py ${MS_MODELS}/gguf-w256 ${d}/m.gguf --type bf16 --split 2 && ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/gguf/compare_gguf_dump.py $<TARGET_FILE:gguf_dump> ${d}/m-00001-of-00002.gguf ${d}/m-00002-of-00002.gguf")
  set_tests_properties(gguf_dump_w256_split2 PROPERTIES FIXTURES_REQUIRED model_gguf_w256 TIMEOUT 180 LABELS gguf)
endif()

# The chat template of a GGUF: every conversation of tests/template/cases.json rendered from the
# file's tokenizer.chat_template must equal jinja2's rendering of the checkpoint's template.
add_test(NAME gguf_template_cases
         COMMAND sh -c "${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/gguf/write_tokenizer_gguf.py ${MS_MODELS}/tiny ${CMAKE_BINARY_DIR}/gguf_tokenizer.gguf && ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/template/cli_check.py $<TARGET_FILE:moeserve> ${MS_MODELS}/tiny ${CMAKE_CURRENT_SOURCE_DIR}/template/cases.json ${CMAKE_BINARY_DIR}/gguf_tokenizer.gguf")
set_tests_properties(gguf_template_cases PROPERTIES FIXTURES_REQUIRED model_tiny TIMEOUT 120 LABELS gguf)
