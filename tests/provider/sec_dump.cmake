# Non-dumpable by default (issue 11): same-uid readers refused, re-asserted after fork, no core file;
# memguard-dumpable = 1 gives a core, which is searched for the key. Switches to uid 65534 and may set
# kernel.core_pattern (restored): runs as root. Not sanitized (ASan changes what a crash does).
if(NOT MG_SANITIZE)
  add_executable(test_dump test_dump.c memscan.c)
  target_link_libraries(test_dump PRIVATE memguard_static mgt_harness OpenSSL::Crypto)
  add_test(NAME provider.dump COMMAND test_dump)
  set_tests_properties(provider.dump PROPERTIES LABELS "provider" TIMEOUT 300
                       ENVIRONMENT "OPENSSL_CONF=${CMAKE_CURRENT_BINARY_DIR}/memguard-test.cnf;MEMGUARD_BACKEND=anonymous")
endif()
