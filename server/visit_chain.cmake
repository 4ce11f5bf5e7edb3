# The hash chain over each visit's regulator events: the link function.
# (Its SQLite side, server/store_chain.c, is part of the store.)
target_sources(telemed PRIVATE ${CMAKE_CURRENT_LIST_DIR}/visit_chain.c)

tm_unit_test(test_visit_chain tests/server/test_visit_chain.c)
tm_node_test(integration_visit_chain tests/integration/visit_chain.test.mjs)
