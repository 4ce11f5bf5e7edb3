# Recording and record export: the per-visit GStreamer recorder, AES-256-GCM
# at rest, the recordings table, HTTP Range parsing and the FHIR export.
target_sources(telemed PRIVATE
  ${CMAKE_SOURCE_DIR}/server/rec_crypt.c
  ${CMAKE_SOURCE_DIR}/server/http_range.c
)
tm_unit_test(test_rec_crypt tests/server/test_rec_crypt.c)
tm_unit_test(test_http_range tests/server/test_http_range.c)
