# The CUDA backend: the static library resnet::cuda (src/cuda, compiled by nvcc) holding our kernels and the
# cuDNN/cuBLAS calls. Code that links it is compiled with RESNET_WITH_CUDA=1, so tensors can live on a GPU
# and every op dispatches to the GPU when its tensors are there. The user's own sources stay plain C++.
#
# RESNET_CUDA defaults to ON when CMake finds nvcc (tools/test.sh turns it off in a new build directory on
# a machine with nvcc but no GPU, unless asked). Without a GPU everything here still compiles, and the GPU
# tests skip at run time with a message.
include(CheckLanguage)
if(DEFINED RESNET_CUDA)
  set(_resnet_cuda_asked ${RESNET_CUDA})  # set by the user (-D) or an earlier configure
endif()
check_language(CUDA)
if(CMAKE_CUDA_COMPILER)
  set(_resnet_cuda_default ON)
else()
  set(_resnet_cuda_default OFF)
endif()
option(RESNET_CUDA "Build the CUDA backend resnet::cuda (needs nvcc, cuBLAS and cuDNN)" ${_resnet_cuda_default})
if(NOT RESNET_CUDA)
  message(STATUS "resnet: CUDA backend off (no nvcc found, or RESNET_CUDA=OFF)")
  return()
endif()
if(NOT CMAKE_CUDA_COMPILER)
  message(FATAL_ERROR "resnet: RESNET_CUDA is ON but CMake found no CUDA compiler; put nvcc on PATH, set "
                      "CMAKE_CUDA_COMPILER, or configure with -DRESNET_CUDA=OFF")
endif()
# Ampere (A100) and Hopper (H100) machine code, plus Hopper PTX that newer GPUs compile at load time.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 80-real 90)
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
include(${CMAKE_CURRENT_LIST_DIR}/resnetFindCudnn.cmake)
if(NOT CUDNN_FOUND OR NOT TARGET CUDA::cublas)
  set(_resnet_missing "cuDNN (looked under CUDNN_ROOT, the CUDA toolkit and the Python nvidia-cudnn wheel)")
  if(NOT TARGET CUDA::cublas)
    set(_resnet_missing "cuBLAS (in the CUDA toolkit)")
  endif()
  if(_resnet_cuda_asked)
    message(FATAL_ERROR "resnet: RESNET_CUDA is ON but ${_resnet_missing} was not found; set CUDNN_ROOT, or "
                        "configure with -DRESNET_CUDA=OFF")
  endif()
  # nvcc alone does not make a CUDA build: stay CPU-only rather than fail a default configure.
  message(WARNING "resnet: nvcc found but not ${_resnet_missing}: CUDA backend off (set CUDNN_ROOT and -DRESNET_CUDA=ON)")
  set(RESNET_CUDA OFF CACHE BOOL "Build the CUDA backend resnet::cuda (needs nvcc, cuBLAS and cuDNN)" FORCE)
  return()
endif()
message(STATUS "resnet: CUDA backend on: nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures "
               "${CMAKE_CUDA_ARCHITECTURES}, cuDNN ${CUDNN_VERSION} (${CUDNN_LIBRARY})")

# One job per translation unit. The runtime TUs (device, streams, allocator, errors) hold host code only and
# compile in seconds; the op TUs instantiate their kernels for every dtype and architecture, split so that
# the two CI cores share the work evenly.
add_library(resnet_cuda STATIC
  src/cuda/device.cu
  src/cuda/streams.cu
  src/cuda/allocator.cu
  src/cuda/errors.cu
  src/cuda/graph.cu
  src/cuda/host_sync.cu
  src/cuda/step_state.cu
  src/cuda/elementwise.cu
  src/cuda/cast.cu
  src/cuda/layout.cu
  src/cuda/pool.cu
  src/cuda/loss.cu
  src/cuda/optim.cu
  src/cuda/batchnorm.cu
  src/cuda/batchnorm_sync.cu
  src/cuda/conv_linear.cu)
add_library(resnet::cuda ALIAS resnet_cuda)
set_target_properties(resnet_cuda PROPERTIES
  EXPORT_NAME cuda
  OUTPUT_NAME resnet_cuda
  CUDA_STANDARD 17
  CUDA_STANDARD_REQUIRED ON
  CUDA_RUNTIME_LIBRARY Shared
  POSITION_INDEPENDENT_CODE ON)
target_include_directories(resnet_cuda PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(resnet_cuda PUBLIC RESNET_WITH_CUDA=1)
target_compile_options(resnet_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra -lineinfo>)
# The compiled CPU backend and templates in this ABI namespace (cmake/compiled.cmake), for programs that link
# resnet::resnet and resnet::cuda.
resnet_add_compiled_sources(resnet_cuda)
target_link_libraries(resnet_cuda
  PUBLIC resnet CUDA::cudart
  PRIVATE CUDA::cublas resnet::cudnn ${CMAKE_DL_LIBS})

# Install and export: find_package(resnet) consumers get resnet::cuda when it was built.
get_filename_component(RESNET_CUDNN_BUILD_ROOT "${CUDNN_INCLUDE_DIR}" DIRECTORY)
configure_file(${CMAKE_CURRENT_LIST_DIR}/resnetCudaDeps.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/resnetCudaDeps.cmake @ONLY)
install(TARGETS resnet_cuda EXPORT resnetCudaTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT resnetCudaTargets NAMESPACE resnet:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/resnet)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/resnetCudaDeps.cmake ${CMAKE_CURRENT_LIST_DIR}/resnetFindCudnn.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/resnet)
