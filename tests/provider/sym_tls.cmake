# TLS record mode of memguard's AEADs (EVP_CTRL_AEAD_TLS1_AAD), against the default provider.
add_executable(test_cipher_tls ${CMAKE_CURRENT_SOURCE_DIR}/test_cipher_tls.c)
target_link_libraries(test_cipher_tls PRIVATE memguard_static mgt_harness OpenSSL::Crypto)
add_dependencies(test_cipher_tls memguard_provider)
add_test(NAME provider.cipher_tls COMMAND test_cipher_tls)
set_tests_properties(provider.cipher_tls PROPERTIES LABELS "provider" TIMEOUT 300
                     ENVIRONMENT "OPENSSL_CONF=${CMAKE_CURRENT_BINARY_DIR}/memguard-test.cnf")
