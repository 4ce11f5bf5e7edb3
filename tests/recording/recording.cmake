# tests/recording: end-to-end tests of recording, the visit record, the FHIR
# export and supervisor watch, through the real telemed-server with the
# webrtcbin reference peers (tests/webrtc/webrtc_client). rec_probe is the
# independent judge of a recorded file (decodebin, counts per track); the
# drivers find it as $TELEMED_BUILD_DIR/rec_probe.
pkg_check_modules(TMREC_GST IMPORTED_TARGET gstreamer-1.0>=1.22)

if(TMREC_GST_FOUND AND TARGET webrtc_client AND TARGET telemed-server)
  add_executable(rec_probe ${CMAKE_CURRENT_LIST_DIR}/rec_probe.c)
  target_link_libraries(rec_probe PRIVATE PkgConfig::TMREC_GST)
  set_target_properties(rec_probe PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
  # Like the reference peer, the judge is not the code under test.
  if(TM_SANITIZE)
    target_compile_options(rec_probe PRIVATE -fno-sanitize=all)
    target_link_options(rec_probe PRIVATE -fno-sanitize=all)
  endif()
  # review_probe judges a review rendition: Goertzel energy per tone on the
  # decoded mix, video frames counted (links no telemed code).
  pkg_check_modules(TMREC_GST_APP IMPORTED_TARGET gstreamer-app-1.0>=1.22)
  add_executable(review_probe ${CMAKE_CURRENT_LIST_DIR}/review_probe.c)
  target_link_libraries(review_probe PRIVATE PkgConfig::TMREC_GST PkgConfig::TMREC_GST_APP m)
  set_target_properties(review_probe PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
  if(TM_SANITIZE)
    target_compile_options(review_probe PRIVATE -fno-sanitize=all)
    target_link_options(review_probe PRIVATE -fno-sanitize=all)
  endif()
  # The render child on a two-part, three-sender recording made with the
  # recorder's own API (parts placed by offset, every tone heard).
  add_executable(test_review_render ${CMAKE_CURRENT_LIST_DIR}/test_review_render.c)
  target_include_directories(test_review_render PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(test_review_render PRIVATE telemed PkgConfig::TMREC_GST PkgConfig::TMREC_GST_APP)
  add_test(NAME recording_review_render COMMAND test_review_render
    $<TARGET_FILE:telemed-server> ${CMAKE_BINARY_DIR}/review_probe)
  set_tests_properties(recording_review_render PROPERTIES TIMEOUT 300 LABELS recording)
  tm_node_test(recording_visit tests/recording/visit.test.mjs)
  tm_node_test(recording_crash tests/recording/crash.test.mjs)
  tm_node_test(recording_watch tests/recording/watch.test.mjs)
  tm_node_test(recording_encrypted tests/recording/encrypted.test.mjs)
  tm_node_test(recording_failure tests/recording/failure.test.mjs)
  tm_node_test(recording_visit_seal tests/recording/visit_seal.test.mjs)
  tm_node_test(recording_review tests/recording/review.test.mjs)
  set_tests_properties(recording_visit recording_crash recording_watch recording_encrypted recording_failure
    recording_visit_seal recording_review
    PROPERTIES LABELS "recording;webrtc")
  set_tests_properties(recording_review PROPERTIES TIMEOUT 1200)
  # A recorded visit on the stock paths (libnice I/O, libsrtp's ciphers).
  tm_node_stock_test(recording_visit tests/recording/visit.test.mjs)
else()
  message(STATUS "tests/recording: GStreamer or webrtc_client missing, recording tests skipped")
endif()
