// ...and called from a unit built without: the two Tensor types are different types, so this must not link.
#include "resnet/core/tensor.hpp"

float first_element(const resnet::Tensor<float>& t);

int main() { return static_cast<int>(first_element(resnet::Tensor<float>::zeros({1}))); }
