// A function taking a library type, defined in a unit built with CUDA...
#include "resnet/core/tensor.hpp"

float first_element(const resnet::Tensor<float>& t) { return t.at({0}); }
