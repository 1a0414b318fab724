# Peer keys in key exchange (issue 11, point 7): included from tests/provider/CMakeLists.txt.
# The program loads the module itself, so it also runs in the ASan/UBSan build.
add_executable(test_peer test_peer.c)
target_link_libraries(test_peer PRIVATE memguard_static mgt_harness OpenSSL::Crypto)
add_dependencies(test_peer memguard_provider)
add_test(NAME provider.peer COMMAND test_peer)
set_tests_properties(provider.peer PROPERTIES LABELS "provider" TIMEOUT 600
                     ENVIRONMENT "OPENSSL_CONF=${CMAKE_CURRENT_BINARY_DIR}/memguard-test.cnf")
