// BatchNorm2d: batch statistics in training (updating running_mean/var with `momentum`), running
// statistics in eval. forward_fused() adds a residual and/or applies ReLU in the same pass.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/arg.hpp"
#include "resnet/backend/dispatch.hpp"
#include "resnet/nn/module.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace nn {

// BatchNorm2dOptions(channels).eps(1e-3).momentum(0.01): named setters (core/arg.hpp).
struct BatchNorm2dOptions {
  explicit BatchNorm2dOptions(int64_t num_features) : num_features_(num_features) {}
  RESNET_ARG(int64_t, num_features);
  RESNET_ARG(double, eps) = 1e-5;
  RESNET_ARG(double, momentum) = 0.1;
};

template <typename T>
class BatchNorm2d : public Module<T> {
 public:
  using P = acc_t<T>;
  explicit BatchNorm2d(const BatchNorm2dOptions& o);
  explicit BatchNorm2d(int64_t num_features) : BatchNorm2d(BatchNorm2dOptions(num_features)) {}

  Tensor<T> forward(const Tensor<T>& x) override { return forward_fused(x, Tensor<T>(), Activation::None); }

  // act(BN(x) [+ residual]) in one pass; residual may be undefined. Virtual so that dist::SyncBatchNorm,
  // swapped in by replace_module, is what ResidualBlock's typed members call.
  virtual Tensor<T> forward_fused(const Tensor<T>& x, const Tensor<T>& residual, Activation act);

  std::string type_name() const override { return "BatchNorm2d"; }
  Shape summarize(const Shape& in, const std::string& name, int depth,
                  std::vector<LayerSummary>& rows) const override;
  BatchNormParams bn_params() const { return BatchNormParams{opts_.eps(), opts_.momentum()}; }

  // Called once this layer's scale and shift have been moved into the preceding convolution
  // (models/fuse.hpp): it becomes the identity (weight 1, bias 0, mean 0, var 1 - eps, so the inverse
  // standard deviation is 1) and keeps only the fused residual add and ReLU. Eval only from then on.
  void mark_folded();
  bool folded() const { return folded_; }
  bool inference_only() const override { return folded_; }
  const BatchNorm2dOptions& options() const { return opts_; }

  Tensor<P> weight, bias, running_mean, running_var;
  Tensor<int64_t> num_batches_tracked;

 private:
  BatchNorm2dOptions opts_;
  bool folded_ = false;
};

template <typename T>
BatchNorm2d<T>::BatchNorm2d(const BatchNorm2dOptions& o) : opts_(o) {
  RESNET_CHECK(o.num_features() > 0, "BatchNorm2d: num_features must be positive, got ", o.num_features());
  RESNET_CHECK(o.eps() > 0 && o.momentum() >= 0 && o.momentum() <= 1,
               "BatchNorm2d: need eps > 0 and momentum in [0, 1]");
  const int64_t C = o.num_features();
  this->register_parameter("weight", weight, Tensor<P>::ones({C}));
  this->register_parameter("bias", bias, Tensor<P>::zeros({C}));
  running_mean = Tensor<P>::zeros({C});
  running_var = Tensor<P>::ones({C});
  num_batches_tracked = Tensor<int64_t>::zeros(Shape{});
  this->register_buffer("running_mean", running_mean);
  this->register_buffer("running_var", running_var);
  // On the module's device like the statistics, counted there by a kernel (no host write a step, which a
  // captured CUDA graph could not replay); checkpoints hold it as int64 under torchvision's name.
  this->register_buffer("num_batches_tracked", num_batches_tracked);
}

template <typename T>
auto BatchNorm2d<T>::forward_fused(const Tensor<T>& x, const Tensor<T>& residual, Activation act)
    -> Tensor<T> {
  RESNET_CHECK(x.defined() && x.rank() == 4 && x.dim(1) == opts_.num_features(), "BatchNorm2d(",
               opts_.num_features(), "): expected input [N, ", opts_.num_features(), ", H, W], got ",
               x.defined() ? x.shape().to_string() : std::string("undefined"));
  RESNET_CHECK(!(folded_ && this->is_training()), "BatchNorm2d(", opts_.num_features(),
               "): folded into its convolution for inference (fuse_for_inference); it cannot train");
  if (this->is_training()) RESNET_DISPATCH(num_batches_tracked.device(), count_up, num_batches_tracked);
  return batch_norm(x, residual, weight, bias, running_mean, running_var, this->is_training(), bn_params(),
                    act);
}

template <typename T>
Shape BatchNorm2d<T>::summarize(const Shape& in, const std::string& name, int depth,
                                std::vector<LayerSummary>& rows) const {
  RESNET_CHECK(in.rank() == 4 && in[1] == opts_.num_features(), "BatchNorm2d ", name, ": input shape ", in,
               " does not have ", opts_.num_features(), " channels");
  this->add_row(rows, name, depth, in, 0);
  return in;
}

template <typename T>
void BatchNorm2d<T>::mark_folded() {
  weight.fill_(P(1));
  bias.fill_(P(0));
  running_mean.fill_(P(0));
  running_var.fill_(static_cast<P>(1.0 - opts_.eps()));
  folded_ = true;
  this->eval();
}

}  // namespace nn
}  // namespace RESNET_ABI
}  // namespace resnet
