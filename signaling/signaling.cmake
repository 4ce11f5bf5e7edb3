# The telemed.v1 protocol on the control loop.
target_sources(telemed PRIVATE ${CMAKE_CURRENT_LIST_DIR}/signaling.c ${CMAKE_CURRENT_LIST_DIR}/fanout.c)

# Benchmark, run by hand: the kernel's cost of the queue fan-out without TLS.
add_executable(fanout_floor ${CMAKE_SOURCE_DIR}/tests/bench/fanout_floor.c)
target_link_libraries(fanout_floor PRIVATE Threads::Threads)

# Benchmark client, run by signaling_load.mjs: the waiting patients' WSS
# connections on one epoll thread, so the clients cost little CPU.
add_executable(wss_patients ${CMAKE_SOURCE_DIR}/tests/bench/wss_patients.c)
target_link_libraries(wss_patients PRIVATE PkgConfig::OPENSSL PkgConfig::JANSSON m)
