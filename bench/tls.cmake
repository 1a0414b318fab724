# tls_handshakes: a plain-OpenSSL client making full TLS handshakes in parallel (tests/tls uses it
# for its load test, bench/tls_bench.sh for handshake throughput against nginx).
find_package(Threads REQUIRED)
add_executable(tls_handshakes ${CMAKE_CURRENT_SOURCE_DIR}/tls_handshakes.c)
target_link_libraries(tls_handshakes PRIVATE OpenSSL::SSL OpenSSL::Crypto Threads::Threads)
