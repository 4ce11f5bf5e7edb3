# Config: the one table of options (defaults, file, env, flags, --help, --print-config).
target_sources(telemed PRIVATE ${CMAKE_CURRENT_LIST_DIR}/config.c
  ${CMAKE_CURRENT_LIST_DIR}/config_check.c)
# Where the web client lives in this checkout; the default of web_root.
target_compile_definitions(telemed PRIVATE TM_WEB_ROOT="${CMAKE_SOURCE_DIR}/web-client")
tm_unit_test(test_config tests/server/test_config.c)
# The test checks that docs/config.md still matches the table.
target_compile_definitions(test_config PRIVATE TM_SRC_DIR="${CMAKE_SOURCE_DIR}")
