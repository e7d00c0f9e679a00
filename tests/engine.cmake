# Engine: batching invariants, prefix cache, aborts (tiny model).
ms_c_test(test_engine engine)
set_tests_properties(test_engine PROPERTIES FIXTURES_REQUIRED model_tiny TIMEOUT 600)
ms_c_test(test_sampler engine)
ms_c_test(test_spec_ngram engine)
ms_c_test(test_kv_block_pool engine)
add_test(NAME generate_prompt_file_batched_equals_alone
         COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/engine/test_generate_batch.py
                 $<TARGET_FILE:moeserve> ${MS_MODELS}/tiny ${CMAKE_BINARY_DIR}/generate_batch)
set_tests_properties(generate_prompt_file_batched_equals_alone PROPERTIES FIXTURES_REQUIRED model_tiny)
# forward --prompt-ids-file (bench/quant_e2e.py's many prompts per load) = each prompt alone
add_test(NAME forward_prompt_file_equals_alone
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/engine/forward_file.sh $<TARGET_FILE:moeserve> ${MS_MODELS}/tiny
                 ${CMAKE_BINARY_DIR}/forward_file)
set_tests_properties(forward_prompt_file_equals_alone PROPERTIES FIXTURES_REQUIRED model_tiny TIMEOUT 120)
