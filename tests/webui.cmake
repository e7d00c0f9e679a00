# The chat page at / (server/webui/): end to end in headless Chromium (Debian's chromium, driven
# by playwright-core) against real servers on the pattern and tiny models. Skips with a message
# when /usr/bin/chromium is missing.
if(MS_NODE)
  add_test(NAME webui_e2e
           COMMAND ${MS_NODE} --test --test-reporter=spec ${CMAKE_CURRENT_SOURCE_DIR}/webui/webui.test.mjs)
  set_tests_properties(webui_e2e PROPERTIES
                       ENVIRONMENT "MOESERVE_BIN=$<TARGET_FILE:moeserve>;MS_MODELS=${MS_MODELS};MS_SOURCE_DIR=${CMAKE_SOURCE_DIR};NODE_PATH=${CMAKE_SOURCE_DIR}/node_modules;MS_PATTERN_MODEL=${MS_MODELS}/pattern"
                       FIXTURES_REQUIRED "model_tiny;model_pattern" TIMEOUT 180 LABELS "server;webui" RUN_SERIAL TRUE)
endif()
