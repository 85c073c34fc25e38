// Conv2d layer: Conv2d<float>(Conv2dOptions(64, 128, 3).stride(2).padding(1).bias(false)).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/arg.hpp"
#include "resnet/nn/init.hpp"
#include "resnet/nn/module.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace nn {

// Conv2dOptions(in, out, kernel).stride(2).padding(1).bias(false): the sizes at construction, the rest by
// named setters (core/arg.hpp).
struct Conv2dOptions {
  Conv2dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  RESNET_ARG(int64_t, in_channels);
  RESNET_ARG(int64_t, out_channels);
  RESNET_ARG(int64_t, kernel_size);
  RESNET_ARG(int64_t, stride) = 1;
  RESNET_ARG(int64_t, padding) = 0;
  RESNET_ARG(bool, bias) = true;
};

template <typename T>
class Conv2d : public Module<T> {
 public:
  using P = acc_t<T>;
  explicit Conv2d(const Conv2dOptions& o, Generator& gen = default_generator());

  Tensor<T> forward(const Tensor<T>& x) override;
  std::string type_name() const override { return "Conv2d"; }
  Shape summarize(const Shape& in, const std::string& name, int depth,
                  std::vector<LayerSummary>& rows) const override;
  ConvParams params() const {
    return ConvParams{opts_.stride(), opts_.stride(), opts_.padding(), opts_.padding()};
  }
  const Conv2dOptions& options() const { return opts_; }

  // Gives a bias-free convolution a bias (registered as "bias", so state_dict gains it), or overwrites the
  // one it has. BatchNorm folding (nn/fuse.hpp) is the user.
  void set_bias(const Tensor<P>& b);

  Tensor<P> weight, bias;

 private:
  Conv2dOptions opts_;
};

template <typename T>
Conv2d<T>::Conv2d(const Conv2dOptions& o, Generator& gen) : opts_(o) {
  RESNET_CHECK(o.in_channels() > 0 && o.out_channels() > 0 && o.kernel_size() > 0, "Conv2d: channels (",
               o.in_channels(), ", ", o.out_channels(), ") and kernel size (", o.kernel_size(),
               ") must be positive");
  RESNET_CHECK(o.stride() > 0 && o.padding() >= 0,
               "Conv2d: stride must be positive and padding non-negative, got ", o.stride(), " and ",
               o.padding());
  Shape ws{o.out_channels(), o.in_channels(), o.kernel_size(), o.kernel_size()};
  this->register_parameter("weight", weight, init::kaiming_normal_fan_out<P>(ws, gen));
  if (o.bias()) {
    const int64_t fan_in = o.in_channels() * o.kernel_size() * o.kernel_size();
    this->register_parameter("bias", bias, init::uniform_fan_in<P>({o.out_channels()}, fan_in, gen));
  }
}

template <typename T>
auto Conv2d<T>::forward(const Tensor<T>& x) -> Tensor<T> {
  RESNET_CHECK(x.defined() && x.rank() == 4 && x.dim(1) == opts_.in_channels(), "Conv2d(",
               opts_.in_channels(), "->", opts_.out_channels(), "): expected input [N, ", opts_.in_channels(),
               ", H, W], got ", x.defined() ? x.shape().to_string() : std::string("undefined"));
  Tensor<T> b = bias.defined() ? cast<T>(bias) : Tensor<T>();
  return conv2d(x, cast<T>(weight), b, params());
}

template <typename T>
Shape Conv2d<T>::summarize(const Shape& in, const std::string& name, int depth,
                           std::vector<LayerSummary>& rows) const {
  RESNET_CHECK(in.rank() == 4 && in[1] == opts_.in_channels(), "Conv2d ", name, ": input shape ", in,
               " does not have ", opts_.in_channels(), " channels");
  Shape out = conv2d_output_shape(in, weight.shape(), params());
  const int64_t k = opts_.kernel_size();
  this->add_row(rows, name, depth, out, out[1] * out[2] * out[3] * opts_.in_channels() * k * k);
  return out;
}

template <typename T>
void Conv2d<T>::set_bias(const Tensor<P>& b) {
  RESNET_CHECK(b.defined() && b.rank() == 1 && b.dim(0) == opts_.out_channels(), "Conv2d(",
               opts_.in_channels(), "->", opts_.out_channels(), ")::set_bias: expected [",
               opts_.out_channels(), "], got ",
               b.defined() ? b.shape().to_string() : std::string("undefined"));
  if (bias.defined()) {
    copy_into(bias, b);
    return;
  }
  Tensor<P> fresh = Tensor<P>::empty(b.shape(), weight.device());
  copy_into(fresh, b);
  this->register_parameter("bias", bias, fresh);
  opts_.bias() = true;
}

}  // namespace nn
}  // namespace RESNET_ABI
}  // namespace resnet
