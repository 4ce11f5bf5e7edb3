# tests/net: the tests' own bad network. net_relay sits between one browser
# (in a network namespace the test makes) and telemed-server and drops,
# delays, reorders, caps and blacks out on command; the tests below drive
# visits through it. Node tests find it as $TELEMED_BUILD_DIR/net_relay.
add_executable(net_relay ${CMAKE_CURRENT_LIST_DIR}/net_relay.c)
set_target_properties(net_relay PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
tm_node_test(net_relay tests/net/relay.test.mjs)
tm_node_test(net_outage tests/net/outage.test.mjs)
tm_node_test(net_turn tests/net/turn.test.mjs)
