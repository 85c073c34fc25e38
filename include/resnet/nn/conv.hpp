// Conv2d layer: Conv2d<float>(Conv2dOptions(64, 128, 3).stride(2).padding(1).bias(false)).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/nn/init.hpp"
#include "resnet/nn/module.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace nn {

struct Conv2dOptions {
  Conv2dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  Conv2dOptions& stride(int64_t s) {
    stride_ = s;
    return *this;
  }
  Conv2dOptions& padding(int64_t p) {
    padding_ = p;
    return *this;
  }
  Conv2dOptions& bias(bool b) {
    bias_ = b;
    return *this;
  }
  int64_t in_channels_, out_channels_, kernel_size_;
  int64_t stride_ = 1, padding_ = 0;
  bool bias_ = true;
};

template <typename T>
class Conv2d : public Module<T> {
 public:
  using P = acc_t<T>;
  explicit Conv2d(const Conv2dOptions& o, Generator& gen = default_generator()) : opts_(o) {
    RESNET_CHECK(o.in_channels_ > 0 && o.out_channels_ > 0 && o.kernel_size_ > 0, "Conv2d: channels (",
                 o.in_channels_, ", ", o.out_channels_, ") and kernel size (", o.kernel_size_,
                 ") must be positive");
    RESNET_CHECK(o.stride_ > 0 && o.padding_ >= 0,
                 "Conv2d: stride must be positive and padding non-negative, got ", o.stride_, " and ",
                 o.padding_);
    Shape ws{o.out_channels_, o.in_channels_, o.kernel_size_, o.kernel_size_};
    this->register_parameter("weight", weight, init::kaiming_normal_fan_out<P>(ws, gen));
    if (o.bias_) {
      const int64_t fan_in = o.in_channels_ * o.kernel_size_ * o.kernel_size_;
      this->register_parameter("bias", bias, init::uniform_fan_in<P>({o.out_channels_}, fan_in, gen));
    }
  }

  Tensor<T> forward(const Tensor<T>& x) override {
    RESNET_CHECK(x.defined() && x.rank() == 4 && x.dim(1) == opts_.in_channels_, "Conv2d(",
                 opts_.in_channels_, "->", opts_.out_channels_, "): expected input [N, ", opts_.in_channels_,
                 ", H, W], got ", x.defined() ? x.shape().to_string() : std::string("undefined"));
    Tensor<T> b = bias.defined() ? cast<T>(bias) : Tensor<T>();
    return conv2d(x, cast<T>(weight), b, params());
  }
  std::string type_name() const override { return "Conv2d"; }
  Shape summarize(const Shape& in, const std::string& name, int depth,
                  std::vector<LayerSummary>& rows) const override {
    RESNET_CHECK(in.rank() == 4 && in[1] == opts_.in_channels_, "Conv2d ", name, ": input shape ", in,
                 " does not have ", opts_.in_channels_, " channels");
    Shape out = conv2d_output_shape(in, weight.shape(), params());
    const int64_t k = opts_.kernel_size_;
    this->add_row(rows, name, depth, out, out[1] * out[2] * out[3] * opts_.in_channels_ * k * k);
    return out;
  }
  ConvParams params() const {
    return ConvParams{opts_.stride_, opts_.stride_, opts_.padding_, opts_.padding_};
  }
  const Conv2dOptions& options() const { return opts_; }

  // Gives a bias-free convolution a bias (registered as "bias", so state_dict gains it), or overwrites the
  // one it has. BatchNorm folding (nn/fuse.hpp) is the user.
  void set_bias(const Tensor<P>& b) {
    RESNET_CHECK(b.defined() && b.rank() == 1 && b.dim(0) == opts_.out_channels_, "Conv2d(",
                 opts_.in_channels_, "->", opts_.out_channels_, ")::set_bias: expected [",
                 opts_.out_channels_, "], got ",
                 b.defined() ? b.shape().to_string() : std::string("undefined"));
    if (bias.defined()) {
      copy_into(bias, b);
      return;
    }
    Tensor<P> fresh = Tensor<P>::empty(b.shape(), weight.device());
    copy_into(fresh, b);
    this->register_parameter("bias", bias, fresh);
    opts_.bias_ = true;
  }

  Tensor<P> weight, bias;

 private:
  Conv2dOptions opts_;
};

}  // namespace nn
}  // namespace RESNET_ABI
}  // namespace resnet
