# Locked-memory pressure (issue 11): mg_enclave_reserve, waiting for the shared reserve, the
# RLIMIT_MEMLOCK message. The RLIMIT_MEMLOCK tests inside need a real mlock: test_memlock.c builds
# them only outside sanitizers (ASan makes mlock a no-op); the hook-driven tests run everywhere.
add_executable(test_memlock test_memlock.c)
target_link_libraries(test_memlock PRIVATE memguard_static mgt_harness)
target_include_directories(test_memlock PRIVATE ${PROJECT_SOURCE_DIR}/core/src)
add_test(NAME core.memlock COMMAND test_memlock)
set_tests_properties(core.memlock PROPERTIES LABELS "core" TIMEOUT 300)
if(MG_SANITIZE)
  set_tests_properties(core.memlock PROPERTIES ENVIRONMENT
    "ASAN_OPTIONS=handle_segv=0:handle_sigbus=0:handle_abort=0:detect_leaks=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
else()
  # The same on memfd_secret pages, which count against RLIMIT_MEMLOCK too.
  add_test(NAME secretmem.core.memlock COMMAND test_memlock)
  set_tests_properties(secretmem.core.memlock PROPERTIES LABELS "core;secretmem" TIMEOUT 300
                       ENVIRONMENT "MEMGUARD_BACKEND=secretmem")
endif()
