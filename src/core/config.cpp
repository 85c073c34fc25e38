// The runtime settings' table, parsing and validation compiled once for the compiled mode (core/config.hpp).
#include "resnet/core/config_inl.hpp"
