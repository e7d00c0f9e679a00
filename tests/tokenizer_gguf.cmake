# The tokenizer and chat template from a GGUF (tokenizer/tok_vocab.c, tmpl_load_gguf): a GGUF made
# from the tiny checkpoint by tools/make_gguf.py, its tokenizer.* keys dumped by
# tests/tokenizer/gguf_tokdump.py (tools/gguf_write.py's reader), must give the same ids, text and
# renderings as the checkpoint's tokenizer.json / tokenizer_config.json on every tokenizer and
# template case. The C side reads the dump, not the GGUF, so these tests need no GGUF parser.
set(MS_TOKGGUF_WORK ${CMAKE_BINARY_DIR}/tokgguf)
set(MS_TOKGGUF_DIR ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer)

foreach(name tok_gguf_check tok_vocab_unit)
  add_executable(${name} ${MS_TOKGGUF_DIR}/${name}.c)
  target_link_libraries(${name} PRIVATE ms_tokenizer ms_common)
endforeach()

# tok_load_vocab on hand-made vocabularies: the token-type mapping and every refusal.
add_test(NAME tok_gguf_vocab_unit COMMAND tok_vocab_unit)
set_tests_properties(tok_gguf_vocab_unit PROPERTIES LABELS "tokenizer;gguf" TIMEOUT 60
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})

# The GGUFs and their dumps: the tiny checkpoint as it is, and with the Qwen3-Coder-style template
# as its chat_template.jinja; the tokenizer corpus of the tok_corpus test (gen_corpus.js).
set(ms_tokgguf_setup
    "${MS_PYTHON} ${MS_TOKGGUF_DIR}/gguf_tokdump.py make ${MS_MODELS}/tiny ${MS_TOKGGUF_WORK} tiny && \
${MS_PYTHON} ${MS_TOKGGUF_DIR}/gguf_tokdump.py make ${MS_MODELS}/tiny ${MS_TOKGGUF_WORK} coder \
--jinja ${CMAKE_CURRENT_SOURCE_DIR}/template/models/qwen3-coder-style/chat_template.jinja")
if(MS_NODE)  # the corpus holds the hand cases
  string(APPEND ms_tokgguf_setup " && ${MS_NODE} ${MS_TOKGGUF_DIR}/gen_corpus.js ${MS_TOKGGUF_WORK}/corpus.jsonl")
  set(ms_tokgguf_cases ${MS_TOKGGUF_WORK}/corpus.jsonl)
else()
  set(ms_tokgguf_cases ${MS_TOKGGUF_DIR}/hand_cases.json)
endif()
add_test(NAME tok_gguf_make COMMAND sh -c "${ms_tokgguf_setup}")
set_tests_properties(tok_gguf_make PROPERTIES FIXTURES_REQUIRED model_tiny FIXTURES_SETUP tok_gguf
                     LABELS "tokenizer;gguf" TIMEOUT 300)

# Every corpus case (the hand cases and, with node, the generated >2,000): ids and text identical
# with specials on, off and masked; the whole vocabulary identical.
add_test(NAME tok_gguf_corpus
         COMMAND tok_gguf_check tokenizer ${MS_MODELS}/tiny ${MS_TOKGGUF_WORK}/tiny.tokdump ${ms_tokgguf_cases})
# tests/tokenizer/tok_unit.c's cases (lookups, lossy and streaming decode, threads, ...) on the
# tokenizer from the GGUF.
add_test(NAME tok_gguf_unit COMMAND tok_unit ${MS_TOKGGUF_WORK}/tiny.tokdump)
# Every conversation of tests/template/cases.json, through the checkpoint's template and through
# the Qwen3-Coder-style one.
add_test(NAME tmpl_gguf_conversations
         COMMAND tok_gguf_check template ${MS_MODELS}/tiny ${MS_TOKGGUF_WORK}/tiny.tokdump
                 ${CMAKE_CURRENT_SOURCE_DIR}/template/cases.json ${MS_TOKGGUF_WORK}/probe-tiny)
add_test(NAME tmpl_gguf_conversations_coder_style
         COMMAND tok_gguf_check template ${MS_TOKGGUF_WORK}/coder-ckpt ${MS_TOKGGUF_WORK}/coder.tokdump
                 ${CMAKE_CURRENT_SOURCE_DIR}/template/cases.json ${MS_TOKGGUF_WORK}/probe-coder)
set_tests_properties(tok_gguf_corpus tok_gguf_unit tmpl_gguf_conversations tmpl_gguf_conversations_coder_style
                     PROPERTIES FIXTURES_REQUIRED tok_gguf LABELS "tokenizer;gguf" TIMEOUT 300)
