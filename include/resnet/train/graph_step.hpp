// A training step run as a CUDA graph (cuda::Graph, backend/cuda/graph.hpp): the whole step (zero_grad,
// forward, loss, backward, optimizer update) is captured after warm-up and replayed with one launch each
// step; each batch is copied into static input and label tensors first. Off by default everywhere
// (TrainerOptions::cuda_graph, `--cuda-graph on`): it has never run on a GPU.
//
//   auto fn = train::standard_step<float>(*model, *optimizer, /*label_smoothing=*/0.1);
//   train::GraphedStep<float> step(device, fn);
//   step.watch(*model);
//   step.watch(*optimizer);
//   Tensor<float> loss = step.run(x, y);  // a device tensor, overwritten by the next run()
//
// Per batch shape (GraphPolicy, host-only): `warmup` eager steps first (cuDNN chooses its algorithms and
// gradients get their buffers, both of which a capture cannot do), then one capture whose work runs at
// once by a replay, then replays. A new shape (the last, smaller batch of an epoch) is a new key: it runs
// eagerly until it too has had its warm-up; at most `max_graphs` shapes keep a graph (each holds a private
// pool of a whole step's activations), the least recently used is dropped.
//
// What a replay cannot change is checked, not assumed:
//  - kernel arguments are frozen at capture: values of the optimizer that reach its kernels as arguments
//    (its hyper-parameters, and the learning rate unless the optimizer reads it from a device tensor) are
//    compared with the captured ones before every replay; a change captures the step again (said once on
//    stderr). An optimizer whose step number is a kernel argument (AdamW without device-side step state) is
//    refused.
//  - host-side counters the step advances (a module's host-only int64 buffers, the host's copy of the
//    optimizer's step count) move once during the capture and not at all on a replay: a replay advances
//    them by what the capture did (Optimizer::add_host_steps: the device's count is the kernel's).
//  - the gradients are zeroed inside the step (in place, so the captured memset hits the same buffers) and
//    the tape holds nothing across steps (backward frees it; the loss kept is detached).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "resnet/nn/module.hpp"
#include "resnet/ops/ops.hpp"
#include "resnet/optim/optimizer.hpp"
#include "resnet/train/graph_policy.hpp"
#if RESNET_WITH_CUDA
#include "resnet/backend/cuda/graph.hpp"
#endif

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

namespace detail {
// Whether an optimizer reads its learning rate and step number from a device tensor (step_state()), so
// that a captured update sees new values on each replay.
template <typename O, typename = void>
struct reads_step_state : std::false_type {};
template <typename O>
struct reads_step_state<O, std::void_t<decltype(std::declval<const O&>().step_state())>> : std::true_type {};

// The optimizer's values a capture freezes into kernel arguments.
template <typename P>
optim::HyperParameters frozen_values(const optim::Optimizer<P>& o) {
  optim::HyperParameters h = o.hyper_parameters();
  if (reads_step_state<optim::Optimizer<P>>::value) h.erase("lr");
  return h;
}
std::string describe_change(const optim::HyperParameters& was, const optim::HyperParameters& now);
}  // namespace detail

// The usual step: zero_grad (in place), forward, cross-entropy, backward, update. Returns the loss.
template <typename T>
std::function<Tensor<T>(const Tensor<T>&, const Tensor<int32_t>&)> standard_step(
    nn::Module<T>& model, optim::Optimizer<acc_t<T>>& optimizer, double label_smoothing = 0) {
  return [&model, &optimizer, label_smoothing](const Tensor<T>& x, const Tensor<int32_t>& y) {
    optimizer.zero_grad();
    Tensor<T> loss = cross_entropy(model.forward(x), y, label_smoothing);
    loss.backward();
    optimizer.step();
    return loss;
  };
}

template <typename T>
class GraphedStep {
 public:
  using P = acc_t<T>;
  using StepFn = std::function<Tensor<T>(const Tensor<T>&, const Tensor<int32_t>&)>;

  GraphedStep(Device device, StepFn step, GraphedStepOptions o = {})
      : device_(device), step_(std::move(step)), o_(o), policy_(o.warmup(), o.max_graphs()) {
    RESNET_CHECK(static_cast<bool>(step_), "cuda graph: no step function given");
    RESNET_CHECK(device.is_cuda(), "cuda graph: CUDA graphs need a CUDA device, but the step runs on ",
                 device.to_string(), "; turn cuda_graph off (--cuda-graph off) there");
#if !RESNET_WITH_CUDA
    RESNET_FAIL("cuda graph: this program was built without CUDA support (link resnet::cuda)");
#endif
  }

  // Host-only buffers of `model` (BatchNorm's num_batches_tracked while it lives on the host) that a replay
  // must advance as the captured step did. Watch before the first run().
  void watch(nn::Module<T>& model) {
    for (auto& kv : model.named_buffers())
      if (kv.second.defined() && kv.second.device().is_cpu() && kv.second.dtype() == DType::I64 &&
          kv.second.numel() == 1)
        counters_.push_back(Tensor<int64_t>(kv.second));
  }
  // The optimizer whose step count a replay advances and whose frozen values are checked before a replay.
  void watch(optim::Optimizer<P>& optimizer) {
    RESNET_CHECK(detail::reads_step_state<optim::Optimizer<P>>::value || optimizer.name() != "adamw",
                 "cuda graph: ", optimizer.name(),
                 " passes its step number (bias correction) to its kernels as ",
                 "an argument, which a captured step would freeze; use SGD, or turn cuda_graph off");
    optimizer_ = &optimizer;
  }

