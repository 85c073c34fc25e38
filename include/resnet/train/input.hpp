// Where batches meet the model: the loader's float images moved to the model's device and converted to its
// activation type. The one place a memory format or another input dtype would be chosen.
#pragma once

#include "resnet/core/abi.hpp"

#include <type_traits>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/ops/ops.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

// The device of a model's parameters (all of them: a model split over devices is refused).
template <typename T>
Device model_device(const nn::Module<T>& model) {
  auto params = model.named_parameters();
  RESNET_CHECK(!params.empty(), "train: the model has no parameters");
  const Device d = params.front().second.device();
  for (auto& kv : params)
    RESNET_CHECK(kv.second.device() == d, "train: parameter '", kv.first, "' is on ",
                 kv.second.device().to_string(), " but '", params.front().first, "' is on ", d.to_string(),
                 "; move the whole model with to()");
  return d;
}

// Uploaded without waiting for the device (backend/async_copy.hpp): the host batch may be reused at once.
template <typename T>
Tensor<T> to_input(const Tensor<float>& images, const Device& device) {
  Tensor<float> x = to_device_async(images, device);
  if constexpr (std::is_same<T, float>::value)
    return x;
  else
    return cast<T>(x);
}

// Logits as host floats (for argmax and metrics).
template <typename T>
std::vector<float> host_floats(const Tensor<T>& t) {
  if constexpr (std::is_same<T, float>::value)
    return t.to(Device::cpu()).to_vector();
  else
    return cast<float>(t).to(Device::cpu()).to_vector();
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
