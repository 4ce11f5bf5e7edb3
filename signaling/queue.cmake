# Waiting queue, visit state machine and doctor pairing: pure logic run on
# the control loop, with their unit tests.
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/queue.c
  ${CMAKE_CURRENT_LIST_DIR}/visit_fsm.c
  ${CMAKE_CURRENT_LIST_DIR}/pairing.c
)
tm_unit_test(test_queue tests/signaling/test_queue.c)
tm_unit_test(test_visit_fsm tests/signaling/test_visit_fsm.c)
tm_unit_test(test_pairing tests/signaling/test_pairing.c)
