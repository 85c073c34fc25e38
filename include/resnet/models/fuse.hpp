// Inference fusion: every eval-mode BatchNorm that follows a convolution is folded into that convolution's
// weights and bias,
//   W'[o] = W[o] * s[o],  b'[o] = (b[o] - mean[o]) * s[o] + beta[o],  s = gamma / sqrt(var + eps)
// (in double), and the BatchNorm becomes the identity that keeps only its fused residual add and ReLU.
// Outputs equal the unfused network's to float rounding. The fused model is for inference only: its
// convolutions gain biases, its BatchNorms refuse to train, and save_checkpoint refuses it (its state_dict
// is not the trained model's), so fuse a copy loaded for inference, as infer::Classifier does.
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>
#include <vector>

#include "resnet/models/resnet.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace models {

// Folds `bn` (eval mode, running statistics) into `conv`. Returns false (and changes nothing) when bn was
// already folded.
template <typename T>
bool fold_batchnorm(nn::Conv2d<T>& conv, nn::BatchNorm2d<T>& bn) {
  using P = acc_t<T>;
  if (bn.folded()) return false;
  const int64_t C = conv.options().out_channels();
  RESNET_CHECK(bn.options().num_features() == C, "fold_batchnorm: Conv2d has ", C,
               " output channels, BatchNorm2d ", bn.options().num_features());
  RESNET_CHECK(!bn.is_training(),
               "fold_batchnorm: the BatchNorm2d is in training mode (call eval() first: "
               "folding uses the running statistics)");
  const std::vector<P> w = conv.weight.to_vector();
  const std::vector<P> gamma = bn.weight.to_vector(), beta = bn.bias.to_vector();
  const std::vector<P> mean = bn.running_mean.to_vector(), var = bn.running_var.to_vector();
  const std::vector<P> b0 =
      conv.bias.defined() ? conv.bias.to_vector() : std::vector<P>(static_cast<size_t>(C), P(0));
  const size_t per = w.size() / static_cast<size_t>(C);
  std::vector<P> w2(w.size()), b2(static_cast<size_t>(C));
  for (size_t o = 0; o < static_cast<size_t>(C); ++o) {
    const double s =
        static_cast<double>(gamma[o]) / std::sqrt(static_cast<double>(var[o]) + bn.options().eps());
    for (size_t k = 0; k < per; ++k)
      w2[o * per + k] = static_cast<P>(static_cast<double>(w[o * per + k]) * s);
    b2[o] = static_cast<P>((static_cast<double>(b0[o]) - static_cast<double>(mean[o])) * s +
                           static_cast<double>(beta[o]));
  }
  const Device dev = conv.weight.device();
  copy_into(conv.weight, Tensor<P>::from_vector(w2, conv.weight.shape()).to(dev));
  conv.set_bias(Tensor<P>::from_vector(b2, {C}).to(dev));
  bn.mark_folded();
  return true;
}

// Puts `net` in eval mode and folds all of its BatchNorms (stem, every block, every projection shortcut).
// Returns how many were folded.
template <typename T>
int fuse_for_inference(ResNet<T>& net) {
  net.eval();
  int n = 0;
  n += fold_batchnorm(*net.conv1, *net.bn1);
  for (auto& stage : net.layers) {
    for (size_t i = 0; i < stage->size(); ++i) {
      auto block = std::dynamic_pointer_cast<ResidualBlock<T>>((*stage)[i]);
      RESNET_CHECK(block != nullptr, "fuse_for_inference: ", stage.name(), ".", i, " is a ",
                   (*stage)[i]->type_name(), ", not a residual block");
      n += fold_batchnorm(*block->conv1, *block->bn1);
      n += fold_batchnorm(*block->conv2, *block->bn2);
      if (block->conv3) n += fold_batchnorm(*block->conv3, *block->bn3);
      if (block->downsample) {
        auto conv = std::dynamic_pointer_cast<nn::Conv2d<T>>((*block->downsample)[0]);
        auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d<T>>((*block->downsample)[1]);
        RESNET_CHECK(conv && bn, "fuse_for_inference: ", stage.name(), ".", i,
                     ".downsample is not Conv2d + BatchNorm2d");
        n += fold_batchnorm(*conv, *bn);
      }
    }
  }
  return n;
}

}  // namespace models
}  // namespace RESNET_ABI
}  // namespace resnet
