# GGUF tools (tools/gguf_write.py, tools/make_gguf.py) and the numpy block formats
# (tests/reference/ggml_formats.py), checked by hand-built blocks and round trips, and against
# llama.cpp itself (node-llama-cpp@3.21.1's prebuilt CPU library, tests/llamacpp/): a GGUF made
# from the tiny checkpoint must load there and give the same next-token log-probabilities as the
# numpy reference forward run on the same dequantized weights. Tolerances: docs/GGUF.md.

add_test(NAME gguf_formats
         COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/test_ggml_formats.py)
set_tests_properties(gguf_formats PROPERTIES TIMEOUT 60 LABELS gguf)
# the numpy formats against ggml's own library (node-llama-cpp's libggml-base.so, via ctypes):
# every dequantizer bit for bit, and the Q2_K/Q3_K/Q5_K/IQ4_XS quantizers bit for bit; also the
# C quantizers of every super-block format (tests/kernels/fmt_dump, tests/formats.cmake)
add_test(NAME gguf_ggml_quants
         COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/llamacpp/check_ggml_quants.py
                 --fmt-dump $<TARGET_FILE:fmt_dump>)
set_tests_properties(gguf_ggml_quants PROPERTIES TIMEOUT 120 LABELS gguf)

if(MS_NODE)
  set(P_GGUF_CHAT 151644,872,198,3838,374,279,6722,315,9625,30,151645,198,151644,77091,198)
  # K-quants need rows that are multiples of 256: the tiny shape at 256 wide
  add_test(NAME gguf_model_w256
           COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/ensure_model.py ${MS_MODELS}/gguf-w256
                   --preset tiny --hidden-size 256 --moe-intermediate-size 256
                   --intermediate-size 512 --head-dim 64)
  set_tests_properties(gguf_model_w256 PROPERTIES FIXTURES_SETUP model_gguf_w256 TIMEOUT 120
                       LABELS gguf)
  # ms_gguf_llamacpp(NAME TYPE TOL args...): on the tiny model; MODEL w256 in args switches
  function(ms_gguf_llamacpp name type tol)
    set(model tiny)
    set(fixture model_tiny)
    set(rest ${ARGN})
    if(rest AND "${ARGV3}" STREQUAL "w256")
      list(REMOVE_AT rest 0)
      set(model gguf-w256)
      set(fixture model_gguf_w256)
    endif()
    add_test(NAME gguf_llamacpp_${name}
             COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/llamacpp/compare_llamacpp.py
                     ${MS_MODELS}/${model} --work ${CMAKE_BINARY_DIR}/gguf/${name} --type ${type}
                     --tol ${tol} --prompt-ids ${P_GGUF_CHAT} ${rest})
    set_tests_properties(gguf_llamacpp_${name} PROPERTIES FIXTURES_REQUIRED ${fixture}
                         TIMEOUT 120 LABELS gguf ENVIRONMENT "MS_NODE=${MS_NODE};NODE_PATH=${CMAKE_SOURCE_DIR}/node_modules")
  endfunction()
  ms_gguf_llamacpp(f32       f32       0.01 --greedy 8)
  ms_gguf_llamacpp(f16       f16       0.01 --greedy 8)
  ms_gguf_llamacpp(bf16      bf16      0.05 --greedy 8)
  ms_gguf_llamacpp(q8_0      q8_0      0.2)
  ms_gguf_llamacpp(q8_0_split3 q8_0    0.2 --split 3)
  ms_gguf_llamacpp(q4_0      q4_0      0.2 --greedy 4)
  ms_gguf_llamacpp(q4_1      q4_1      0.2 --greedy 4)
  ms_gguf_llamacpp(q5_0      q5_0      0.2 --greedy 4)
  ms_gguf_llamacpp(q5_1      q5_1      0.2 --greedy 4)
  ms_gguf_llamacpp(iq4_nl    iq4_nl    0.2 --greedy 4)
  ms_gguf_llamacpp(mxfp4_moe mxfp4_moe 0.2 --greedy 4)
  ms_gguf_llamacpp(w256_q8_0   q8_0   0.2 w256 --greedy 4)
  ms_gguf_llamacpp(w256_q4_k_m q4_k_m 0.2 w256 --greedy 4)
  ms_gguf_llamacpp(w256_q6_k   q6_k   0.2 w256 --greedy 4)
  ms_gguf_llamacpp(w256_q5_k_m q5_k_m 0.2 w256 --greedy 4)
  ms_gguf_llamacpp(w256_iq4_xs iq4_xs 0.2 w256 --greedy 4)
  ms_gguf_llamacpp(w256_q3_k_m q3_k_m 0.2 w256 --greedy 4)
  ms_gguf_llamacpp(w256_q2_k   q2_k   0.2 w256 --greedy 4)
  # quantizing the 151936 x 256 embedding and output to these types in numpy takes most of these
  # tests' time (35-70 s alone on this 2-core machine)
  set_tests_properties(gguf_llamacpp_w256_q5_k_m gguf_llamacpp_w256_iq4_xs gguf_llamacpp_w256_q3_k_m
                       gguf_llamacpp_w256_q2_k PROPERTIES TIMEOUT 240)
endif()

# --load-mode copy against mmap (the fixture model is several 64 MB copy chunks)
if(MS_NODE)
  add_test(NAME load_modes_copy_equals_mmap
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/engine/load_modes.sh $<TARGET_FILE:moeserve>
                   ${CMAKE_SOURCE_DIR}/tools/make_gguf.py ${MS_MODELS}/gguf-w256 ${CMAKE_BINARY_DIR}/load_modes)
  set_tests_properties(load_modes_copy_equals_mmap PROPERTIES FIXTURES_REQUIRED model_gguf_w256 LABELS gguf TIMEOUT 300)
endif()
