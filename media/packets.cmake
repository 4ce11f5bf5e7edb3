# Media packets: SDP offer/answer, RTP, RTCP, the retransmission cache,
# stream statistics and simulcast. Pure functions on caller buffers, used by media-core.
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/sdp.c
  ${CMAKE_CURRENT_LIST_DIR}/sdp_offer.c
  ${CMAKE_CURRENT_LIST_DIR}/sdp_answer.c
  ${CMAKE_CURRENT_LIST_DIR}/rtp.c
  ${CMAKE_CURRENT_LIST_DIR}/rtcp.c
  ${CMAKE_CURRENT_LIST_DIR}/rtx_cache.c
  ${CMAKE_CURRENT_LIST_DIR}/stream_stats.c
  ${CMAKE_CURRENT_LIST_DIR}/simulcast.c
  ${CMAKE_CURRENT_LIST_DIR}/bwe.c
)

# media/'s own headers (rtp.h, sdp.h, dtls_srtp_internal.h, ...) are private to
# the module: only media's tests, tools and fuzz targets see them, through this.
add_library(tm_media_private INTERFACE)
target_include_directories(tm_media_private INTERFACE ${CMAKE_CURRENT_LIST_DIR})

tm_unit_test(test_sdp tests/media/test_sdp.c)
target_link_libraries(test_sdp PRIVATE tm_media_private)
target_compile_definitions(test_sdp PRIVATE TM_SDP_DATA_DIR="${CMAKE_SOURCE_DIR}/tests/media/data")
tm_unit_test(test_rtp tests/media/test_rtp.c)
target_link_libraries(test_rtp PRIVATE tm_media_private)
tm_unit_test(test_rtcp tests/media/test_rtcp.c)
target_link_libraries(test_rtcp PRIVATE tm_media_private)
tm_unit_test(test_rtx_cache tests/media/test_rtx_cache.c)
target_link_libraries(test_rtx_cache PRIVATE tm_media_private)
tm_unit_test(test_stream_stats tests/media/test_stream_stats.c)
target_link_libraries(test_stream_stats PRIVATE tm_media_private)
tm_unit_test(test_simulcast tests/media/test_simulcast.c)
target_link_libraries(test_simulcast PRIVATE tm_media_private)

# Our answers as an independent stack sees them: webrtcbin's offers parse and
# webrtcbin accepts the answers. GStreamer is linked to this test only.
pkg_check_modules(PKT_GST IMPORTED_TARGET gstreamer-1.0 gstreamer-webrtc-1.0 gstreamer-sdp-1.0)
if(PKT_GST_FOUND)
  tm_unit_test(test_sdp_webrtcbin tests/media/test_sdp_webrtcbin.c)
  target_link_libraries(test_sdp_webrtcbin PRIVATE PkgConfig::PKT_GST tm_media_private)
  target_compile_definitions(test_sdp_webrtcbin PRIVATE GST_USE_UNSTABLE_API)
  set_tests_properties(test_sdp_webrtcbin PROPERTIES
    ENVIRONMENT "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/media/packets_lsan.supp:fast_unwind_on_malloc=0")
endif()

# Fuzz targets: libFuzzer binaries under clang with TM_FUZZ=ON (the option and
# the library instrumentation live in server/identity.cmake), and with any
# compiler a smoke run through the shared driver tests/fuzz/fuzz_main.c.
if(TM_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
  foreach(t fuzz_sdp fuzz_rtp_rtcp)
    add_executable(${t} ${CMAKE_SOURCE_DIR}/tests/fuzz/${t}.c)
    target_compile_options(${t} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${t} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${t} PRIVATE telemed tm_media_private)
  endforeach()
endif()

foreach(t fuzz_sdp fuzz_rtp_rtcp)
  add_executable(${t}_smoke ${CMAKE_SOURCE_DIR}/tests/fuzz/${t}.c
    ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_main.c)
  target_link_libraries(${t}_smoke PRIVATE telemed tm_media_private)
endforeach()
# Run counts sized for a loaded 2-core machine under ASan and ctest's
# LSAN_OPTIONS (slow unwinding on every malloc): at load 11-14 sdp's 20000
# took 13 s and rtp_rtcp's 200000 15 s; sdp's former 200000 met the 120 s cap.
add_test(NAME fuzz_sdp_smoke COMMAND fuzz_sdp_smoke -runs=20000 -seed=1
  ${CMAKE_SOURCE_DIR}/tests/media/data)
add_test(NAME fuzz_rtp_rtcp_smoke COMMAND fuzz_rtp_rtcp_smoke -runs=200000 -seed=1
  ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/rtp_rtcp)
set_tests_properties(fuzz_sdp_smoke fuzz_rtp_rtcp_smoke PROPERTIES TIMEOUT 120)

# Chromium accepts our answers to its offers (no server involved): the tool
# prints telemed's answer for an offer on stdin; the Node test drives
# Chromium through playwright-core.
add_executable(sdp_answer_tool ${CMAKE_SOURCE_DIR}/tests/media/sdp_answer_tool.c)
target_link_libraries(sdp_answer_tool PRIVATE telemed tm_media_private)
find_program(TM_CHROMIUM chromium)
if(NODE AND TM_CHROMIUM AND TARGET telemed-server
   AND EXISTS ${CMAKE_SOURCE_DIR}/node_modules/playwright-core)
  tm_node_test(sdp_chrome tests/media/sdp_chrome.test.mjs)
  set_property(TEST sdp_chrome APPEND PROPERTY ENVIRONMENT
    "SDP_ANSWER_TOOL=$<TARGET_FILE:sdp_answer_tool>;CHROMIUM=${TM_CHROMIUM}")
  set_tests_properties(sdp_chrome PROPERTIES TIMEOUT 120)
endif()
