# tests/fuzz: the fuzz targets of the HTTP Range parser, the encrypted-recording
# reader and the media socket's datagrams (fuzz_jwt, fuzz_sdp and fuzz_rtp_rtcp
# live beside their modules). Each has a gcc smoke run through fuzz_main.c in
# every build, and a libFuzzer binary when the build is clang with TM_FUZZ=ON.
#
# fuzz_libfuzzer (when clang is installed) is the coverage-guided run: it
# builds every target with clang in its own build tree and runs each for
# TM_FUZZ_SECONDS (default 30) on its committed corpus; tests/fuzz/README.md
# has the longer run by hand.
set(TM_FUZZ_NEW fuzz_http_range fuzz_rec_reader fuzz_media_datagram)

foreach(t IN LISTS TM_FUZZ_NEW)
  if(TM_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
    add_executable(${t} ${CMAKE_CURRENT_LIST_DIR}/${t}.c)
    target_compile_options(${t} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${t} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${t} PRIVATE telemed tm_media_private)
  endif()
  add_executable(${t}_smoke ${CMAKE_CURRENT_LIST_DIR}/${t}.c ${CMAKE_CURRENT_LIST_DIR}/fuzz_main.c)
  target_link_libraries(${t}_smoke PRIVATE telemed tm_media_private)
endforeach()
add_test(NAME fuzz_http_range_smoke COMMAND fuzz_http_range_smoke -runs=200000 -seed=1
  ${CMAKE_CURRENT_LIST_DIR}/corpus/http_range)
add_test(NAME fuzz_rec_reader_smoke COMMAND fuzz_rec_reader_smoke -runs=8000 -seed=1
  ${CMAKE_CURRENT_LIST_DIR}/corpus/rec_reader)
add_test(NAME fuzz_media_datagram_smoke COMMAND fuzz_media_datagram_smoke -runs=50000 -seed=1
  ${CMAKE_CURRENT_LIST_DIR}/corpus/media_datagram)
set_tests_properties(fuzz_http_range_smoke fuzz_rec_reader_smoke fuzz_media_datagram_smoke
  PROPERTIES TIMEOUT 120)

find_program(TM_CLANG clang)
if(TM_CLANG AND NOT TM_FUZZ)
  add_test(NAME fuzz_libfuzzer
    COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/run_libfuzzer.sh ${CMAKE_SOURCE_DIR}
            ${CMAKE_BINARY_DIR}/fuzz-clang)
  set_tests_properties(fuzz_libfuzzer PROPERTIES TIMEOUT 1200 LABELS fuzz)
endif()
