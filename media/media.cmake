# Media core: ICE (libnice), DTLS-SRTP (OpenSSL + libsrtp2), forwarding workers.
pkg_check_modules(NICE REQUIRED IMPORTED_TARGET nice>=0.1.19)
pkg_check_modules(SRTP REQUIRED IMPORTED_TARGET libsrtp2>=2.2)
target_sources(telemed PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/dtls.c
  ${CMAKE_CURRENT_LIST_DIR}/srtp.c
)
target_link_libraries(telemed PUBLIC PkgConfig::NICE PkgConfig::SRTP)

tm_unit_test(test_dtls_srtp tests/media/test_dtls_srtp.c)
