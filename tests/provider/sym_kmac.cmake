# KMAC-128/256 (EVP_MAC) on memguard's own Keccak: included from tests/provider/CMakeLists.txt.
# The sponge (provider/keccak.c) is compiled into the test as well, to check it against OpenSSL's SHA-3.
find_package(Threads REQUIRED)
add_executable(test_kmac test_kmac.c memscan.c ${PROJECT_SOURCE_DIR}/provider/keccak.c)
target_include_directories(test_kmac PRIVATE ${PROJECT_SOURCE_DIR}/provider)
target_link_libraries(test_kmac PRIVATE memguard_static mgt_harness OpenSSL::Crypto Threads::Threads)
add_dependencies(test_kmac memguard_provider)
add_test(NAME provider.kmac COMMAND test_kmac)
set_tests_properties(provider.kmac PROPERTIES LABELS "provider" TIMEOUT 300
                     ENVIRONMENT "OPENSSL_CONF=${CMAKE_CURRENT_BINARY_DIR}/memguard-test.cnf")
