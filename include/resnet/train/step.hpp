// The training step as a strategy object (Trainer::set_step): what one optimizer step does with this rank's
// batch. Every strategy runs the same step (train_step): zero_grad, forward, the loss, the loss into the
// device's statistics (record_step_loss: a non-finite loss sets the optimizer's skip flag before the update
// reads it), backward (DataParallel averages the gradients over the ranks here), update. EagerStep runs it
// as it is; CudaGraphStep captures and replays it (train/graph_step.hpp). A test or a user may put its own
// strategy around either, e.g. to change the batch or the loss at a given step.
#pragma once

#include "resnet/core/abi.hpp"

#include <memory>
#include <utility>

#include "resnet/backend/dispatch.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/ops/ops.hpp"
#include "resnet/optim/optimizer.hpp"
#include "resnet/train/graph_step.hpp"
#include "resnet/train/loss.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

// What a step works on; the Trainer binds it before the first step.
template <typename T>
struct StepParts {
  nn::Module<T>* net = nullptr;  // the model, or DataParallel around it
  optim::Optimizer<acc_t<T>>* optimizer = nullptr;
  LossFn<T> loss;
  Tensor<double>* stats = nullptr;  // the device's loss statistics (backend/step_math.hpp)
  Device device;
};

// One step on this rank's n samples of a global batch of N. Returns the loss (a device tensor).
template <typename T>
Tensor<T> train_step(const StepParts<T>& p, const Tensor<T>& x, const Tensor<int32_t>& y, double n,
                     double N) {
  p.optimizer->zero_grad();
  Tensor<T> loss = p.loss(p.net->forward(x), y);
  Tensor<double>& optim_state = p.optimizer->step_state();
  RESNET_DISPATCH(p.device, record_step_loss, loss, *p.stats, &optim_state, n, N);
  loss.backward();
  p.optimizer->step();
  return loss;
}

template <typename T>
class Step {
 public:
  virtual ~Step() = default;
  virtual void bind(const StepParts<T>& parts) { parts_ = parts; }
  virtual void run(const Tensor<T>& x, const Tensor<int32_t>& y, double n, double N) = 0;
  const StepParts<T>& parts() const { return parts_; }

 protected:
  StepParts<T> parts_;
};

template <typename T>
class EagerStep : public Step<T> {
 public:
  void run(const Tensor<T>& x, const Tensor<int32_t>& y, double n, double N) override {
    train_step(this->parts_, x, y, n, N);
  }
};

// One rank only (the gradient all-reduce is not captured): this rank's samples are the global batch.
// stats is allocated once per Trainer, so the address a graph captured stays valid.
template <typename T>
class CudaGraphStep : public Step<T> {
 public:
  explicit CudaGraphStep(GraphedStepOptions o = {}) : o_(o) {}
  void bind(const StepParts<T>& parts) override {
    Step<T>::bind(parts);
    const StepParts<T>* p = &this->parts_;
    graphed_ = std::make_unique<GraphedStep<T>>(
        parts.device,
        [p](const Tensor<T>& x, const Tensor<int32_t>& y) {
          const double n = static_cast<double>(x.dim(0));
          return train_step(*p, x, y, n, n);
        },
        o_);
    graphed_->watch(*parts.net);
    graphed_->watch(*parts.optimizer);
  }
  void run(const Tensor<T>& x, const Tensor<int32_t>& y, double, double) override { graphed_->run(x, y); }
  GraphedStep<T>& graphed() { return *graphed_; }

 private:
  GraphedStepOptions o_;
  std::unique_ptr<GraphedStep<T>> graphed_;
};

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
