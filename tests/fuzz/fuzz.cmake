# tests/fuzz: the fuzz targets of the HTTP Range parser, the encrypted-recording
# reader, the media socket's datagrams and the signaling frame handler
# (fuzz_jwt, fuzz_sdp and fuzz_rtp_rtcp live beside their modules). Each has a gcc smoke run through fuzz_main.c in
# every build, and a libFuzzer binary when the build is clang with TM_FUZZ=ON.
#
# fuzz_libfuzzer (when clang is installed) is the coverage-guided run: it
# builds every target with clang in its own build tree and runs each for
# TM_FUZZ_SECONDS (default 30) on its committed corpus; tests/fuzz/README.md
# has the longer run by hand.
set(TM_FUZZ_NEW fuzz_http_range fuzz_rec_reader fuzz_media_datagram fuzz_signaling fuzz_http)

# fuzz_signaling seeds its store with the server's demo hospital and drives
# sessions through signaling's socketless seam (signaling_testing.h);
# fuzz_http routes requests through the REST API's files the same way.
set(TM_FUZZ_EXTRA_fuzz_signaling ${CMAKE_CURRENT_LIST_DIR}/fuzz_hospital.c ${TM_SERVER_DEMO_SOURCES})
set(TM_FUZZ_INCLUDE_fuzz_signaling ${CMAKE_SOURCE_DIR}/server ${CMAKE_SOURCE_DIR}/signaling)
set(TM_FUZZ_EXTRA_fuzz_http ${CMAKE_CURRENT_LIST_DIR}/fuzz_hospital.c ${TM_SERVER_HTTP_SOURCES}
  ${TM_SERVER_DEMO_SOURCES})
set(TM_FUZZ_INCLUDE_fuzz_http ${CMAKE_SOURCE_DIR}/server)

foreach(t IN LISTS TM_FUZZ_NEW)
  if(TM_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
    add_executable(${t} ${CMAKE_CURRENT_LIST_DIR}/${t}.c ${TM_FUZZ_EXTRA_${t}})
    target_compile_options(${t} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${t} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${t} PRIVATE telemed tm_media_private)
    target_include_directories(${t} PRIVATE ${TM_FUZZ_INCLUDE_${t}})
  endif()
  add_executable(${t}_smoke ${CMAKE_CURRENT_LIST_DIR}/${t}.c ${CMAKE_CURRENT_LIST_DIR}/fuzz_main.c
    ${TM_FUZZ_EXTRA_${t}})
  target_link_libraries(${t}_smoke PRIVATE telemed tm_media_private)
  target_include_directories(${t}_smoke PRIVATE ${TM_FUZZ_INCLUDE_${t}})
endforeach()
add_test(NAME fuzz_http_range_smoke COMMAND fuzz_http_range_smoke -runs=200000 -seed=1
  ${CMAKE_CURRENT_LIST_DIR}/corpus/http_range)
add_test(NAME fuzz_rec_reader_smoke COMMAND fuzz_rec_reader_smoke -runs=8000 -seed=1
  ${CMAKE_CURRENT_LIST_DIR}/corpus/rec_reader)
add_test(NAME fuzz_media_datagram_smoke COMMAND fuzz_media_datagram_smoke -runs=50000 -seed=1
  ${CMAKE_CURRENT_LIST_DIR}/corpus/media_datagram)
add_test(NAME fuzz_signaling_smoke COMMAND fuzz_signaling_smoke -runs=100 -seed=1
  ${CMAKE_CURRENT_LIST_DIR}/corpus/signaling)
add_test(NAME fuzz_http_smoke COMMAND fuzz_http_smoke -runs=300 -seed=1
  ${CMAKE_CURRENT_LIST_DIR}/corpus/http)
set_tests_properties(fuzz_http_range_smoke fuzz_rec_reader_smoke fuzz_media_datagram_smoke
  PROPERTIES TIMEOUT 120)
# Each input of these two starts a store and signaling, and the leak check's
# full unwinding makes every malloc slow: a few hundred inputs, time to spare.
set_tests_properties(fuzz_signaling_smoke fuzz_http_smoke PROPERTIES TIMEOUT 300)

find_program(TM_CLANG clang)
if(TM_CLANG AND NOT TM_FUZZ)
  add_test(NAME fuzz_libfuzzer
    COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/run_libfuzzer.sh ${CMAKE_SOURCE_DIR}
            ${CMAKE_BINARY_DIR}/fuzz-clang)
  set_tests_properties(fuzz_libfuzzer PROPERTIES TIMEOUT 1200 LABELS fuzz)
endif()
