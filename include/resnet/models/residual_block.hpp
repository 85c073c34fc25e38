// ResidualBlock in both forms of the paper:
//   basic:      3x3 conv - BN - ReLU - 3x3 conv - BN - (+ shortcut) - ReLU           (ResNet-18/34)
//   bottleneck: 1x1 - BN - ReLU - 3x3 - BN - ReLU - 1x1 (x4 channels) - BN - (+ shortcut) - ReLU
// The shortcut is the identity, or a 1x1 conv + BN projection when the shape changes. The stride of a
// bottleneck sits on the 3x3 conv (v1.5, torchvision's default) or on the first 1x1 (the paper's v1).
// The last BN, the add and the ReLU run as one fused op, and so does every other BN + ReLU.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/arg.hpp"
#include "resnet/nn/nn.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace models {

enum class BlockKind { Basic, Bottleneck };

inline int64_t block_expansion(BlockKind k) { return k == BlockKind::Basic ? 1 : 4; }

struct ResidualBlockOptions {
  RESNET_ARG(BlockKind, kind) = BlockKind::Basic;
  RESNET_ARG(int64_t, in_channels) = 64;
  RESNET_ARG(int64_t, planes) = 64;  // width of the 3x3 conv; the block outputs planes * expansion channels
  RESNET_ARG(int64_t, stride) = 1;
  RESNET_ARG(bool, stride_on_1x1) = false;  // bottleneck only: the paper's v1 placement
};

template <typename T>
class ResidualBlock : public nn::Module<T> {
 public:
  explicit ResidualBlock(const ResidualBlockOptions& o, Generator& gen = default_generator());

  Tensor<T> forward(const Tensor<T>& x) override;

  // The last BN's weight, which zero_init_residual sets to zero so each block starts as the identity.
  nn::BatchNorm2d<T>& last_bn() { return opts_.kind() == BlockKind::Basic ? *bn2 : *bn3; }

  std::string type_name() const override {
    return opts_.kind() == BlockKind::Basic ? "BasicBlock" : "Bottleneck";
  }
  Shape summarize(const Shape& in, const std::string& name, int depth,
                  std::vector<nn::LayerSummary>& rows) const override;
  const ResidualBlockOptions& options() const { return opts_; }

  // Views of the registry (nn::Child): assigning one replaces the child everywhere.
  nn::Child<nn::Conv2d<T>> conv1, conv2, conv3;
  nn::Child<nn::BatchNorm2d<T>> bn1, bn2, bn3;
  nn::Child<nn::Sequential<T>> downsample;

 private:
  static std::shared_ptr<nn::Conv2d<T>> make_conv(nn::Conv2dOptions o, Generator& gen) {
    return std::make_shared<nn::Conv2d<T>>(o.bias(false), gen);
  }
  ResidualBlockOptions opts_;
};

template <typename T>
ResidualBlock<T>::ResidualBlock(const ResidualBlockOptions& o, Generator& gen) : opts_(o) {
  using nn::Conv2dOptions;
  const int64_t out_channels = o.planes() * block_expansion(o.kind());
  if (o.kind() == BlockKind::Basic) {
    this->register_module(
        "conv1", conv1,
        make_conv(Conv2dOptions(o.in_channels(), o.planes(), 3).stride(o.stride()).padding(1), gen));
    this->register_module("bn1", bn1, std::make_shared<nn::BatchNorm2d<T>>(o.planes()));
    this->register_module("conv2", conv2,
                          make_conv(Conv2dOptions(o.planes(), o.planes(), 3).padding(1), gen));
    this->register_module("bn2", bn2, std::make_shared<nn::BatchNorm2d<T>>(o.planes()));
  } else {
    const int64_t s1 = o.stride_on_1x1() ? o.stride() : 1, s3 = o.stride_on_1x1() ? 1 : o.stride();
    this->register_module("conv1", conv1,
                          make_conv(Conv2dOptions(o.in_channels(), o.planes(), 1).stride(s1), gen));
    this->register_module("bn1", bn1, std::make_shared<nn::BatchNorm2d<T>>(o.planes()));
    this->register_module("conv2", conv2,
                          make_conv(Conv2dOptions(o.planes(), o.planes(), 3).stride(s3).padding(1), gen));
    this->register_module("bn2", bn2, std::make_shared<nn::BatchNorm2d<T>>(o.planes()));
    this->register_module("conv3", conv3, make_conv(Conv2dOptions(o.planes(), out_channels, 1), gen));
    this->register_module("bn3", bn3, std::make_shared<nn::BatchNorm2d<T>>(out_channels));
  }
  if (o.stride() != 1 || o.in_channels() != out_channels) {
    this->register_module("downsample", downsample, std::make_shared<nn::Sequential<T>>());
    downsample->push_back(make_conv(Conv2dOptions(o.in_channels(), out_channels, 1).stride(o.stride()), gen));
    downsample->push_back(std::make_shared<nn::BatchNorm2d<T>>(out_channels));
  }
}

template <typename T>
auto ResidualBlock<T>::forward(const Tensor<T>& x) -> Tensor<T> {
  RESNET_CHECK(x.defined() && x.rank() == 4 && x.dim(1) == opts_.in_channels(), type_name(),
               ": expected input [N, ", opts_.in_channels(), ", H, W], got ",
               x.defined() ? x.shape().to_string() : std::string("undefined"));
  Tensor<T> identity = downsample ? downsample->forward(x) : x;
  Tensor<T> h = bn1->forward_fused(conv1->forward(x), Tensor<T>(), Activation::ReLU);
  if (opts_.kind() == BlockKind::Basic)
    return bn2->forward_fused(conv2->forward(h), identity, Activation::ReLU);
  h = bn2->forward_fused(conv2->forward(h), Tensor<T>(), Activation::ReLU);
  return bn3->forward_fused(conv3->forward(h), identity, Activation::ReLU);
}

template <typename T>
Shape ResidualBlock<T>::summarize(const Shape& in, const std::string& name, int depth,
                                  std::vector<nn::LayerSummary>& rows) const {
  size_t header = rows.size();
  this->add_row(rows, name, depth, in, 0);
  Shape s = conv1->summarize(in, this->join(name, "conv1"), depth + 1, rows);
  s = bn1->summarize(s, this->join(name, "bn1"), depth + 1, rows);
  s = conv2->summarize(s, this->join(name, "conv2"), depth + 1, rows);
  s = bn2->summarize(s, this->join(name, "bn2"), depth + 1, rows);
  if (conv3) {
    s = conv3->summarize(s, this->join(name, "conv3"), depth + 1, rows);
    s = bn3->summarize(s, this->join(name, "bn3"), depth + 1, rows);
  }
  if (downsample) {
    Shape d = downsample->summarize(in, this->join(name, "downsample"), depth + 1, rows);
    RESNET_CHECK(d == s, type_name(), " ", name, ": shortcut shape ", d, " does not match main path ", s);
  }
  rows[header].output = s;
  return s;
}

}  // namespace models
}  // namespace RESNET_ABI
}  // namespace resnet
