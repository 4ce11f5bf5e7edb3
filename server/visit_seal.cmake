# The tamper-evident visit record: the hospital's seal key and signatures
# (visit_seal.c), the sealer and the end-to-end check (record_seal.c). The
# store's side, server/store_seal.c, is part of the store.
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/visit_seal.c
  ${CMAKE_CURRENT_LIST_DIR}/record_seal.c
)

tm_unit_test(test_visit_seal tests/server/test_visit_seal.c)
tm_node_test(integration_visit_seal tests/integration/visit_seal.test.mjs)
# reg16b: the verify's file hashing runs off the control loop.
tm_node_test(integration_verify_off_loop tests/integration/verify_off_loop.test.mjs)
# reg16b: the retention sweep's evidence, chained into the sealed record.
tm_node_test(integration_retention_evidence tests/integration/retention_evidence.test.mjs)
# beat19: two nodes racing to seal the same visits seal each once, no error.
tm_unit_test(test_seal_race tests/server/test_seal_race.c)
target_compile_definitions(test_seal_race PRIVATE
  TM_PG_SH="${CMAKE_SOURCE_DIR}/tests/support/pg.sh")
set_tests_properties(test_seal_race PROPERTIES TIMEOUT 120)
