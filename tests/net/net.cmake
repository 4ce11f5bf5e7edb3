# tests/net: the tests' own bad network. net_relay sits between one browser
# (in a network namespace the test makes) and telemed-server and drops,
# delays, reorders, caps and blacks out on command; the tests below drive
# visits through it. Node tests find it as $TELEMED_BUILD_DIR/net_relay.
# net_outage and net_turn need root (ip netns) and skip without it; net_turn
# needs Debian's coturn (.ci/packages) and skips without it.
add_executable(net_relay ${CMAKE_CURRENT_LIST_DIR}/net_relay.c)
set_target_properties(net_relay PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
# The relay itself, against UDP and TCP echo servers.
tm_node_test(net_relay tests/net/relay.test.mjs)
# 5, 10 and 30 s outages of the patient's network and an address change.
tm_node_test(net_outage tests/net/outage.test.mjs)
# Relay-only patients through coturn over UDP and TLS (and after an
# outage), and an IPv6-only server.
tm_node_test(net_turn tests/net/turn.test.mjs)
# Simulcast: a doctor's Chromium sends three VP8 layers; the patient's capped
# link gets a lower layer while a supervisor keeps the top one, and back up;
# media.view picks the small layer. Needs root (ip netns) and skips without it.
tm_node_test(net_simulcast tests/net/simulcast.test.mjs)
set_tests_properties(net_simulcast PROPERTIES TIMEOUT 480)
# The patient's uplink capped with tc tbf: over transport-cc from the server
# its Chromium comes under the cap while the doctor keeps video. Needs root.
tm_node_test(net_congestion tests/net/congestion.test.mjs)
set_tests_properties(net_congestion PROPERTIES TIMEOUT 300)
# A quarter of the patient's datagrams lost each way for about a minute:
# consent checks lost on the way do not fail a patient whose media still
# arrives (no media.ice_failed, no new connection). Needs root.
tm_node_test(net_consent tests/net/consent.test.mjs)
set_tests_properties(net_consent PROPERTIES TIMEOUT 300)
# All the patient's datagrams dropped while its signaling stays up: the page's
# ICE restarts come at least 2, 4, 8 s apart, and the pace resets once media
# is back. Needs root.
tm_node_test(net_restart_pace tests/net/restart_pace.test.mjs)
set_tests_properties(net_restart_pace PROPERTIES TIMEOUT 300)
# The visit's media worker blocked for 5.5 s (the server's test hook, as a
# starved machine did) under 25 % loss: media flows again on the first
# connection. Needs root and a test build (TM_TEST_HOOKS).
tm_node_test(net_stall tests/net/stall.test.mjs)
set_tests_properties(net_stall PROPERTIES TIMEOUT 300)