  // One training step on (x, y), device tensors of the step's device. Returns the loss: in a replayed step
  // the graph's own output tensor, overwritten by the next run().
  Tensor<T> run(const Tensor<T>& x, const Tensor<int32_t>& y) {
    RESNET_CHECK(x.defined() && y.defined() && x.device() == device_ && y.device() == device_,
                 "cuda graph: the batch must be on ", device_.to_string(), " (images ",
                 x.defined() ? x.describe() : std::string("undefined"), ", labels ",
                 y.defined() ? y.describe() : std::string("undefined"), ")");
    GraphPolicy::Key key = x.shape().dims();
    key.push_back(-1);
    for (int64_t d : y.shape().dims()) key.push_back(d);
    key.push_back(x.suggest_memory_format() == MemoryFormat::ChannelsLast ? 1 : 0);
    auto found = entries_.find(key);
    if (found != entries_.end() && optimizer_) {
      optim::HyperParameters now = detail::frozen_values(*optimizer_);
      if (now != found->second->frozen) {
        if (!warned_recapture_) {
          std::fprintf(stderr,
                       "cuda graph: the optimizer's %s since the step was captured; capturing it again (its "
                       "kernels take that value as an argument: every change costs a capture)\n",
                       detail::describe_change(found->second->frozen, now).c_str());
          warned_recapture_ = true;
        }
        entries_.erase(found);
        policy_.invalidate(key);
        ++recaptures_for_values_;
      }
    }
    const GraphPolicy::Decision d = policy_.next(key);
    last_ = d.action;
    if (d.action == GraphAction::Eager) {
      ++eager_;
      return step_(x, y);
    }
    if (d.action == GraphAction::Capture) {
      if (d.evict) entries_.erase(d.evicted);
      return capture(key, x, y);
    }
    Entry& e = *entries_.at(key);
    load(e, x, y);
    e.graph.replay();
    for (size_t i = 0; i < counters_.size(); ++i) counters_[i].data()[0] += e.counter_steps[i];
    // The captured update advanced the device's step count itself: only the host's copy moves here.
    if (optimizer_) optimizer_->add_host_steps(e.optimizer_steps);
    ++replays_;
    return e.loss;
  }

  GraphAction last_action() const { return last_; }
  int64_t eager_steps() const { return eager_; }
  int64_t captures() const { return captures_; }
  int64_t replays() const { return replays_; }
  int64_t recaptures_for_changed_values() const { return recaptures_for_values_; }
  size_t graphs() const { return entries_.size(); }
  // Device memory of the graphs' private pools.
  size_t pool_bytes() const {
    size_t n = 0;
    for (auto& kv : entries_) n += kv.second->graph.pool_bytes();
    return n;
  }
  // Drops every graph (and its pool); the next step of each shape captures again.
  void clear() {
    for (auto& kv : entries_) policy_.invalidate(kv.first);
    entries_.clear();
  }

 private:
#if RESNET_WITH_CUDA
  using GraphType = cuda::Graph;
#else
  struct GraphType {
    void capture(const std::function<void()>&, int) {}
    void replay() {}
    size_t pool_bytes() const { return 0; }
  };
#endif
  struct Entry {
    // The graph is declared last so that it dies first (its destructor waits for its replays and frees
    // its pool), before the static tensors it reads and writes.
    Tensor<T> x;
    Tensor<int32_t> y;
    Tensor<T> loss;
    std::vector<int64_t> counter_steps;
    int64_t optimizer_steps = 0;
    optim::HyperParameters frozen;
    GraphType graph;
  };

  void load(Entry& e, const Tensor<T>& x, const Tensor<int32_t>& y) {
    if (!x.same_storage(e.x)) copy_into(e.x, x);  // on the current stream, before the replay
    if (!y.same_storage(e.y)) copy_into(e.y, y);
  }

  Tensor<T> capture(const GraphPolicy::Key& key, const Tensor<T>& x, const Tensor<int32_t>& y) {
    auto e = std::make_unique<Entry>();
    e->x = Tensor<T>::empty(x.shape(), device_, x.suggest_memory_format());
    e->y = Tensor<int32_t>::empty(y.shape(), device_);
    load(*e, x, y);
#if RESNET_WITH_CUDA
    if (o_.release_cache_before_capture()) cuda::empty_cache();
#endif
    std::vector<int64_t> before;
    for (auto& c : counters_) before.push_back(c.data()[0]);
    const int64_t opt_before = optimizer_ ? optimizer_->step_count() : 0;
    Entry* ep = e.get();
    try {
      e->graph.capture([this, ep]() { ep->loss = step_(ep->x, ep->y).detach(); }, device_.index);
    } catch (...) {
      policy_.invalidate(key);
      throw;
    }
    for (size_t i = 0; i < counters_.size(); ++i)
      e->counter_steps.push_back(counters_[i].data()[0] - before[i]);
    e->optimizer_steps = optimizer_ ? optimizer_->step_count() - opt_before : 0;
    if (optimizer_) e->frozen = detail::frozen_values(*optimizer_);
    e->graph.replay();  // the capture ran nothing: this step's work runs now
    ++captures_;
    Tensor<T> loss = e->loss;
    entries_[key] = std::move(e);
    return loss;
  }

  Device device_;
  StepFn step_;
  GraphedStepOptions o_;
  GraphPolicy policy_;
  std::map<GraphPolicy::Key, std::unique_ptr<Entry>> entries_;
  std::vector<Tensor<int64_t>> counters_;
  optim::Optimizer<P>* optimizer_ = nullptr;
  GraphAction last_ = GraphAction::Eager;
  int64_t eager_ = 0, captures_ = 0, replays_ = 0, recaptures_for_values_ = 0;
  bool warned_recapture_ = false;
};

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/train/graph_step_inl.hpp"
#endif
