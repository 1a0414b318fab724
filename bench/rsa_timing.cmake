# bench_rsa_timing: RSA-2048 decryption time for valid vs invalid ciphertexts (issue 11), memguard and
# the default provider interleaved in one run. Run the Release build: ./build/release/bench/bench_rsa_timing
add_executable(bench_rsa_timing bench_rsa_timing.c harness.c)
target_link_libraries(bench_rsa_timing PRIVATE OpenSSL::Crypto m)
add_dependencies(bench_rsa_timing memguard_provider)
target_compile_definitions(bench_rsa_timing PRIVATE
  BENCH_BUILD_TYPE="$<IF:$<BOOL:${CMAKE_BUILD_TYPE}>,${CMAKE_BUILD_TYPE},none>"
  BENCH_PROVIDER_MODULE="$<TARGET_FILE:memguard_provider>")
