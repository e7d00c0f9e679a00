# ggml super-block formats (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS; Q8_K activations): hand-computed
# blocks, quantizer error, every kernel against the dequantized float dot, SIMD against portable
# bit for bit, batch invariance.
ms_c_test(test_formats kernels)
set_tests_properties(test_formats PROPERTIES TIMEOUT 120)

# The C formats against the numpy reference (tests/reference/check_c_formats.py): dequantizers
# bit for bit for every K-quant, quantizers bit for bit where numpy's is ggml's.
add_executable(fmt_dump ${CMAKE_CURRENT_SOURCE_DIR}/kernels/fmt_dump.c)
target_link_libraries(fmt_dump PRIVATE ms_kernels ms_common)
target_include_directories(fmt_dump PRIVATE ${CMAKE_SOURCE_DIR})
add_test(NAME formats_vs_numpy
         COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/check_c_formats.py
                 $<TARGET_FILE:fmt_dump> Q4_K Q6_K Q5_K IQ4_XS Q3_K Q2_K)
set_tests_properties(formats_vs_numpy PROPERTIES TIMEOUT 300 LABELS kernels)

# ggml's 32-value block formats (Q4_0 Q4_1 Q5_0 Q5_1 IQ4_NL MXFP4, Q8_1 activations): quantizer
# bytes and dequantizer bits against the numpy reference's vectors, every kernel against the
# dequantized float dot, SIMD against portable bit for bit, batch invariance.
add_test(NAME formats_legacy_vectors
         COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/legacy_vectors.py
                 ${CMAKE_BINARY_DIR}/formats_legacy_vectors.bin)
set_tests_properties(formats_legacy_vectors PROPERTIES FIXTURES_SETUP formats_legacy_vectors TIMEOUT 120
                     LABELS kernels)
add_executable(test_formats_legacy ${CMAKE_CURRENT_SOURCE_DIR}/kernels/test_formats_legacy.c)
target_link_libraries(test_formats_legacy PRIVATE ms_kernels ms_common)
target_include_directories(test_formats_legacy PRIVATE ${CMAKE_SOURCE_DIR})
add_test(NAME test_formats_legacy COMMAND test_formats_legacy ${CMAKE_BINARY_DIR}/formats_legacy_vectors.bin)
set_tests_properties(test_formats_legacy PROPERTIES FIXTURES_REQUIRED formats_legacy_vectors TIMEOUT 120
                     LABELS kernels)

# NVFP4 (engine/kernels/nvfp4.h): hand-computed E4M3/E2M1 cases, quantizer bytes and dequantizer
# bits against the numpy reference (tests/reference/nvfp4.py), the kernels against the float64
# dot of dequantized rows, each SIMD kernel against the portable one bit for bit, batch invariance.
add_test(NAME formats_nvfp4_vectors
         COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/nvfp4.py ${CMAKE_BINARY_DIR}/formats_nvfp4_vectors.bin)
set_tests_properties(formats_nvfp4_vectors PROPERTIES FIXTURES_SETUP formats_nvfp4_vectors TIMEOUT 60 LABELS kernels)
add_executable(test_nvfp4 ${CMAKE_CURRENT_SOURCE_DIR}/kernels/test_nvfp4.c)
target_link_libraries(test_nvfp4 PRIVATE ms_kernels ms_common)
target_include_directories(test_nvfp4 PRIVATE ${CMAKE_SOURCE_DIR})
add_test(NAME test_nvfp4 COMMAND test_nvfp4 ${CMAKE_BINARY_DIR}/formats_nvfp4_vectors.bin)
set_tests_properties(test_nvfp4 PROPERTIES FIXTURES_REQUIRED formats_nvfp4_vectors TIMEOUT 60 LABELS kernels)
