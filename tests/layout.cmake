# The source tree's dependency rules (docs/ARCHITECTURE.md, "Layers"): no loop between modules,
# through includes or through calls (nm on the libraries' objects), and every folder including
# only the folders its library links. The selftest proves the checker reports each kind.
add_test(NAME layout_dependencies
         COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/layout/check_deps.py ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
add_test(NAME layout_dependencies_selftest
         COMMAND ${MS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/layout/check_deps.py --selftest)
