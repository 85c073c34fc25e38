// Sequential: children named "0", "1", ... (torchvision's names for layer1.0, downsample.1, ...).
#pragma once

#include "resnet/core/abi.hpp"

#include <memory>
#include <type_traits>

#include "resnet/nn/module.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace nn {

template <typename T>
class Sequential : public Module<T> {
 public:
  Sequential() = default;
  // The modules in order, in one expression:
  //   nn::Sequential<float> head{std::make_shared<nn::GlobalAvgPool2d<float>>(),
  //                              std::make_shared<nn::Linear<float>>(512, 10)};
  template <typename... M,
            typename = std::enable_if_t<(sizeof...(M) > 0) && (std::is_base_of<Module<T>, M>::value && ...)>>
  explicit Sequential(std::shared_ptr<M>... modules) {
    (push_back(std::move(modules)), ...);
  }
  template <typename M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    return this->register_module(std::to_string(size()), std::move(m));
  }
  // The registry is the list (no copy of it here), so replace_module("1", m) is what forward runs.
  Tensor<T> forward(const Tensor<T>& x) override;
  std::string type_name() const override { return "Sequential"; }
  Shape summarize(const Shape& in, const std::string& name, int depth,
                  std::vector<LayerSummary>& rows) const override;
  size_t size() const { return this->named_children().size(); }
  const std::shared_ptr<Module<T>>& operator[](size_t i) const { return this->named_children().at(i).second; }
};

template <typename T>
auto Sequential<T>::forward(const Tensor<T>& x) -> Tensor<T> {
  Tensor<T> h = x;
  for (auto& kv : this->named_children()) h = kv.second->forward(h);
  return h;
}

template <typename T>
Shape Sequential<T>::summarize(const Shape& in, const std::string& name, int depth,
                               std::vector<LayerSummary>& rows) const {
  Shape s = in;
  for (auto& kv : this->named_children())
    s = kv.second->summarize(s, this->join(name, kv.first), depth + 1, rows);
  return s;
}

}  // namespace nn
}  // namespace RESNET_ABI
}  // namespace resnet
