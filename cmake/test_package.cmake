# ctests package.consumer and package.cluster_consumer: install this build tree into a scratch prefix,
# configure and build a consumer project against it (CONSUMER: tests/package by default), and run it:
# directly, or under MPIEXEC with two ranks when MPIEXEC is given (MPIEXEC_FLAGS: the launcher's flags).
#   cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -DCUDA_ARCHITECTURES=... [-DCONSUMER=package_cluster
#         -DMPIEXEC=... -DMPIEXEC_FLAGS=...] -P test_package.cmake
if(NOT CONSUMER)
  set(CONSUMER package)
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix"
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "install failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/${CONSUMER}" -B "${WORK_DIR}/build"
                        -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix "-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES}"
                        -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the consumer failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK_DIR}/build" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the consumer failed (${rc})")
endif()
file(GLOB consumer LIST_DIRECTORIES false "${WORK_DIR}/build/*consumer")
if(NOT consumer)
  message(FATAL_ERROR "the consumer's build left no executable in ${WORK_DIR}/build")
endif()
if(MPIEXEC)
  separate_arguments(flags UNIX_COMMAND "${MPIEXEC_FLAGS}")
  execute_process(COMMAND "${MPIEXEC}" -n 2 ${flags} ${consumer} RESULT_VARIABLE rc)
else()
  execute_process(COMMAND ${consumer} RESULT_VARIABLE rc)
endif()
if(rc)
  message(FATAL_ERROR "the consumer failed (${rc})")
endif()
