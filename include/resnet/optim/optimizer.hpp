// Optimizer base: holds named parameters (so its state can be saved by name), the learning rate and the
// step count. State tensors are allocated at construction, on each parameter's device: create the
// optimizer after moving the model.
#pragma once

#include "resnet/core/abi.hpp"

#include <string>
#include <utility>
#include <vector>

#include "resnet/autograd/grad_mode.hpp"
#include "resnet/backend/dispatch.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace optim {

template <typename P>
using NamedParameters = std::vector<std::pair<std::string, Tensor<P>>>;

// Whether weight decay applies to a parameter: every one by default (PyTorch), or only tensors of rank > 1
// (conv and linear weights, not BN weights or biases) when `decay_1d` is false.
inline bool decays(const TensorBase& p, bool decay_1d) { return decay_1d || p.rank() > 1; }

template <typename P>
class Optimizer {
 public:
  Optimizer(NamedParameters<P> params, double lr) : params_(std::move(params)), lr_(lr) {
    RESNET_CHECK(!params_.empty(), "optimizer: no parameters to optimize");
    RESNET_CHECK(lr >= 0, "optimizer: learning rate must be non-negative, got ", lr);
    for (auto& kv : params_)
      RESNET_CHECK(kv.second.requires_grad(), "optimizer: parameter '", kv.first, "' does not require grad");
  }
  virtual ~Optimizer() = default;

  // One update of every parameter that has a gradient.
  virtual void step() = 0;
  virtual std::string name() const = 0;

  void zero_grad() {
    for (auto& kv : params_) {
      Tensor<P> g = kv.second.grad();
      if (g.defined()) g.zero_();
    }
  }
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  int64_t step_count() const { return steps_; }
  void set_step_count(int64_t s) { steps_ = s; }
  const NamedParameters<P>& parameters() const { return params_; }

  // Named state tensors (for checkpoints), e.g. "layer1.0.conv1.weight.momentum_buffer".
  virtual std::vector<std::pair<std::string, TensorBase>> state() const = 0;

 protected:
  NamedParameters<P> params_;
  double lr_;
  int64_t steps_ = 0;
};

}  // namespace optim
}  // namespace RESNET_ABI
}  // namespace resnet
