# The ground floor: the error table, clocks, ids and key=value logging that
# every module uses. Nothing here includes another module.
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/common.c
  ${CMAKE_CURRENT_LIST_DIR}/log.c
)
