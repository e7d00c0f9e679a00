# Speculative decoding by prompt lookup (engine/spec_ngram.c) through the server: the constructed
# copy model (tools/make_copy_model.py, a bigram model over a token cycle: its answers repeat its
# prompts, so drafts are taken) and the pattern model (thinking budgets, tools, grammars), each
# request's output with drafts equal to its output without them.
add_test(NAME make_model_copy_tiny
         COMMAND ${MS_PYTHON} ${CMAKE_SOURCE_DIR}/tools/make_copy_model.py ${MS_MODELS}/copy-tiny --preset tiny --verify)
set_tests_properties(make_model_copy_tiny PROPERTIES FIXTURES_SETUP model_copy_tiny TIMEOUT 120)
add_test(NAME server_speculative
         COMMAND ${MS_NODE} --test --test-reporter=spec ${CMAKE_CURRENT_SOURCE_DIR}/server/speculative.test.mjs)
set_tests_properties(server_speculative PROPERTIES
                     ENVIRONMENT "${MS_SERVER_TEST_ENV};MS_COPY_MODEL=${MS_MODELS}/copy-tiny;MS_PATTERN_MODEL=${MS_MODELS}/pattern"
                     FIXTURES_REQUIRED "model_copy_tiny;model_pattern" TIMEOUT 180 LABELS server)
