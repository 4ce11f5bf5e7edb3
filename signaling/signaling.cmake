# The telemed.v1 protocol on the control loop.
target_sources(telemed PRIVATE ${CMAKE_CURRENT_LIST_DIR}/signaling.c ${CMAKE_CURRENT_LIST_DIR}/fanout.c)
