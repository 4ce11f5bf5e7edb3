# tests/webrtc: the reference WebRTC peer (GStreamer webrtcbin, libsoup 3)
# and the end-to-end media tests that drive it and headless Chromium
# through the real telemed-server. The client links no telemed code on
# purpose: it is the independent peer. The drivers find it as
# $TELEMED_BUILD_DIR/webrtc_client.
pkg_check_modules(TMW_GST IMPORTED_TARGET
  gstreamer-1.0>=1.22 gstreamer-webrtc-1.0 gstreamer-sdp-1.0)
pkg_check_modules(TMW_SOUP IMPORTED_TARGET libsoup-3.0)

if(TMW_GST_FOUND AND TMW_SOUP_FOUND)
  add_executable(webrtc_client ${CMAKE_CURRENT_LIST_DIR}/webrtc_client.c)
  target_link_libraries(webrtc_client PRIVATE
    PkgConfig::TMW_GST PkgConfig::TMW_SOUP PkgConfig::JANSSON PkgConfig::GLIB)
  set_target_properties(webrtc_client PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
  # The peer is not the code under test: under TM_SANITIZE it stays
  # uninstrumented, so GStreamer's encoders keep real time and its
  # process-lifetime registries are not reported as leaks.
  if(TM_SANITIZE)
    target_compile_options(webrtc_client PRIVATE -fno-sanitize=all)
    target_link_options(webrtc_client PRIVATE -fno-sanitize=all)
  endif()
  if(TARGET telemed-server)
    # The test peers against each other (no server): tells a broken peer
    # from a broken server.
    tm_node_test(webrtc_selftest tests/webrtc/selftest.test.mjs)
    # Full visits through the real server: two webrtcbin peers (+ a late
    # receive-only watcher, + loss), then Chromium with webrtcbin and two
    # Chromiums (+ ICE restart, + reconnect).
    tm_node_test(webrtc_visit tests/webrtc/visit_test.mjs)
    tm_node_test(webrtc_browser tests/webrtc/browser_visit.test.mjs)
    # Three webrtcbin peers in one visit (a consulting doctor invited in).
    tm_node_test(webrtc_party tests/webrtc/party.test.mjs)
    set_tests_properties(webrtc_selftest webrtc_visit webrtc_browser webrtc_party PROPERTIES LABELS webrtc)
    # The same visits on the stock paths beside each bypass (libnice I/O, libsrtp's
    # ciphers, one fan-out thread). The selftest has no server: once is enough.
    tm_node_stock_test(webrtc_visit tests/webrtc/visit_test.mjs)
    tm_node_stock_test(webrtc_browser tests/webrtc/browser_visit.test.mjs)
  endif()
else()
  message(STATUS "tests/webrtc: GStreamer webrtc or libsoup-3.0 missing, media tests skipped")
endif()

