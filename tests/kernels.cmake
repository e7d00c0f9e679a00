# Matmul kernels (every ISA the CPU has against the portable path and float64), Q8_0, thread pool.
ms_c_test(test_kernels kernels)
set_tests_properties(test_kernels PROPERTIES FIXTURES_REQUIRED model_tiny TIMEOUT 300)
