# Issue 19: this process as one node behind a load balancer: its id and
# public URL, /healthz, the node label on /metrics, the drain (node.c), and
# the admin call that starts one (api_node.c). The tests with two nodes and
# HAProxy in front are tests/cluster/.
target_sources(telemed PRIVATE ${CMAKE_CURRENT_LIST_DIR}/node.c)
target_sources(telemed-server PRIVATE ${CMAKE_CURRENT_LIST_DIR}/api_node.c)
list(APPEND TM_SERVER_HTTP_SOURCES ${CMAKE_CURRENT_LIST_DIR}/api_node.c) # the HTTP fuzz target
tm_unit_test(test_node tests/server/test_node.c)
tm_node_test(node_drain tests/cluster/drain.test.mjs)
tm_node_test(node_haproxy tests/cluster/haproxy.test.mjs)
tm_node_test(node_cluster_demo tests/cluster/demo.test.mjs)
tm_node_test(web_node_failover tests/cluster/web_failover.test.mjs)
tm_node_test(node_failover_rules tests/cluster/failover_rules.test.mjs)
tm_node_test(node_failover_live tests/cluster/failover_live.test.mjs)
set_tests_properties(node_failover_live PROPERTIES TIMEOUT 900)
tm_node_test(node_feed_lease tests/cluster/feed_lease.test.mjs)
tm_node_test(web_node_placement tests/cluster/web_placement.test.mjs)
tm_node_test(web_node_watch tests/cluster/web_watch.test.mjs)
