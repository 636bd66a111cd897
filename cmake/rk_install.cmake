# Install rules and the exported package: find_package(ringkernel) -> ringkernel::ringkernel, and
# find_package(ringkernel COMPONENTS cluster) -> ringkernel::cluster too (installed when MPI was found).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS ringkernel ringkernel_device EXPORT ringkernelTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
foreach(layer device host runtime)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${layer}/include/ringkernel DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endforeach()
install(EXPORT ringkernelTargets NAMESPACE ringkernel:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ringkernel)
if(TARGET ringkernel_cluster)
  install(TARGETS ringkernel_cluster EXPORT ringkernelClusterTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/cluster/include/ringkernel DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT ringkernelClusterTargets NAMESPACE ringkernel::
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ringkernel)
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ringkernelConfig.cmake.in
  ${PROJECT_BINARY_DIR}/ringkernelConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ringkernel)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ringkernelConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ringkernelConfig.cmake ${PROJECT_BINARY_DIR}/ringkernelConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ringkernel)
