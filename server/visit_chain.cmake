# The hash chain over each visit's regulator events: the pure link function
# and its SQLite side (the functions the outbox trigger calls, verification).
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/visit_chain.c
  ${CMAKE_CURRENT_LIST_DIR}/store_chain.c
)

tm_unit_test(test_visit_chain tests/server/test_visit_chain.c)
