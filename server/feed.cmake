# Regulator feed: event payloads (built inside the store's transactions from
# the visit's facts) and the delivery task (libcurl multi on GLib).
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl>=7.85)
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/feed_event.c
  ${CMAKE_CURRENT_LIST_DIR}/feed.c
  ${CMAKE_CURRENT_LIST_DIR}/feed_wire.c
  ${CMAKE_CURRENT_LIST_DIR}/curl_glib.c
)
target_link_libraries(telemed PUBLIC PkgConfig::CURL)

tm_unit_test(test_feed_outbox tests/server/test_feed_outbox.c)
target_include_directories(test_feed_outbox PRIVATE ${CMAKE_SOURCE_DIR}/server)

# The store and the feed on a main loop, driven by the Node tests in tests/feed/.
add_executable(feed_harness tests/feed/feed_harness.c)
target_include_directories(feed_harness PRIVATE ${CMAKE_SOURCE_DIR}/server)
target_link_libraries(feed_harness PRIVATE telemed)

# Node tests of the feed against the stand-in regulator (tests/feed/regulator.mjs).
tm_node_test(feed_http tests/feed/feed_http.test.mjs)
tm_node_test(feed_crash tests/feed/feed_crash.test.mjs)
tm_node_test(feed_outage tests/feed/feed_outage.test.mjs)
tm_node_test(feed_server tests/feed/feed_server.test.mjs)
tm_node_test(feed_docs tests/feed/feed_docs.test.mjs)
# reg16b: profiles per institution, two receivers.
tm_node_test(feed_institutions tests/feed/feed_institutions.test.mjs)

tm_unit_test(test_feed_sink tests/server/test_feed_sink.c)
target_include_directories(test_feed_sink PRIVATE ${CMAKE_SOURCE_DIR}/server)
