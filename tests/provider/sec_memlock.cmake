# Locked-memory pressure (issue 11): keys loaded through memguard under a small RLIMIT_MEMLOCK are
# either refused with the RLIMIT_MEMLOCK message or serve 400 of 400 signatures in 8 threads.
# RLIMIT_MEMLOCK needs a real mlock, which ASan replaces by a no-op: not sanitized.
if(NOT MG_SANITIZE)
  add_executable(test_memlock_provider test_memlock.c)
  target_link_libraries(test_memlock_provider PRIVATE memguard_static mgt_harness OpenSSL::Crypto)
  add_test(NAME provider.memlock COMMAND test_memlock_provider)
  set_tests_properties(provider.memlock PROPERTIES LABELS "provider" TIMEOUT 900
                       ENVIRONMENT "OPENSSL_CONF=${CMAKE_CURRENT_BINARY_DIR}/memguard-test.cnf")
endif()
