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
