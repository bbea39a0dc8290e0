# `cmake --install build --prefix PREFIX` installs
#   PREFIX/include/spikegrad/*.hpp                     the headers (the library is header-only)
#   PREFIX/share/cmake/spikegrad/spikegradConfig.cmake  the package: find_package(spikegrad CONFIG)
# and exports the target spikegrad::spikegrad with its usage requirements (C++17,
# -ffp-contract=off, OpenMP when the library was configured with it).
include(CMakePackageConfigHelpers)

set(SPIKEGRAD_CMAKE_DIR "${CMAKE_INSTALL_DATADIR}/cmake/spikegrad")
# what the installed config must find again for the exported target's link interface
if(OpenMP_CXX_FOUND)
  set(SPIKEGRAD_WITH_OPENMP ON)
else()
  set(SPIKEGRAD_WITH_OPENMP OFF)
endif()

install(TARGETS spikegrad EXPORT spikegradTargets)
install(DIRECTORY cpp/include/spikegrad DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        FILES_MATCHING PATTERN "*.hpp" PATTERN "*.cuh")
install(EXPORT spikegradTargets NAMESPACE spikegrad:: DESTINATION "${SPIKEGRAD_CMAKE_DIR}")

configure_package_config_file(cmake/spikegradConfig.cmake.in
  "${CMAKE_CURRENT_BINARY_DIR}/spikegradConfig.cmake"
  INSTALL_DESTINATION "${SPIKEGRAD_CMAKE_DIR}")
# 0.x: a new minor version may change the API, so only the same minor version is compatible.
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/spikegradConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/spikegradConfig.cmake"
              "${CMAKE_CURRENT_BINARY_DIR}/spikegradConfigVersion.cmake"
        DESTINATION "${SPIKEGRAD_CMAKE_DIR}")

# The CUDA build: its static library as spikegrad::cuda (host launchers in spikegrad/cuda.hpp),
# in its own export set next to this one, which spikegradConfig.cmake includes when present.
if(SPIKEGRAD_CUDA)
  install(TARGETS spikegrad_cuda EXPORT spikegradCudaTargets ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}")
  install(EXPORT spikegradCudaTargets NAMESPACE spikegrad:: DESTINATION "${SPIKEGRAD_CMAKE_DIR}")
endif()
