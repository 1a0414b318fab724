# Keys from files (issue 6): examples/symmetric_file_key against plain OpenSSL. Included from
# tests/provider/CMakeLists.txt; needs the examples (MG_BUILD_EXAMPLES) and, like the other
# provider tests, no sanitizers (the system libcrypto loads the module).
if(NOT MG_SANITIZE AND TARGET symmetric_file_key)
  add_test(NAME provider.sym_files
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/sym_files.sh $<TARGET_FILE:symmetric_file_key>)
  set_tests_properties(provider.sym_files PROPERTIES LABELS "provider" TIMEOUT 300
                       ENVIRONMENT "OPENSSL_CONF=${CMAKE_CURRENT_BINARY_DIR}/memguard-test.cnf")
endif()
# SKEYMGMT (OpenSSL >= 3.5) compiled on this 3.0 machine against the 3.5 declarations (test-only
# overlay tests/provider/skeymgmt35, or real headers with OPENSSL35_INCLUDE): compile-only, see the script.
add_test(NAME provider.skeymgmt_syntax
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/skeymgmt_syntax.sh ${PROJECT_BINARY_DIR}/core/include)
set_tests_properties(provider.skeymgmt_syntax PROPERTIES LABELS "provider" TIMEOUT 120)
