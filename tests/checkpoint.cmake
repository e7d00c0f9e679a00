# Checkpoint loading: every kind of broken checkpoint is refused with a one-line message.
add_test(NAME checkpoint_bad_inputs
         COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint/test_bad_checkpoints.py
                 $<TARGET_FILE:moeserve> ${MS_MODELS}/tiny ${CMAKE_BINARY_DIR}/bad_checkpoints)
set_tests_properties(checkpoint_bad_inputs PROPERTIES FIXTURES_REQUIRED model_tiny)
