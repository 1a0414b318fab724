# Symmetric ciphers through memguard (issue 6): included from tests/provider/CMakeLists.txt.
# Also in the ASan/UBSan build (the program loads the module itself; its memory scan is compiled out there).
find_package(Threads REQUIRED)
# The vector ChaCha20/Poly1305 are compiled in too: their 32-bit counter edge is tested directly.
add_executable(test_cipher test_cipher.c memscan.c ${PROJECT_SOURCE_DIR}/provider/chacha20_simd.c
               ${PROJECT_SOURCE_DIR}/provider/poly1305_simd.c ${PROJECT_SOURCE_DIR}/provider/simd.c)
target_link_libraries(test_cipher PRIVATE memguard_static mgt_harness OpenSSL::Crypto Threads::Threads
                      PkgConfig::SODIUM)
add_dependencies(test_cipher memguard_provider)
add_test(NAME provider.cipher COMMAND test_cipher)
set_tests_properties(provider.cipher PROPERTIES LABELS "provider" TIMEOUT 300
                     ENVIRONMENT "OPENSSL_CONF=${CMAKE_CURRENT_BINARY_DIR}/memguard-test.cnf")
# The narrower paths through the provider, on a machine that has the widest (provider/simd.h):
# AVX2 ChaCha20 with libsodium's Poly1305; libsodium for both; no AES-NI (AES withheld).
foreach(cap avx2 aesni none)
  add_test(NAME provider.cipher.${cap} COMMAND test_cipher)
  set_tests_properties(provider.cipher.${cap} PROPERTIES LABELS "provider" TIMEOUT 300
                       ENVIRONMENT "OPENSSL_CONF=${CMAKE_CURRENT_BINARY_DIR}/memguard-test.cnf;MEMGUARD_SIMD=${cap}")
endforeach()
