# Batch delivery profiles of the regulator feed: the tianjin profile (SM3/SM4
# via OpenSSL 3, on the feed's libcurl loop) and its store side.
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/sm_crypto.c
  ${CMAKE_CURRENT_LIST_DIR}/feed_tianjin.c
  ${CMAKE_CURRENT_LIST_DIR}/feed_tianjin_map.c
  ${CMAKE_CURRENT_LIST_DIR}/feed_profile.c
)

tm_unit_test(test_feed_tianjin tests/server/test_feed_tianjin.c)
target_compile_definitions(test_feed_tianjin PRIVATE TM_SRC_DIR="${CMAKE_SOURCE_DIR}")

# The store and the tianjin profile on a main loop, driven by tests/feed/tianjin.test.mjs.
add_executable(tianjin_harness tests/feed/tianjin_harness.c)
target_link_libraries(tianjin_harness PRIVATE telemed)

tm_node_test(feed_tianjin tests/feed/tianjin.test.mjs)
tm_node_test(feed_tianjin_server tests/feed/tianjin_server.test.mjs)
