# Fail-closed key loading (issue 11): every load path, keys memguard cannot seal, residue after loading.
# test_load scans its own memory: not meaningful under ASan (shadow memory), as test_residue.
if(NOT MG_SANITIZE)
  add_executable(test_load test_load.c memscan.c)
  target_link_libraries(test_load PRIVATE memguard_static mgt_harness OpenSSL::SSL OpenSSL::Crypto)
  add_test(NAME provider.load COMMAND test_load)
  set_tests_properties(provider.load PROPERTIES LABELS "provider" TIMEOUT 600
                       ENVIRONMENT "OPENSSL_CONF=${CMAKE_CURRENT_BINARY_DIR}/memguard-test.cnf;MEMGUARD_BACKEND=anonymous")
  add_test(NAME provider.load_paths COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/load_paths.sh
           $<TARGET_FILE:memguard_provider> $<TARGET_FILE:test_load>)
  set_tests_properties(provider.load_paths PROPERTIES LABELS "provider" TIMEOUT 900)
endif()
