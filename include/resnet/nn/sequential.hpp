// Sequential: children named "0", "1", ... (torchvision's names for layer1.0, downsample.1, ...).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/nn/module.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace nn {

template <typename T>
class Sequential : public Module<T> {
 public:
  Sequential() = default;
  template <typename M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    layers_.push_back(m);
    return this->register_module(std::to_string(layers_.size() - 1), std::move(m));
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    Tensor<T> h = x;
    for (auto& m : layers_) h = m->forward(h);
    return h;
  }
  std::string type_name() const override { return "Sequential"; }
  Shape summarize(const Shape& in, const std::string& name, int depth,
                  std::vector<LayerSummary>& rows) const override {
    Shape s = in;
    for (size_t i = 0; i < layers_.size(); ++i)
      s = layers_[i]->summarize(s, this->join(name, std::to_string(i)), depth + 1, rows);
    return s;
  }
  size_t size() const { return layers_.size(); }
  const std::shared_ptr<Module<T>>& operator[](size_t i) const { return layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Module<T>>> layers_;
};

}  // namespace nn
}  // namespace RESNET_ABI
}  // namespace resnet
