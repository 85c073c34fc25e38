// SyncBatchNorm: a BatchNorm2d whose training forward normalises with the statistics of the global batch
// over the ranks of a ProcessGroup (dist/sync_batchnorm_op.hpp); in eval it is BatchNorm2d with its own
// running statistics. It derives from BatchNorm2d, so it fits every typed BatchNorm member (ResidualBlock's
// bn1..bn3 and the stem) and keeps the fused BN+ReLU and BN+add+ReLU forms. Per-rank statistics remain the
// default; convert_sync_batchnorm (or DataParallelOptions::sync_batchnorm) swaps the layers in.
#pragma once

#include "resnet/core/abi.hpp"

#include <memory>
#include <string>
#include <vector>

#include "resnet/dist/sync_batchnorm_op.hpp"
#include "resnet/nn/batchnorm.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace dist {

template <typename T>
class SyncBatchNorm : public nn::BatchNorm2d<T> {
 public:
  using P = acc_t<T>;
  SyncBatchNorm(const nn::BatchNorm2dOptions& o, std::shared_ptr<ProcessGroup> group)
      : nn::BatchNorm2d<T>(o), group_(std::move(group)) {
    RESNET_CHECK(group_ != nullptr, "SyncBatchNorm: null process group");
  }
  // Takes over `bn`'s options and its very parameter and buffer tensors (shared, not copied: optimizers
  // and hooks holding them stay valid), and its eval pin.
  SyncBatchNorm(const nn::BatchNorm2d<T>& bn, std::shared_ptr<ProcessGroup> group)
      : SyncBatchNorm(bn.options(), std::move(group)) {
    RESNET_CHECK(!bn.folded(), "SyncBatchNorm: the BatchNorm2d(", bn.options().num_features(),
                 ") was folded into its convolution for inference; it cannot train");
    this->weight = bn.weight;
    this->bias = bn.bias;
    this->running_mean = bn.running_mean;
    this->running_var = bn.running_var;
    this->num_batches_tracked = bn.num_batches_tracked;
    if (bn.keeps_eval()) this->keep_eval();
    this->train(bn.is_training());
  }

  Tensor<T> forward_fused(const Tensor<T>& x, const Tensor<T>& residual, Activation act) override {
    if (!this->is_training()) return nn::BatchNorm2d<T>::forward_fused(x, residual, act);
    const int64_t C = this->options().num_features();
    RESNET_CHECK(x.defined() && x.rank() == 4 && x.dim(1) == C, "SyncBatchNorm(", C, "): expected input [N, ",
                 C, ", H, W], got ", x.defined() ? x.shape().to_string() : std::string("undefined"));
    RESNET_DISPATCH(this->num_batches_tracked.device(), count_up, this->num_batches_tracked);
    return sync_batch_norm(x, residual, this->weight, this->bias, this->running_mean, this->running_var,
                           this->bn_params(), act, group_);
  }

  std::string type_name() const override { return "SyncBatchNorm"; }
  const std::shared_ptr<ProcessGroup>& group() const { return group_; }

 private:
  std::shared_ptr<ProcessGroup> group_;
};

// Replaces every BatchNorm2d of `model`'s tree (not SyncBatchNorm already) by a SyncBatchNorm over `group`
// that keeps its tensors; returns how many. The root itself cannot be replaced (wrap it instead).
template <typename T>
int convert_sync_batchnorm(nn::Module<T>& model, const std::shared_ptr<ProcessGroup>& group) {
  RESNET_CHECK(group != nullptr, "convert_sync_batchnorm: null process group");
  RESNET_CHECK(dynamic_cast<nn::BatchNorm2d<T>*>(&model) == nullptr,
               "convert_sync_batchnorm: the model itself is a BatchNorm2d; put it in a container first");
  std::vector<std::string> paths;
  for (auto& kv : model.named_modules())
    if (!kv.first.empty() && dynamic_cast<nn::BatchNorm2d<T>*>(kv.second.get()) &&
        !dynamic_cast<SyncBatchNorm<T>*>(kv.second.get()))
      paths.push_back(kv.first);
  for (const auto& p : paths) {
    auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d<T>>(model.find_module(p));
    model.replace_module(p, std::make_shared<SyncBatchNorm<T>>(*bn, group));
  }
  return static_cast<int>(paths.size());
}

}  // namespace dist
}  // namespace RESNET_ABI
}  // namespace resnet
