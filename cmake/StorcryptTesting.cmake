include(GoogleTest)

# storcrypt_test(NAME n LABEL unit|host|vm SOURCES ... LIBS ... [TIMEOUT seconds])
# One GoogleTest binary; every TEST() becomes one ctest test carrying LABEL
# and TIMEOUT (default 600 s).
function(storcrypt_test)
  cmake_parse_arguments(T "" "NAME;LABEL;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  if(NOT T_LABEL MATCHES "^(unit|host|vm)$")
    message(FATAL_ERROR "storcrypt_test(${T_NAME}): LABEL must be unit, host or vm")
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} storcrypt_test_support GTest::gtest GTest::gmock GTest::gtest_main)
  gtest_discover_tests(${T_NAME}
    TEST_PREFIX "${T_LABEL}."
    DISCOVERY_MODE PRE_TEST
    PROPERTIES LABELS ${T_LABEL} TIMEOUT ${T_TIMEOUT})
endfunction()

# storcrypt_fuzzer(NAME n SOURCES ... LIBS ... [CORPUS dir])
# With STORCRYPT_FUZZ=ON: a libFuzzer binary. Otherwise: the same entry point
# linked with a replay driver and run over the seed corpus as a unit test, so
# every fuzz target is exercised (and kept compiling) by the ordinary suite.
function(storcrypt_fuzzer)
  cmake_parse_arguments(F "" "NAME;CORPUS" "SOURCES;LIBS" ${ARGN})
  add_executable(${F_NAME} ${F_SOURCES})
  target_link_libraries(${F_NAME} PRIVATE ${F_LIBS})
  if(STORCRYPT_FUZZ)
    target_link_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
    set_property(GLOBAL APPEND PROPERTY STORCRYPT_FUZZERS "${F_NAME}|${F_CORPUS}")
  else()
    target_sources(${F_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/tests/fuzz/replay_main.cpp)
    add_test(NAME unit.fuzz_replay.${F_NAME} COMMAND ${F_NAME} ${F_CORPUS})
    set_tests_properties(unit.fuzz_replay.${F_NAME} PROPERTIES LABELS unit)
  endif()
endfunction()

# storcrypt_vm_test(NAME n SCRIPTS a.sh b.sh ... [TIMEOUT s] [SYSTEMD] [RUN_SERIAL] [DEPENDS targets...])
# SYSTEMD boots the guest with systemd as PID 1 (vmrun.sh --systemd).
# One boot of the kernel VM (tests/vm/harness/vmrun.sh) running the scenario
# scripts in order; labelled vm. VM tests never run concurrently (2 cores).
function(storcrypt_vm_test)
  cmake_parse_arguments(V "SYSTEMD;RUN_SERIAL" "NAME;TIMEOUT" "SCRIPTS;DEPENDS" ${ARGN})
  if(NOT V_TIMEOUT)
    set(V_TIMEOUT 900)
  endif()
  set(init_flag)
  if(V_SYSTEMD)
    set(init_flag --systemd)
  endif()
  add_test(NAME vm.${V_NAME}
    COMMAND ${PROJECT_SOURCE_DIR}/tests/vm/harness/vmrun.sh
            --build-dir ${PROJECT_BINARY_DIR} --name ${V_NAME} --timeout ${V_TIMEOUT} ${init_flag} ${V_SCRIPTS})
  math(EXPR ctest_timeout "${V_TIMEOUT} + 60")
  set_tests_properties(vm.${V_NAME} PROPERTIES LABELS vm TIMEOUT ${ctest_timeout} RESOURCE_LOCK storcrypt_vm)
  if(V_RUN_SERIAL)
    # Timing-sensitive (e.g. probes counted under rekeys): nothing else runs beside the guest.
    set_tests_properties(vm.${V_NAME} PROPERTIES RUN_SERIAL TRUE)
  endif()
endfunction()
