# Media core: ICE (libnice), DTLS-SRTP (OpenSSL + libsrtp2), forwarding workers.
pkg_check_modules(NICE REQUIRED IMPORTED_TARGET nice>=0.1.19)
pkg_check_modules(SRTP REQUIRED IMPORTED_TARGET libsrtp2>=2.2)
# Nettle: SRTP's AES-CM and HMAC-SHA1 without per-packet work (media/srtp_crypto.c).
pkg_check_modules(NETTLE REQUIRED IMPORTED_TARGET nettle>=3.4)
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/media.c
  ${CMAKE_CURRENT_LIST_DIR}/worker.c
  ${CMAKE_CURRENT_LIST_DIR}/peer.c
  ${CMAKE_CURRENT_LIST_DIR}/ice.c
  ${CMAKE_CURRENT_LIST_DIR}/ice_policy.c
  ${CMAKE_CURRENT_LIST_DIR}/dtls.c
  ${CMAKE_CURRENT_LIST_DIR}/srtp.c
  ${CMAKE_CURRENT_LIST_DIR}/srtp_crypto.c
  ${CMAKE_CURRENT_LIST_DIR}/forward.c
  ${CMAKE_CURRENT_LIST_DIR}/forward_rtcp.c
  ${CMAKE_CURRENT_LIST_DIR}/forward_bind.c
  ${CMAKE_CURRENT_LIST_DIR}/forward_tick.c
  ${CMAKE_CURRENT_LIST_DIR}/keyframe.c
  ${CMAKE_CURRENT_LIST_DIR}/congestion.c
)
target_link_libraries(telemed PUBLIC PkgConfig::NICE PkgConfig::SRTP PkgConfig::NETTLE)
if(TM_TEST_HOOKS)
  target_sources(telemed PRIVATE ${CMAKE_CURRENT_LIST_DIR}/test_stall.c)
  target_compile_definitions(telemed PRIVATE TM_TEST_HOOKS)
endif()

tm_unit_test(test_dtls_srtp tests/media/test_dtls_srtp.c)
tm_unit_test(test_srtp_crypto tests/media/test_srtp_crypto.c)
target_link_libraries(test_dtls_srtp PRIVATE tm_media_private)
target_link_libraries(test_srtp_crypto PRIVATE tm_media_private)
tm_unit_test(test_media_bad_offer tests/media/test_media_bad_offer.c)
target_link_libraries(test_media_bad_offer PRIVATE tm_media_private)
tm_unit_test(test_ice_policy tests/media/test_ice_policy.c)
target_link_libraries(test_ice_policy PRIVATE tm_media_private)
tm_unit_test(test_congestion tests/media/test_congestion.c)
target_link_libraries(test_congestion PRIVATE tm_media_private)
target_compile_definitions(test_congestion PRIVATE TM_SDP_DATA_DIR="${CMAKE_SOURCE_DIR}/tests/media/data")
tm_unit_test(test_bwe tests/media/test_bwe.c)
target_link_libraries(test_bwe PRIVATE tm_media_private)

# Real-peer tests: GStreamer webrtcbin as the independent WebRTC stack. GStreamer
# is linked to these test programs only, never to the telemed library.
# Each runs twice: on today's fast paths, and as <name>_stock on the stock ones
# (libnice's own I/O, libsrtp's own ciphers), so that a bypass can be switched
# off the day its library moves (tests/media/media_test_peer.h).
pkg_check_modules(GST_WEBRTC IMPORTED_TARGET gstreamer-1.0 gstreamer-webrtc-1.0 gstreamer-sdp-1.0 gstreamer-rtp-1.0
  gstreamer-pbutils-1.0)
if(GST_WEBRTC_FOUND)
  foreach(t test_media_loopback test_media_fuzz test_media_nack test_media_supervisor test_media_reconnect test_media_record test_media_record_fail test_media_h264 test_media_party test_media_record_party test_media_dtls_shed)
    tm_unit_test(${t} tests/media/${t}.c tests/media/media_test_peer.c)
    target_link_libraries(${t} PRIVATE PkgConfig::GST_WEBRTC tm_media_private)
    set_tests_properties(${t} PROPERTIES TIMEOUT 90 SKIP_RETURN_CODE 77)
    tm_stock_test(${t} ${t})
  endforeach()
  # Two DTLS sheds of ~6 s each besides the renegotiations.
  set_tests_properties(test_media_dtls_shed test_media_dtls_shed_stock PROPERTIES TIMEOUT 150)
  # The direct path with the worker's epoll set of media sockets (media_rx_epoll = true).
  add_test(NAME test_media_loopback_rx_epoll COMMAND test_media_loopback)
  set_tests_properties(test_media_loopback_rx_epoll PROPERTIES TIMEOUT 90 SKIP_RETURN_CODE 77
    ENVIRONMENT "TELEMED_MEDIA_RX_EPOLL=true")
  # The direct path with a sendto per datagram instead of sendmmsg (media_send_batch = false).
  add_test(NAME test_media_loopback_send_each COMMAND test_media_loopback)
  set_tests_properties(test_media_loopback_send_each PROPERTIES TIMEOUT 90 SKIP_RETURN_CODE 77
    ENVIRONMENT "TELEMED_MEDIA_SEND_BATCH=false")
  # Waits for ICE consent to fail (up to 30 s): labelled slow so it can be skipped.
  tm_unit_test(test_media_vanish tests/media/test_media_vanish.c tests/media/media_test_peer.c)
  target_link_libraries(test_media_vanish PRIVATE PkgConfig::GST_WEBRTC tm_media_private)
  set_tests_properties(test_media_vanish PROPERTIES TIMEOUT 150 LABELS slow)
  tm_stock_test(test_media_vanish test_media_vanish)
endif()
