# Integration tests: the real telemed-server on loopback, driven over WSS and HTTPS.
tm_node_test(integration_visit_flow tests/integration/visit_flow.test.mjs)
tm_node_test(integration_consent tests/integration/consent.test.mjs)
tm_node_test(integration_doctor_identity tests/integration/doctor_identity.test.mjs)
tm_node_test(integration_disconnect tests/integration/disconnect.test.mjs)
tm_node_test(integration_bad_input tests/integration/bad_input.test.mjs)
tm_node_test(integration_rest tests/integration/rest.test.mjs)
# The alliance: institutions, scoped supervisors, doctors refused outside their own (issue 18).
tm_node_test(integration_institutions tests/integration/institutions.test.mjs)
tm_node_test(integration_docs_examples tests/integration/docs_examples.test.mjs)
tm_node_test(integration_queue_fanout tests/integration/queue_fanout.test.mjs)
tm_node_test(integration_ice_candidates tests/integration/ice_candidates.test.mjs)
# The fan-out on one thread (the stock path beside the writer pool).
tm_node_stock_test(integration_queue_fanout tests/integration/queue_fanout.test.mjs)
tm_node_test(integration_http_framing tests/integration/http_framing.test.mjs)
tm_node_test(integration_security_rest tests/integration/security_rest.test.mjs)
tm_node_test(integration_connections tests/integration/connections.test.mjs)
tm_node_test(integration_session_security tests/integration/session_security.test.mjs)
tm_node_test(integration_session_limits tests/integration/session_limits.test.mjs)
tm_node_test(integration_party tests/integration/party.test.mjs)
# Issue 16: the notice a guest or interpreter accepts before media.
tm_node_test(integration_notice tests/integration/notice.test.mjs)
# issue 18
tm_node_test(integration_consultation tests/integration/consultation.test.mjs)
# Issue 15: the supervisor's video wall watches several visits at once.
tm_node_test(integration_watch_wall tests/integration/watch_wall.test.mjs)
tm_node_test(integration_waiting_room tests/integration/waiting_room.test.mjs)

# Issue 18: the doctor and department figures for a day of work, JSON and CSV.
tm_node_test(integration_figures tests/integration/figures.test.mjs)
# issue 18 (transfer18): transfer during a visit, referral
tm_node_test(integration_transfer tests/integration/transfer.test.mjs)
# followup18: follow-ups, no-shows, the messaging outbox, the patient's timeline
tm_node_test(integration_followup tests/integration/followup.test.mjs)
# Issue 19: the server on a test-started PostgreSQL, which is killed and
# restarted during a visit.
tm_node_test(integration_store_pg tests/integration/store_pg.test.mjs)
tm_node_test(integration_pg_guard tests/integration/pg_guard.test.mjs)
# Issue 19 (async19): the visit steps run off the control loop on PostgreSQL;
# a relay holds a step's statement while another client is answered.
tm_node_test(integration_store_off_loop tests/integration/store_off_loop.test.mjs)
