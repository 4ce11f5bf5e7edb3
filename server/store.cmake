# The store (include/telemed/store.h): its statement layer and engines.
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
target_link_libraries(telemed PUBLIC PkgConfig::LIBPQ)
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/store_core.c
  ${CMAKE_CURRENT_LIST_DIR}/store_queue.c
  ${CMAKE_CURRENT_LIST_DIR}/store_sqlite.c
  ${CMAKE_CURRENT_LIST_DIR}/store_pg.c
  ${CMAKE_CURRENT_LIST_DIR}/store_schedule.c
  ${CMAKE_CURRENT_LIST_DIR}/store_visit.c
  ${CMAKE_CURRENT_LIST_DIR}/store_party.c
  ${CMAKE_CURRENT_LIST_DIR}/store_consult.c
  ${CMAKE_CURRENT_LIST_DIR}/store_outbox.c
  ${CMAKE_CURRENT_LIST_DIR}/store_upload.c
  ${CMAKE_CURRENT_LIST_DIR}/store_chain.c
  ${CMAKE_CURRENT_LIST_DIR}/store_seal.c
  ${CMAKE_CURRENT_LIST_DIR}/recording_store.c
  ${CMAKE_CURRENT_LIST_DIR}/rendition_store.c
  # issue 18 (transfer18): transfer during a visit, referral
  ${CMAKE_CURRENT_LIST_DIR}/store_transfer.c
  ${CMAKE_CURRENT_LIST_DIR}/store_referral.c
  ${CMAKE_CURRENT_LIST_DIR}/store_institution.c
  ${CMAKE_CURRENT_LIST_DIR}/store_shift_week.c
  # followup18
  ${CMAKE_CURRENT_LIST_DIR}/store_followup.c
  ${CMAKE_CURRENT_LIST_DIR}/store_messaging.c
  # reg16b: the webhook's participants
  ${CMAKE_CURRENT_LIST_DIR}/store_facts_people.c
  ${CMAKE_CURRENT_LIST_DIR}/store_route.c
  ${CMAKE_CURRENT_LIST_DIR}/store_retention.c
  # issue 19 (cluster19): the node registry, media placement, takeover
  ${CMAKE_CURRENT_LIST_DIR}/store_node.c
)
# Issue 18: the doctor and department figures' reads.
target_sources(telemed PRIVATE ${CMAKE_CURRENT_LIST_DIR}/store_figures.c)

# The backend-neutral suite (tests/server/store_suite.c, store.h only) run
# against SQLite, plus SQLite's own checks: file modes, a newer schema, and
# writes failing (disk full, locked, I/O error).
tm_unit_test(test_store tests/server/test_store.c tests/server/store_suite.c
  tests/server/store_suite_institution.c tests/server/store_suite_node.c
  tests/server/store_suite_lease.c)
# The same suite on PostgreSQL: a throwaway server started by
# tests/support/pg.sh, plus a server restart under a live handle and a
# node stopped while it holds the outbox lock (a generous cap: ~2-4 min on
# the shared 2-core machine).
tm_unit_test(test_store_pg tests/server/test_store_pg.c tests/server/store_suite.c
  tests/server/store_suite_institution.c tests/server/store_suite_node.c
  tests/server/store_suite_lease.c)
target_compile_definitions(test_store_pg PRIVATE TM_PG_SH="${CMAKE_SOURCE_DIR}/tests/support/pg.sh")
set_tests_properties(test_store_pg PROPERTIES TIMEOUT 600)
# followup18: follow-ups, sweeps, no-show counts, the timeline, the messaging queue
tm_unit_test(test_store_followup tests/server/test_store_followup.c)
# Every step is a transaction with fsync (synchronous=FULL): on a shared,
# loaded disk the suite takes far longer than its CPU time, so its cap is a
# wedge detector, not a time budget.
set_tests_properties(test_store PROPERTIES TIMEOUT 300)
# issue 18 (transfer18): transfers and referrals through the store and FHIR.
tm_unit_test(test_transfer_store tests/server/test_transfer_store.c)
set_tests_properties(test_transfer_store PROPERTIES TIMEOUT 300)

# The same two on PostgreSQL (issue 19): store.h only, each database a
# test-started PostgreSQL's (tests/server/pg_fixture.h).
foreach(t test_store_followup test_transfer_store)
  tm_unit_test(${t}_pg tests/server/${t}.c)
  target_compile_definitions(${t}_pg PRIVATE TM_STORE_PG
    TM_PG_SH="${CMAKE_SOURCE_DIR}/tests/support/pg.sh")
  set_tests_properties(${t}_pg PROPERTIES TIMEOUT 300)
endforeach()

# The live server with its database locked by another process.
tm_node_test(integration_store_failure tests/integration/store_failure.test.mjs)
