# The constructed "pattern" model (tools/make_pattern_model.py): weights built by hand so that
# greedy decoding thinks (<think>...</think>), answers, calls tools (<tool_call>...</tool_call>,
# also two in parallel), answers after a tool result and, on request, thinks for ~280 tokens.
# Server tests that need such output declare FIXTURES_REQUIRED model_pattern and read
# ${MS_MODELS}/pattern/pattern.json (requests, prompt ids and the exact expected completions).

add_test(NAME make_model_pattern
         COMMAND ${MS_PYTHON} ${CMAKE_SOURCE_DIR}/tools/make_pattern_model.py ${MS_MODELS}/pattern)
set_tests_properties(make_model_pattern PROPERTIES FIXTURES_SETUP model_pattern TIMEOUT 120)

# every case's completion from `moeserve generate` (one process per case, and all batched;
# sanitized, where each process start costs seconds, the batch and the first three alone)
set(ms_pattern_single)
if(MS_SANITIZED_BUILD)
  set(ms_pattern_single --single-limit 3)
endif()
add_test(NAME pattern_model_engine
         COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pattern_model/check_pattern.py
                 $<TARGET_FILE:moeserve> --model ${MS_MODELS}/pattern --no-reference ${ms_pattern_single})
# every case teacher-forced through the numpy reference, two decoded greedily step by step
add_test(NAME pattern_model_reference
         COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pattern_model/check_pattern.py
                 $<TARGET_FILE:moeserve> --model ${MS_MODELS}/pattern --no-engine
                 --ref-greedy chat_nothink,tool_result_nothink)
set_tests_properties(pattern_model_engine pattern_model_reference PROPERTIES
                     FIXTURES_REQUIRED model_pattern TIMEOUT 300 LABELS pattern)
