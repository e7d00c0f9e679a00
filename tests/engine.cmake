# Engine: batching invariants, prefix cache, aborts (tiny model).
ms_c_test(test_engine)
set_tests_properties(test_engine PROPERTIES FIXTURES_REQUIRED model_tiny TIMEOUT 600)
ms_c_test(test_sampler)
ms_c_test(test_kv_block_pool)
