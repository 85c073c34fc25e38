# CLI11 (header-only; Debian's libcli11-dev, installed by tools/setup.sh): the command-line parser of the
# example, benchmark and test programs, with what they add to it (examples/flags.hpp). Programs link
# resnet_cli. The library itself does not use it.
include_guard(GLOBAL)
find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp)
if(NOT CLI11_INCLUDE_DIR)
  message(FATAL_ERROR "CLI11 not found (<CLI/CLI.hpp>): install libcli11-dev (tools/setup.sh) or set CLI11_INCLUDE_DIR")
endif()
add_library(resnet_cli INTERFACE)
target_include_directories(resnet_cli INTERFACE ${PROJECT_SOURCE_DIR}/examples)
target_include_directories(resnet_cli SYSTEM INTERFACE ${CLI11_INCLUDE_DIR})
