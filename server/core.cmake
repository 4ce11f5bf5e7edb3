# The server process: main loop, REST, demo hospital, lws on libuv; the
# store has its own fragment.
include(${CMAKE_CURRENT_LIST_DIR}/store.cmake)
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/uv_source.c
  ${CMAKE_CURRENT_LIST_DIR}/conn_limit.c
  ${CMAKE_CURRENT_LIST_DIR}/visit_record.c
  ${CMAKE_CURRENT_LIST_DIR}/review.c
)
# The REST API and the demo hospital, also built into the HTTP and
# signaling fuzz targets (tests/fuzz/fuzz.cmake).
set(TM_SERVER_HTTP_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/http.c
  ${CMAKE_CURRENT_LIST_DIR}/api.c
  ${CMAKE_CURRENT_LIST_DIR}/api_schedule.c
  ${CMAKE_CURRENT_LIST_DIR}/api_consult.c
  ${CMAKE_CURRENT_LIST_DIR}/api_records.c
  ${CMAKE_CURRENT_LIST_DIR}/api_feed.c
  # issue 18 (transfer18)
  ${CMAKE_CURRENT_LIST_DIR}/api_referral.c
  ${CMAKE_CURRENT_LIST_DIR}/api_institutions.c
  ${CMAKE_CURRENT_LIST_DIR}/api_timeline.c # followup18
)
# Issue 18: the doctor and department figures (REST; the counting is in the library).
list(APPEND TM_SERVER_HTTP_SOURCES ${CMAKE_CURRENT_LIST_DIR}/api_figures.c)
target_sources(telemed PRIVATE ${CMAKE_CURRENT_LIST_DIR}/figures.c)
set(TM_SERVER_DEMO_SOURCES ${CMAKE_CURRENT_LIST_DIR}/demo.c)
add_executable(telemed-server
  ${CMAKE_CURRENT_LIST_DIR}/main.c
  ${TM_SERVER_HTTP_SOURCES}
  ${CMAKE_CURRENT_LIST_DIR}/web_static.c
  ${TM_SERVER_DEMO_SOURCES}
  ${CMAKE_CURRENT_LIST_DIR}/review_render.c
)
# The review rendition's child (review_render.c) decodes and encodes with
# GStreamer; the library and the server's own threads do not use it.
pkg_check_modules(TM_REVIEW_GST REQUIRED IMPORTED_TARGET gstreamer-1.0>=1.22 gstreamer-app-1.0)
target_link_libraries(telemed-server PRIVATE telemed PkgConfig::TM_REVIEW_GST)
tm_unit_test(test_uv_source tests/server/test_uv_source.c)
target_include_directories(test_uv_source PRIVATE ${CMAKE_SOURCE_DIR})
tm_unit_test(test_conn_limit tests/server/test_conn_limit.c)
# Issue 19: the node behind a load balancer (identity, /healthz, drain).
include(${CMAKE_CURRENT_LIST_DIR}/node.cmake)

# Recording at rest and record export: AES-256-GCM files, HTTP Range parsing
# and the FHIR export (the recordings table is the store's).
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/rec_crypt.c
  ${CMAKE_CURRENT_LIST_DIR}/http_range.c
  ${CMAKE_CURRENT_LIST_DIR}/fhir.c
  ${CMAKE_CURRENT_LIST_DIR}/fhir_referral.c
)
tm_unit_test(test_rec_crypt tests/server/test_rec_crypt.c)
tm_unit_test(test_http_range tests/server/test_http_range.c)
tm_unit_test(test_fhir tests/server/test_fhir.c)
# Issue 18: the figures from a real store (periods, weeks, percentiles, CSV).
tm_unit_test(test_figures tests/server/test_figures.c)
