# The optional ONNX exporter (include/resnet/io/onnx.hpp): an INTERFACE target resnet::onnx that
# adds Debian's generated ONNX protobuf classes (libonnx-dev: onnx/onnx-ml.pb.h, libonnx_proto.so) and the
# protobuf runtime (libprotobuf-dev) to resnet::resnet. Without those packages everything else still builds;
# resnet_export is then not built and test_onnx reports skipped.
option(RESNET_WITH_ONNX "Build the ONNX exporter when libonnx-dev and libprotobuf-dev are found" ON)
set(RESNET_HAVE_ONNX OFF)
if(RESNET_WITH_ONNX)
  find_package(Protobuf QUIET)
  # ONNX's package config names protobuf::libprotobuf, so it is looked for only once that target exists.
  if(Protobuf_FOUND AND TARGET protobuf::libprotobuf)
    find_package(ONNX CONFIG QUIET)
  endif()
  find_path(RESNET_ONNX_INCLUDE_DIR onnx/onnx-ml.pb.h)
  if(TARGET onnx_proto AND RESNET_ONNX_INCLUDE_DIR)
    add_library(resnet_onnx INTERFACE)
    add_library(resnet::onnx ALIAS resnet_onnx)
    target_link_libraries(resnet_onnx INTERFACE resnet onnx_proto protobuf::libprotobuf)
    target_compile_definitions(resnet_onnx INTERFACE RESNET_HAVE_ONNX=1)
    set(RESNET_HAVE_ONNX ON)
    message(STATUS "resnet: ONNX export (onnx ${ONNX_VERSION}, protobuf ${Protobuf_VERSION})")
  else()
    message(STATUS "resnet: ONNX export disabled (apt-get install libonnx-dev libprotobuf-dev)")
  endif()
else()
  message(STATUS "resnet: ONNX export off (RESNET_WITH_ONNX=OFF)")
endif()
