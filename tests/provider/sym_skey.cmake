# EVP_SKEY through memguard's SKEYMGMT: registered only where the provider was built with it, i.e.
# against OpenSSL >= 3.5 (provider/CMakeLists.txt sets MGP_HAVE_SKEYMGMT). On 3.0 there is nothing
# to run; scripts/openssl35.sh builds OpenSSL 3.5 from Debian's source package and runs it there.
if(NOT MG_SANITIZE AND MGP_HAVE_SKEYMGMT)
  add_executable(test_skey test_skey.c memscan.c)
  target_link_libraries(test_skey PRIVATE memguard_static mgt_harness OpenSSL::Crypto)
  add_dependencies(test_skey memguard_provider)
  add_test(NAME provider.skey COMMAND test_skey)
  set_tests_properties(provider.skey PROPERTIES LABELS "provider" TIMEOUT 300
                       ENVIRONMENT "OPENSSL_CONF=${CMAKE_CURRENT_BINARY_DIR}/memguard-test.cnf")
endif()
