# The compiled mode: the CPU backend's kernels and the tensor, op, layer, network and optimizer templates
# for float, double and bfloat16 compiled once into a static library, so a user's unit parses declarations
# and emits calls (include/resnet/compiled.hpp, backend/cpu/api.hpp). Two targets:
#   resnet::resnet       the compiled mode (this library + the headers, RESNET_SEPARATE_COMPILATION=1)
#   resnet::header_only  the headers alone: every unit compiles what it uses, nothing to link
# Both declare the same types, so units of the two modes link into one program.
#
# The library is built with the flags of the machine that builds it (-march=native under RESNET_NATIVE, as
# our own programs): build it where it runs, or configure with -DRESNET_NATIVE=OFF for a portable package.
set(RESNET_COMPILED_SOURCES
  src/cpu/elementwise.cpp
  src/cpu/conv.cpp
  src/cpu/batchnorm.cpp
  src/cpu/pool_linear.cpp
  src/instantiate/tensor_ops_float.cpp
  src/instantiate/tensor_ops_double.cpp
  src/instantiate/tensor_ops_bf16.cpp
  src/instantiate/optim.cpp
  src/data/image_decode.cpp
  src/data/loader.cpp
  src/data/transforms.cpp
  src/core/config.cpp
  src/core/error.cpp
  src/core/random.cpp
  src/infer/tta.cpp
  src/models/summary.cpp
  src/io/paths.cpp
  src/io/safetensors.cpp
  src/io/checkpoint.cpp
  src/tools/training_log.cpp
  src/train/default_callbacks.cpp
  src/train/parts.cpp)

# One static library per ABI namespace (core/abi.hpp): the CPU-only one here; cmake/cuda.cmake compiles the
# same sources into resnet::cuda for programs built with RESNET_WITH_CUDA=1.
function(resnet_add_compiled_sources target)
  target_sources(${target} PRIVATE ${RESNET_COMPILED_SOURCES})
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_definitions(${target} PUBLIC RESNET_SEPARATE_COMPILATION=1)
  if(RESNET_NATIVE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
  endif()
  # src/cpu holds the backend's definitions; the instantiation units use its declarations alone.
  set_source_files_properties(src/cpu/elementwise.cpp src/cpu/conv.cpp src/cpu/batchnorm.cpp
    src/cpu/pool_linear.cpp TARGET_DIRECTORY ${target} PROPERTIES COMPILE_DEFINITIONS RESNET_IMPLEMENTATION=1)
endfunction()

add_library(resnet_compiled STATIC)
resnet_add_compiled_sources(resnet_compiled)
target_link_libraries(resnet_compiled PUBLIC resnet)
set_target_properties(resnet_compiled PROPERTIES EXPORT_NAME resnet OUTPUT_NAME resnet
  POSITION_INDEPENDENT_CODE ON)
add_library(resnet::resnet ALIAS resnet_compiled)
