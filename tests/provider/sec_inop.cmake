# In-operation exposure (issue 11): OpenSSL's secure heap set up by the provider, and a live scan of a
# process signing in 2 threads, hits classified by region, with a control. The scan reads all of the
# process's memory (under ASan that includes shadow memory): not sanitized.
if(NOT MG_SANITIZE)
  add_executable(test_inop test_inop.c)
  target_link_libraries(test_inop PRIVATE memguard_static mgt_harness OpenSSL::Crypto)
  add_test(NAME provider.inop COMMAND test_inop $<TARGET_FILE:mg-keyscan>)
  set_tests_properties(provider.inop PROPERTIES LABELS "provider" TIMEOUT 600
                       ENVIRONMENT "OPENSSL_CONF=${CMAKE_CURRENT_BINARY_DIR}/memguard-test.cnf;MEMGUARD_BACKEND=anonymous")
endif()
