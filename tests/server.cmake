# HTTP server tests (server/): C unit tests of the output parsers, then node tests that start a
# real `moeserve serve` on a free loopback port and drive it with the official openai SDK and
# with raw HTTP. Each node test file starts and stops its own server.
foreach(t output_parser openai resp_store)
  add_executable(test_${t} ${CMAKE_CURRENT_SOURCE_DIR}/server/test_${t}.c)
  target_link_libraries(test_${t} PRIVATE ms_server ms_common)
  target_include_directories(test_${t} PRIVATE ${CMAKE_SOURCE_DIR})
  add_test(NAME server_${t} COMMAND test_${t})
endforeach()

set(MS_SERVER_TEST_ENV
    "MOESERVE_BIN=$<TARGET_FILE:moeserve>;MS_MODELS=${MS_MODELS};MS_SOURCE_DIR=${CMAKE_SOURCE_DIR};MS_PYTHON=${MS_PYTHON};NODE_PATH=${CMAKE_SOURCE_DIR}/node_modules")
foreach(t api sdk stream_raw ops thinking_tools structured expert_stats)
  add_test(NAME server_${t}
           COMMAND ${MS_NODE} --test --test-reporter=spec ${CMAKE_CURRENT_SOURCE_DIR}/server/${t}.test.mjs)
  set_tests_properties(server_${t} PROPERTIES ENVIRONMENT "${MS_SERVER_TEST_ENV}"
                       FIXTURES_REQUIRED model_tiny TIMEOUT 180 LABELS server)
endforeach()
# Under the sanitizers each constrained request costs about ten times more (190 s for the full 20
# schemas x 10 seeds); 3 seeds still run every schema through the sanitized grammar and sampler.
if(MS_SANITIZED_BUILD)
  set_property(TEST server_structured APPEND PROPERTY ENVIRONMENT "MS_STRUCTURED_SEEDS=3")
endif()
# Expert load also on a mixed (sparse-step) and a dense model, made by tests/reference.cmake.
set_tests_properties(server_expert_stats PROPERTIES
                     FIXTURES_REQUIRED "model_tiny;ref_model_tiny-sparse-step;ref_model_tiny-dense")
# Thinking, budgets and tools need the constructed pattern model (tests/pattern_model.cmake); the
# test skips with a message when tools/make_pattern_model.py is absent.
if(EXISTS ${CMAKE_SOURCE_DIR}/tools/make_pattern_model.py)
  set_tests_properties(server_thinking_tools PROPERTIES FIXTURES_REQUIRED "model_tiny;model_pattern"
                       ENVIRONMENT "${MS_SERVER_TEST_ENV};MS_PATTERN_MODEL=${MS_MODELS}/pattern")
endif()

# The Responses API, Anthropic's Messages API and LangChain's ChatOpenAI, each driven by its real
# client against the pattern model (expected outputs from its pattern.json).
foreach(t responses_api anthropic_api langchain)
  add_test(NAME server_${t}
           COMMAND ${MS_NODE} --test --test-reporter=spec ${CMAKE_CURRENT_SOURCE_DIR}/server/${t}.test.mjs)
  set_tests_properties(server_${t} PROPERTIES FIXTURES_REQUIRED model_tiny TIMEOUT 180 LABELS server
                       ENVIRONMENT "${MS_SERVER_TEST_ENV}")
  if(EXISTS ${CMAKE_SOURCE_DIR}/tools/make_pattern_model.py)
    set_tests_properties(server_${t} PROPERTIES FIXTURES_REQUIRED "model_tiny;model_pattern"
                         ENVIRONMENT "${MS_SERVER_TEST_ENV};MS_PATTERN_MODEL=${MS_MODELS}/pattern")
  endif()
endforeach()
