# HMAC keys, EVP_MAC and KDFs through memguard (issue 6): included from tests/provider/CMakeLists.txt.
# Our own programs load the module into themselves, so they run in the ASan/UBSan build too (minus
# their memory scans, compiled out there).
find_package(Threads REQUIRED)
add_executable(test_mac test_mac.c memscan.c)
target_link_libraries(test_mac PRIVATE memguard_static mgt_harness OpenSSL::Crypto Threads::Threads)
add_dependencies(test_mac memguard_provider)
# The routing test writes its own configurations (both provider orders) around this module.
target_compile_definitions(test_mac PRIVATE MGT_PROVIDER_MODULE="$<TARGET_FILE:memguard_provider>")
add_test(NAME provider.mac COMMAND test_mac)
set_tests_properties(provider.mac PROPERTIES LABELS "provider" TIMEOUT 300
                     ENVIRONMENT "OPENSSL_CONF=${CMAKE_CURRENT_BINARY_DIR}/memguard-test.cnf")
# CMAC (EVP_MAC) on memguard's AES-NI code.
add_executable(test_cmac test_cmac.c memscan.c)
target_link_libraries(test_cmac PRIVATE memguard_static mgt_harness OpenSSL::Crypto)
add_dependencies(test_cmac memguard_provider)
add_test(NAME provider.cmac COMMAND test_cmac)
set_tests_properties(provider.cmac PROPERTIES LABELS "provider" TIMEOUT 300
                     ENVIRONMENT "OPENSSL_CONF=${CMAKE_CURRENT_BINARY_DIR}/memguard-test.cnf")
