# Integration tests: the real telemed-server on loopback, driven over WSS and HTTPS.
tm_node_test(integration_visit_flow tests/integration/visit_flow.test.mjs)
tm_node_test(integration_disconnect tests/integration/disconnect.test.mjs)
tm_node_test(integration_bad_input tests/integration/bad_input.test.mjs)
tm_node_test(integration_rest tests/integration/rest.test.mjs)
tm_node_test(integration_docs_examples tests/integration/docs_examples.test.mjs)
tm_node_test(integration_queue_fanout tests/integration/queue_fanout.test.mjs)
# The fan-out on one thread (the stock path beside the writer pool).
tm_node_stock_test(integration_queue_fanout tests/integration/queue_fanout.test.mjs)
tm_node_test(integration_http_framing tests/integration/http_framing.test.mjs)
tm_node_test(integration_security_rest tests/integration/security_rest.test.mjs)
tm_node_test(integration_connections tests/integration/connections.test.mjs)
tm_node_test(integration_session_security tests/integration/session_security.test.mjs)
tm_node_test(integration_session_limits tests/integration/session_limits.test.mjs)
