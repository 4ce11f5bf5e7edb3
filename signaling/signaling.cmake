# The telemed.v1 protocol on the control loop.
# signaling_internal.h says which room does what.
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/signaling.c
  ${CMAKE_CURRENT_LIST_DIR}/session.c
  ${CMAKE_CURRENT_LIST_DIR}/auth.c
  ${CMAKE_CURRENT_LIST_DIR}/lobby.c
  ${CMAKE_CURRENT_LIST_DIR}/consent.c
  ${CMAKE_CURRENT_LIST_DIR}/doctor_check.c
  ${CMAKE_CURRENT_LIST_DIR}/shifts.c
  ${CMAKE_CURRENT_LIST_DIR}/position_text.c
  ${CMAKE_CURRENT_LIST_DIR}/visit.c
  ${CMAKE_CURRENT_LIST_DIR}/store_steps.c # issue 19 (async19)
  ${CMAKE_CURRENT_LIST_DIR}/party.c
  ${CMAKE_CURRENT_LIST_DIR}/guest_links.c
  ${CMAKE_CURRENT_LIST_DIR}/consult.c
  ${CMAKE_CURRENT_LIST_DIR}/supervision.c
  ${CMAKE_CURRENT_LIST_DIR}/media_glue.c
  ${CMAKE_CURRENT_LIST_DIR}/media_quality.c
  ${CMAKE_CURRENT_LIST_DIR}/fanout.c
  # issue 18 (transfer18)
  ${CMAKE_CURRENT_LIST_DIR}/transfer.c
  ${CMAKE_CURRENT_LIST_DIR}/followup.c # followup18
  ${CMAKE_CURRENT_LIST_DIR}/drain.c # issue 19
  ${CMAKE_CURRENT_LIST_DIR}/cluster_sync.c # issue 19 (cluster19)
  ${CMAKE_CURRENT_LIST_DIR}/cluster_failover.c # issue 19 (fail19)
)
tm_unit_test(test_position_text tests/signaling/test_position_text.c)
target_include_directories(test_position_text PRIVATE ${CMAKE_CURRENT_LIST_DIR})
# The rooms over a real store, through sessions without a socket.
tm_unit_test(test_signaling_teardown tests/signaling/test_signaling_teardown.c)
target_include_directories(test_signaling_teardown PRIVATE ${CMAKE_CURRENT_LIST_DIR})
# Issue 19 (cluster19): two nodes' waiting rooms on one database, kept in step
# over the PostgreSQL bus of a PostgreSQL the test starts (tests/support/pg.sh).
tm_unit_test(test_cluster_sync tests/signaling/test_cluster_sync.c)
target_include_directories(test_cluster_sync PRIVATE ${CMAKE_CURRENT_LIST_DIR} ${CMAKE_SOURCE_DIR}/tests/server)
target_compile_definitions(test_cluster_sync PRIVATE
  TM_PG_SH="${CMAKE_SOURCE_DIR}/tests/support/pg.sh")
# About 2 min alone (offer timeouts, grace periods and restarts waited out
# for real); the cap only stops a wedged run on the shared machine.
set_tests_properties(test_cluster_sync PROPERTIES TIMEOUT 600)
# Issue 19: a supervisor's watch of a visit another node holds is checked
# for scope and audited before the page is sent there.
tm_unit_test(test_cluster_watch tests/signaling/test_cluster_watch.c)
target_include_directories(test_cluster_watch PRIVATE ${CMAKE_CURRENT_LIST_DIR} ${CMAKE_SOURCE_DIR}/tests/server)
target_compile_definitions(test_cluster_watch PRIVATE
  TM_PG_SH="${CMAKE_SOURCE_DIR}/tests/support/pg.sh")
set_tests_properties(test_cluster_watch PROPERTIES TIMEOUT 300)
