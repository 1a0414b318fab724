# RSA private-key operations in constant time (issue 11): outcomes against the default provider,
# implicit rejection against a reference and OpenSSL 3.5's vectors, blinding across bad paddings.
find_package(Threads REQUIRED)
add_executable(test_rsa_ct test_rsa_ct.c)
target_link_libraries(test_rsa_ct PRIVATE memguard_static mgt_harness OpenSSL::Crypto Threads::Threads)
add_test(NAME provider.rsa_ct COMMAND test_rsa_ct)
set_tests_properties(provider.rsa_ct PROPERTIES LABELS "provider" TIMEOUT 300
                     ENVIRONMENT "OPENSSL_CONF=${CMAKE_CURRENT_BINARY_DIR}/memguard-test.cnf")
