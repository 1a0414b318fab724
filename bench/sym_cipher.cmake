# bench_cipher: memguard's ciphers against the default provider's, in one run (issue 6).
# Run the Release build: ./build/release/bench/bench_cipher
add_executable(bench_cipher bench_cipher.c harness.c)
target_link_libraries(bench_cipher PRIVATE memguard OpenSSL::Crypto)
add_dependencies(bench_cipher memguard_provider)
target_compile_definitions(bench_cipher PRIVATE
  BENCH_BUILD_TYPE="$<IF:$<BOOL:${CMAKE_BUILD_TYPE}>,${CMAKE_BUILD_TYPE},none>"
  BENCH_PROVIDER_MODULE="$<TARGET_FILE:memguard_provider>")
