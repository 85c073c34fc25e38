// Linear (fully connected) layer: y = x W^T + b, W [out_features, in_features].
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/nn/init.hpp"
#include "resnet/nn/module.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace nn {

template <typename T>
class Linear : public Module<T> {
 public:
  using P = acc_t<T>;
  Linear(int64_t in_features, int64_t out_features, bool with_bias = true,
         Generator& gen = default_generator());
  Tensor<T> forward(const Tensor<T>& x) override;
  std::string type_name() const override { return "Linear"; }
  Shape summarize(const Shape& in, const std::string& name, int depth,
                  std::vector<LayerSummary>& rows) const override;
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

  Tensor<P> weight, bias;

 private:
  int64_t in_, out_;
};

template <typename T>
Linear<T>::Linear(int64_t in_features, int64_t out_features, bool with_bias, Generator& gen)
    : in_(in_features), out_(out_features) {
  RESNET_CHECK(in_features > 0 && out_features > 0, "Linear: features must be positive, got ", in_features,
               " -> ", out_features);
  this->register_parameter("weight", weight,
                           init::uniform_fan_in<P>({out_features, in_features}, in_features, gen));
  if (with_bias)
    this->register_parameter("bias", bias, init::uniform_fan_in<P>({out_features}, in_features, gen));
}

template <typename T>
auto Linear<T>::forward(const Tensor<T>& x) -> Tensor<T> {
  RESNET_CHECK(x.defined() && x.rank() == 2 && x.dim(1) == in_, "Linear(", in_, "->", out_,
               "): expected input [N, ", in_, "], got ",
               x.defined() ? x.shape().to_string() : std::string("undefined"));
  Tensor<T> b = bias.defined() ? cast<T>(bias) : Tensor<T>();
  return linear(x, cast<T>(weight), b);
}

template <typename T>
Shape Linear<T>::summarize(const Shape& in, const std::string& name, int depth,
                           std::vector<LayerSummary>& rows) const {
  RESNET_CHECK(in.rank() == 2 && in[1] == in_, "Linear ", name, ": input shape ", in, " does not have ", in_,
               " features");
  Shape out{in[0], out_};
  this->add_row(rows, name, depth, out, in_ * out_);
  return out;
}

}  // namespace nn
}  // namespace RESNET_ABI
}  // namespace resnet
