# The per-visit recorder (media/recorder/): ring, reorder, Opus/VP8
# depayloaders, Matroska writer, life cycle, and H.264 through GStreamer.
# GStreamer is a library dependency for that: rtph264depay ! h264parse
# take H.264 apart (gstreamer-base for the pipeline; app stays for
# test_recorder, which builds on it). The test also uses pbutils
# (GstDiscoverer) to check what a player sees.
pkg_check_modules(TM_REC_GST REQUIRED IMPORTED_TARGET gstreamer-1.0>=1.20 gstreamer-base-1.0 gstreamer-app-1.0)
pkg_check_modules(TM_REC_PBUTILS IMPORTED_TARGET gstreamer-pbutils-1.0)
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/recorder.c
  ${CMAKE_CURRENT_LIST_DIR}/ring.c
  ${CMAKE_CURRENT_LIST_DIR}/reorder.c
  ${CMAKE_CURRENT_LIST_DIR}/depay.c
  ${CMAKE_CURRENT_LIST_DIR}/h264.c
  ${CMAKE_CURRENT_LIST_DIR}/mux.c
  ${CMAKE_CURRENT_LIST_DIR}/mkv.c
)
target_link_libraries(telemed PUBLIC PkgConfig::TM_REC_GST)

# The Matroska writer byte by byte, read back by a small EBML reader.
tm_unit_test(test_mkv tests/media/test_mkv.c)
target_include_directories(test_mkv PRIVATE ${CMAKE_CURRENT_LIST_DIR})

if(TM_REC_PBUTILS_FOUND)
  # As tm_unit_test, but one ctest entry per case so each stays well under
  # a minute: recorder_two_senders, recorder_kill9_plain, ...
  add_executable(test_recorder tests/media/test_recorder.c)
  target_include_directories(test_recorder PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(test_recorder PRIVATE telemed PkgConfig::TM_REC_PBUTILS)
  foreach(c bad_input two_senders silent_tracks encrypted kill9_plain kill9_encrypted write_error h264 short_visit burst_drops reconnect reorder)
    add_test(NAME recorder_${c} COMMAND test_recorder ${c})
    set_tests_properties(recorder_${c} PROPERTIES TIMEOUT 60)
  endforeach()
endif()
