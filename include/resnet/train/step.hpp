// The training step as a strategy object (Trainer::set_step): what one optimizer step does with this rank's
// batch. Every strategy runs the same step (train_step): zero_grad, forward, the loss, the loss into the
// device's statistics (record_step_loss: a non-finite loss sets the optimizer's skip flag before the update
// reads it), backward (DataParallel averages the gradients over the ranks here), update. EagerStep runs it
// as it is; CudaGraphStep captures and replays it (train/graph_step.hpp). A test or a user may put its own
// strategy around either, e.g. to change the batch or the loss at a given step.
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "resnet/backend/dispatch.hpp"
#include "resnet/dist/data_parallel.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/ops/ops.hpp"
#include "resnet/optim/optimizer.hpp"
#include "resnet/train/graph_step.hpp"
#include "resnet/train/loss.hpp"
#include "resnet/train/step_options.hpp"

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
  // With mixup or cutmix: the batch's probability targets [n, K], which the loss reads; a step that splits
  // the batch points it at each piece's rows in turn.
  Tensor<T>* soft_targets = nullptr;
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

// The same step with StepOptions: the batch as `accumulate` micro-batches (each loss weighted by its share
// of the rows, so the gradients add up to the whole batch's mean loss; only the last backward pass
// all-reduces over the ranks), the gradients clipped, then one update. Returns the batch's loss.
template <typename T>
Tensor<T> train_step(const StepParts<T>& p, const StepOptions& o, const Tensor<T>& x_in,
                     const Tensor<int32_t>& y_in, double n, double N) {
  p.optimizer->zero_grad();
  const int64_t rows = x_in.dim(0), pieces = std::min<int64_t>(o.accumulate(), rows);
  const Tensor<T> x = x_in.is_contiguous() ? x_in : x_in.contiguous();
  const Tensor<int32_t> y = y_in.is_contiguous() ? y_in : y_in.contiguous();
  const int64_t row = rows > 0 ? x.numel() / rows : 0;
  auto* dp = dynamic_cast<dist::DataParallel<T>*>(p.net);
  const Tensor<T> targets = p.soft_targets ? *p.soft_targets : Tensor<T>();
  Tensor<T> loss;
  for (int64_t i = 0, start = 0; i < pieces; ++i) {
    const int64_t m = rows / pieces + (i < rows % pieces ? 1 : 0);
    Shape s = x.shape();
    s[0] = m;
    const Tensor<T> xi(x.view_at(start * row, s));
    const Tensor<int32_t> yi(y.view_at(start, Shape{m}));
    if (targets.defined())
      *p.soft_targets = Tensor<T>(targets.view_at(start * targets.dim(1), Shape{m, targets.dim(1)}));
    Tensor<T> li = scale(p.loss(p.net->forward(xi), yi), static_cast<double>(m) / static_cast<double>(rows));
    {
      std::optional<typename dist::DataParallel<T>::NoSync> quiet;
      if (dp && i + 1 < pieces) quiet.emplace(dp->no_sync());
      li.backward();
    }
    NoGradGuard no_grad;
    loss = loss.defined() ? add(loss, li.detach()) : li.detach();
    start += m;
  }
  if (p.soft_targets) *p.soft_targets = targets;
  Tensor<double>& optim_state = p.optimizer->step_state();
  RESNET_DISPATCH(p.device, record_step_loss, loss, *p.stats, &optim_state, n, N);
  if (o.clip_grad_norm() > 0) clip_grad_norm(p.optimizer->parameters(), o.clip_grad_norm());
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
  explicit EagerStep(StepOptions o = {}) : o_(o) { o_.check(); }
  void run(const Tensor<T>& x, const Tensor<int32_t>& y, double n, double N) override {
    if (o_.any())
      train_step(this->parts_, o_, x, y, n, N);
    else
      train_step(this->parts_, x, y, n, N);
  }
  const StepOptions& options() const { return o_; }

 private:
  StepOptions o_;
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
