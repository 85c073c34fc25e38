// The text of error messages (and of a Shape in a stream) compiled once for the compiled mode
// (core/error.hpp, core/shape.hpp).
#include "resnet/core/error_inl.hpp"
#include "resnet/core/shape_inl.hpp"
