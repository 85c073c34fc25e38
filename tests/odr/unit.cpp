// One translation unit of the ODR test, compiled twice: with RESNET_WITH_CUDA=1 (UNIT=cuda_unit) and
// without (UNIT=cpu_unit). Both use the same inline library code; each must run its own build's bodies.
#include "resnet/core/tensor.hpp"

bool UNIT(float* sum) {
  resnet::Tensor<float> t = resnet::Tensor<float>::full({3}, 2.0f);
  *sum = t.at({0}) + t.at({1}) + t.at({2});
  return resnet::cuda_compiled();
}
