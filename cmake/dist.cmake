# Distributed training: the INTERFACE target resnet::dist = resnet::resnet + MPI (CPU tensors,
# start-up) + NCCL and resnet::cuda (GPU tensors) when the CUDA backend is built. Code compiled against it
# sees RESNET_HAVE_MPI=1 (and RESNET_HAVE_NCCL=1) and may include resnet/dist/{mpi_group,nccl_group}.hpp;
# dist::init (resnet/dist/init.hpp) works in either build. resnet::resnet itself never changes: a
# single-process user needs neither MPI nor NCCL.
#
# RESNET_DIST defaults to ON when MPI (Debian: libopenmpi-dev, openmpi-bin) is found. The installed package
# offers it too: `find_package(resnet COMPONENTS dist)` fails where the package or MPI lacks it.
find_package(MPI COMPONENTS CXX QUIET)
if(DEFINED RESNET_DIST)
  set(_resnet_dist_asked ${RESNET_DIST})
endif()
option(RESNET_DIST "Build resnet::dist (MPI, and NCCL with the CUDA backend)" ${MPI_CXX_FOUND})
if(NOT RESNET_DIST)
  message(STATUS "resnet: distributed training off (no MPI found, or RESNET_DIST=OFF; apt-get install libopenmpi-dev openmpi-bin)")
  return()
endif()
if(NOT MPI_CXX_FOUND)
  message(FATAL_ERROR "resnet: RESNET_DIST is ON but CMake found no MPI (apt-get install libopenmpi-dev openmpi-bin), "
                      "or configure with -DRESNET_DIST=OFF")
endif()

add_library(resnet_dist INTERFACE)
add_library(resnet::dist ALIAS resnet_dist)
target_link_libraries(resnet_dist INTERFACE resnet_compiled MPI::MPI_CXX)
target_compile_definitions(resnet_dist INTERFACE RESNET_HAVE_MPI=1)
set(RESNET_HAVE_NCCL OFF)
if(TARGET resnet::cuda)
  find_path(RESNET_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_ROOT}/include)
  find_library(RESNET_NCCL_LIBRARY NAMES nccl
    HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_ROOT}/lib ${CUDAToolkit_ROOT}/lib64)
  if(RESNET_NCCL_INCLUDE_DIR AND RESNET_NCCL_LIBRARY)
    target_include_directories(resnet_dist INTERFACE ${RESNET_NCCL_INCLUDE_DIR})
    target_link_libraries(resnet_dist INTERFACE resnet_cuda CUDA::cudart ${RESNET_NCCL_LIBRARY})
    target_compile_definitions(resnet_dist INTERFACE RESNET_HAVE_NCCL=1)
    set(RESNET_HAVE_NCCL ON)
  else()
    message(WARNING "resnet: CUDA backend on but nccl.h / libnccl not found: resnet::dist has MPI only (GPU tensors "
                    "cannot be reduced across ranks)")
  endif()
endif()
# Installed beside resnet::resnet: resnetConfig.cmake finds MPI again and then defines resnet::dist (NCCL's
# paths are this machine's, as cuDNN's are for resnet::cuda).
set_target_properties(resnet_dist PROPERTIES EXPORT_NAME dist)
install(TARGETS resnet_dist EXPORT resnetDistTargets)
install(EXPORT resnetDistTargets NAMESPACE resnet:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/resnet)
message(STATUS "resnet: distributed training on: MPI ${MPI_CXX_VERSION} (${MPIEXEC_EXECUTABLE}), NCCL ${RESNET_HAVE_NCCL}")
