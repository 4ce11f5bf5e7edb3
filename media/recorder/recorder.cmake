# The per-visit recorder (media/recorder/): ring, reorder, Opus/VP8/H.264
# depayloaders, Matroska writer, life cycle. No GStreamer in the library:
# the recorder takes every codec apart itself.
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/recorder.c
  ${CMAKE_CURRENT_LIST_DIR}/ring.c
  ${CMAKE_CURRENT_LIST_DIR}/reorder.c
  ${CMAKE_CURRENT_LIST_DIR}/depay.c
  ${CMAKE_CURRENT_LIST_DIR}/h264.c
  ${CMAKE_CURRENT_LIST_DIR}/mux.c
  ${CMAKE_CURRENT_LIST_DIR}/mkv.c
)

# The Matroska writer byte by byte, read back by a small EBML reader; the
# H.264 depayloader packet by packet, its avcC against h264parse's.
tm_unit_test(test_mkv tests/media/test_mkv.c)
target_include_directories(test_mkv PRIVATE ${CMAKE_CURRENT_LIST_DIR})
tm_unit_test(test_rec_h264 tests/media/test_rec_h264.c)
target_include_directories(test_rec_h264 PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(test_rec_h264 PRIVATE tm_media_private)

# test_recorder makes real RTP with GStreamer (app) and checks what a
# player sees (pbutils' GstDiscoverer, decodebin): GStreamer is the judge,
# linked to the test only.
pkg_check_modules(TM_REC_GST IMPORTED_TARGET gstreamer-1.0>=1.20 gstreamer-app-1.0 gstreamer-pbutils-1.0)
if(TM_REC_GST_FOUND)
  # As tm_unit_test, but one ctest entry per case so each stays well under
  # a minute: recorder_two_senders, recorder_kill9_plain, ...
  add_executable(test_recorder tests/media/test_recorder.c)
  target_include_directories(test_recorder PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(test_recorder PRIVATE telemed PkgConfig::TM_REC_GST)
  foreach(c bad_input two_senders silent_tracks encrypted kill9_plain kill9_encrypted write_error h264 short_visit burst_drops reconnect reorder)
    add_test(NAME recorder_${c} COMMAND test_recorder ${c})
    set_tests_properties(recorder_${c} PROPERTIES TIMEOUT 60)
  endforeach()
endif()

# Packets in any order and size through reorder, depayloaders, merge and
# Matroska writer: a libFuzzer binary under clang with TM_FUZZ=ON (the option
# lives in server/identity.cmake), and with any compiler a smoke run through
# the shared driver tests/fuzz/fuzz_main.c, as media/packets.cmake does.
if(TM_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
  add_executable(fuzz_recorder ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_recorder.c)
  target_include_directories(fuzz_recorder PRIVATE ${CMAKE_CURRENT_LIST_DIR})
  target_compile_options(fuzz_recorder PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_recorder PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_recorder PRIVATE telemed)
endif()
add_executable(fuzz_recorder_smoke ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_recorder.c
  ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_main.c)
target_include_directories(fuzz_recorder_smoke PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(fuzz_recorder_smoke PRIVATE telemed)
add_test(NAME fuzz_recorder_smoke COMMAND fuzz_recorder_smoke -runs=20000 -seed=1
  ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/recorder)
# 20000 runs took 31 s at load 11-14 with ctest's slow-unwind LSAN_OPTIONS;
# 300 s leaves room for ctest -j2 beside other work, keeping every run.
set_tests_properties(fuzz_recorder_smoke PROPERTIES TIMEOUT 300)
