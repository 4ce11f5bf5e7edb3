# Issue 19 (cluster19): this node among several: heartbeat, takeover, and the
# bus between nodes (LISTEN/NOTIFY on PostgreSQL over libpq, in-process alone).
# libpq comes with the store (server/store.cmake).
target_sources(telemed PRIVATE ${CMAKE_CURRENT_LIST_DIR}/cluster.c)

# The bus against a PostgreSQL the test starts (tests/support/pg.sh), killed
# and restarted; the heartbeat on a real SQLite store.
tm_unit_test(test_cluster tests/server/test_cluster.c)
target_compile_definitions(test_cluster PRIVATE
  TM_PG_SH="${CMAKE_SOURCE_DIR}/tests/support/pg.sh")
set_tests_properties(test_cluster PROPERTIES TIMEOUT 300)

# A busy node is not a dead node: one node's control loop blocked for 15 s
# is not taken over by the other, and is taken over once SIGKILLed.
tm_unit_test(test_cluster_busy tests/server/test_cluster_busy.c)
target_compile_definitions(test_cluster_busy PRIVATE
  TM_PG_SH="${CMAKE_SOURCE_DIR}/tests/support/pg.sh")
set_tests_properties(test_cluster_busy PROPERTIES TIMEOUT 300)

# Outbox leases on the database's clock: a node whose clock is an hour
# behind or ahead neither shares a row with another nor keeps it for an hour.
tm_unit_test(test_lease_clock tests/server/test_lease_clock.c)
target_compile_definitions(test_lease_clock PRIVATE
  TM_PG_SH="${CMAKE_SOURCE_DIR}/tests/support/pg.sh")
set_tests_properties(test_lease_clock PROPERTIES TIMEOUT 120)
