# Hardening (issue 8): hostile requests, misbehaving clients and engine trouble against a real
# `moeserve serve` on loopback (node tests, raw HTTP over node:net; tests/hardening/). Label
# `hardening`; together well under 3 minutes. The engine-trouble test uses the server's test hooks
# MOESERVE_TEST_STALL_ENGINE_MS, MOESERVE_TEST_FAIL_AFTER_TOKENS and
# MOESERVE_TEST_KILL_ENGINE_AFTER_STEPS; kv_pressure overloads a tiny KV pool and compares every
# answer with the same request served alone.
set(MS_HARDENING_ENV
    "MOESERVE_BIN=$<TARGET_FILE:moeserve>;MS_MODELS=${MS_MODELS};MS_SOURCE_DIR=${CMAKE_SOURCE_DIR};MS_PYTHON=${MS_PYTHON};NODE_PATH=${CMAKE_SOURCE_DIR}/node_modules")
if(MS_NODE)
  foreach(t table clients engine kv_pressure)
    add_test(NAME hardening_${t}
             COMMAND ${MS_NODE} --test --test-reporter=spec ${CMAKE_CURRENT_SOURCE_DIR}/hardening/${t}.test.mjs)
    set_tests_properties(hardening_${t} PROPERTIES ENVIRONMENT "${MS_HARDENING_ENV}" LABELS hardening
                         FIXTURES_REQUIRED model_tiny TIMEOUT 150)
  endforeach()
endif()
