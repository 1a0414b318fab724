# Keys are validated before sealing (issue 11, point 6): included from tests/provider/CMakeLists.txt.
# The validator (provider/validate.c) is compiled into the test as well, so that its reasons can be
# checked case by case and its cost measured (test_validate --cost); the loads go through the module.
# Runs in the ASan/UBSan build too (only its memory scan is compiled out there).
add_executable(test_validate test_validate.c memscan.c ${PROJECT_SOURCE_DIR}/provider/validate.c)
target_link_libraries(test_validate PRIVATE memguard_static mgt_harness OpenSSL::Crypto)
add_dependencies(test_validate memguard_provider)
add_test(NAME provider.validate COMMAND test_validate)
set(MGT_VALIDATE_ENV "OPENSSL_CONF=${CMAKE_CURRENT_BINARY_DIR}/memguard-test.cnf;MEMGUARD_BACKEND=anonymous")
if(MG_SANITIZE)
  # An RSA-PSS key signs through the EVP path in memguard's private library context, whose per-thread
  # DRBGs are never freed: provider.c's teardown keeps that context alive on purpose (threads' exit
  # handlers point into it), so the main thread's DRBGs are lost at exit. Only that is suppressed.
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/validate-lsan.supp "leak:RAND_get0_public\n")
  list(APPEND MGT_VALIDATE_ENV "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_BINARY_DIR}/validate-lsan.supp")
endif()
set_tests_properties(provider.validate PROPERTIES LABELS "provider" TIMEOUT 300 ENVIRONMENT "${MGT_VALIDATE_ENV}")
