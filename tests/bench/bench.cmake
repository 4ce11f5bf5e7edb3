# Benchmarks: programs run by hand that print figures (tests/bench/README.md
# says how); none is a test.

# The kernel's cost of the queue fan-out without TLS.
add_executable(fanout_floor ${CMAKE_CURRENT_LIST_DIR}/fanout_floor.c)
target_link_libraries(fanout_floor PRIVATE Threads::Threads)

# Run by signaling_load.mjs: the waiting patients' WSS connections on one
# epoll thread, so the clients cost little CPU.
add_executable(wss_patients ${CMAKE_CURRENT_LIST_DIR}/wss_patients.c)
target_link_libraries(wss_patients PRIVATE PkgConfig::OPENSSL PkgConfig::JANSSON m)

# build-x/feed_bench [--feed-batch N].
add_executable(feed_bench ${CMAKE_CURRENT_LIST_DIR}/feed_bench.c)
target_compile_definitions(feed_bench PRIVATE TM_SRC_DIR="${CMAKE_SOURCE_DIR}")
target_link_libraries(feed_bench PRIVATE telemed)

# The media load generator: webrtcbin peers against the real server.
if(TMW_GST_FOUND AND TMW_SOUP_FOUND)
  add_executable(media_load ${CMAKE_CURRENT_LIST_DIR}/media_load.c)
  target_link_libraries(media_load PRIVATE
    PkgConfig::TMW_GST PkgConfig::TMW_SOUP PkgConfig::JANSSON PkgConfig::GLIB Threads::Threads)
  set_target_properties(media_load PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
  if(TM_SANITIZE)
    target_compile_options(media_load PRIVATE -fno-sanitize=all)
    target_link_options(media_load PRIVATE -fno-sanitize=all)
  endif()
endif()

# build-x/store_bench [--visits N] [--pg-delay-ms X]: a visit step's cost on PostgreSQL
# against SQLite in the same run (issue 19).
add_executable(store_bench ${CMAKE_CURRENT_LIST_DIR}/store_bench.c
  ${CMAKE_CURRENT_LIST_DIR}/delay_relay.c)
target_compile_definitions(store_bench PRIVATE TM_PG_SH="${CMAKE_SOURCE_DIR}/tests/support/pg.sh")
target_link_libraries(store_bench PRIVATE telemed)

# The smoke test of the load programs over several nodes (issue 19): two
# nodes on a test-started PostgreSQL, 20 patients round-robin; it asserts
# each node's share, one queue's positions across the nodes, position pushes
# on both nodes and visits served on both, never a figure or a time.
add_test(NAME bench_cluster_smoke COMMAND ${NODE} ${CMAKE_SOURCE_DIR}/tests/bench/signaling_load.mjs
  --bin $<TARGET_FILE:telemed-server> --client-bin $<TARGET_FILE:wss_patients> --cluster 2
  --steps 20 --baseline-n 0 --idle-s 0 --settle-ms 500 --b-visits 5 --b-seconds 120 --probes 2
  --t-visits 20 --t-seconds 120 --check)
set_tests_properties(bench_cluster_smoke PROPERTIES TIMEOUT 600)
