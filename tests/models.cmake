# Generated test checkpoints shared by several test areas (fixtures: tests that need a model
# declare FIXTURES_REQUIRED <name>).

add_test(NAME make_model_tiny
         COMMAND ${MS_PYTHON} ${CMAKE_SOURCE_DIR}/tools/make_model.py ${MS_MODELS}/tiny --preset tiny)
set_tests_properties(make_model_tiny PROPERTIES FIXTURES_SETUP model_tiny)
