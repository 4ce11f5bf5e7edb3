# Identity: JWT verification/minting, the `token` subcommand, and the
# server's self-signed certificate helpers.
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/jwt.c
  ${CMAKE_CURRENT_LIST_DIR}/certs.c
  ${CMAKE_CURRENT_LIST_DIR}/token_cli.c
)

tm_unit_test(test_jwt tests/server/test_jwt.c)
tm_unit_test(test_certs tests/server/test_certs.c)

# The JWT fuzz target. With clang and TM_FUZZ=ON it is a libFuzzer binary
# (run it by hand: ./fuzz_jwt -max_total_time=60 /tmp/new-corpus SRC/tests/fuzz/corpus/jwt;
# libFuzzer writes new inputs into the first directory); with any compiler
# the same target is linked to a small driver that feeds it a bounded number of
# mutated inputs, so every ctest run exercises the parser a little.
if(NOT DEFINED TM_FUZZ)
  option(TM_FUZZ "Build libFuzzer targets (clang only)" OFF)
endif()

if(TM_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
  # Coverage feedback must come from the library, not only the target file.
  # Another module's fragment may add the same flag; repeating it is harmless.
  # Everything that links the library then needs the sanitizer runtimes too.
  target_compile_options(telemed PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
  target_link_options(telemed INTERFACE -fsanitize=fuzzer-no-link,address,undefined)
  add_executable(fuzz_jwt ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_jwt.c)
  target_compile_options(fuzz_jwt PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_jwt PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_jwt PRIVATE telemed)
endif()

add_executable(fuzz_jwt_smoke
  ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_jwt.c
  ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_main.c)
target_link_libraries(fuzz_jwt_smoke PRIVATE telemed)
add_test(NAME fuzz_jwt_smoke COMMAND fuzz_jwt_smoke -runs=20000 -seed=1
  ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/jwt)
set_tests_properties(fuzz_jwt_smoke PROPERTIES TIMEOUT 120)
