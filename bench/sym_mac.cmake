# bench_mac: memguard's HMAC / HMAC EVP_PKEY / KDFs against the default provider's, in one run (issue 6).
# Run the Release build: ./build/release/bench/bench_mac
add_executable(bench_mac bench_mac.c harness.c)
target_link_libraries(bench_mac PRIVATE memguard OpenSSL::Crypto)
add_dependencies(bench_mac memguard_provider)
target_compile_definitions(bench_mac PRIVATE
  BENCH_BUILD_TYPE="$<IF:$<BOOL:${CMAKE_BUILD_TYPE}>,${CMAKE_BUILD_TYPE},none>"
  BENCH_PROVIDER_MODULE="$<TARGET_FILE:memguard_provider>")
