// Optimizer base: holds named parameters (so its state can be saved by name), the learning rate and the
// step count. State tensors are allocated at construction, on each parameter's device: create the
// optimizer after moving the model (and after replacing or freezing any of its layers).
//
// Frozen parameters (requires_grad false, e.g. after Module::requires_grad_(false)) are skipped, with one
// line on stderr saying how many; skipped() names them. optim::trainable() filters a list the same way.
// Hyper-parameters (lr and the subclass's) are saved with the state and restored exactly by checkpoints.
//
// The learning rate and the step count the update kernels read live in step_state(), a tensor of
// optim_state::kSize doubles on the parameters' device (backend/optim_math.hpp): set_lr() and
// set_step_count() write it without waiting for the device, step() advances the count there with a
// kernel, so a step never waits and a captured CUDA graph of step() replays with the current values. A
// non-zero kSkip element (train::Trainer sets it on the device for a non-finite loss) makes step() change
// nothing; step_count() is the host's count of step() calls and does not see skips.
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "resnet/autograd/grad_mode.hpp"
#include "resnet/backend/async_copy.hpp"
#include "resnet/backend/dispatch.hpp"
#include "resnet/core/notice.hpp"
#include "resnet/optim/check.hpp"
#include "resnet/optim/param_groups.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace optim {

template <typename P>
using NamedParameters = std::vector<std::pair<std::string, Tensor<P>>>;

// Whether weight decay applies to a parameter: every one by default (PyTorch), or only tensors of rank > 1
// (conv and linear weights, not BN weights or biases) when `decay_1d` is false.
inline bool decays(const TensorBase& p, bool decay_1d) { return decay_1d || p.rank() > 1; }

// The parameters that require grad (the ones an optimizer trains).
template <typename P>
NamedParameters<P> trainable(const NamedParameters<P>& params) {
  NamedParameters<P> out;
  for (auto& kv : params)
    if (kv.second.requires_grad()) out.push_back(kv);
  return out;
}

using HyperParameters = std::map<std::string, double>;

template <typename P>
class Optimizer {
 public:
  Optimizer(const NamedParameters<P>& params, double lr);
  virtual ~Optimizer() = default;

  // One update of every parameter that has a gradient.
  virtual void step() = 0;
  virtual std::string name() const = 0;

  void zero_grad();
  double lr() const { return lr_; }
  // Takes effect at the next step(); writes the device's copy only when the value changes.
  void set_lr(double lr);

  // Puts the trained parameters `select` picks (and no earlier group took) into a group of their own
  // (optim/param_groups.hpp), before the first step. Returns how many it took; none is an error.
  size_t add_group(const ParamSelector& select, GroupOptions o);
  size_t group_count() const { return groups_.size(); }
  // 0: the optimizer's own options; g > 0: the g-th group added.
  size_t group_of(size_t i) const { return group_of_.at(i); }
  int64_t step_count() const { return steps_; }
  void set_step_count(int64_t s);
  // The host's count after n steps that ran without step() being called (replays of a captured CUDA graph
  // of step(): the captured kernel advanced the device's count itself), so nothing is written there.
  void add_host_steps(int64_t n) { steps_ += n; }
  // [lr, step, skip, -] on the parameters' device (backend/optim_math.hpp).
  Tensor<double>& step_state() { return step_state_; }
  const Tensor<double>& step_state() const { return step_state_; }
  const NamedParameters<P>& parameters() const { return params_; }
  const NamedParameters<P>& skipped() const { return skipped_; }

  // Named state tensors (for checkpoints), e.g. "layer1.0.conv1.weight.momentum_buffer".
  virtual std::vector<std::pair<std::string, TensorBase>> state() const = 0;

  // Every hyper-parameter by name ("lr", "momentum", "beta1", ...; booleans as 0/1), for checkpoints.
  virtual HyperParameters hyper_parameters() const { return {{"lr", lr_}}; }
  // Restores what hyper_parameters() returned; names it does not know are an error, missing ones stay.
  virtual void set_hyper_parameters(const HyperParameters& h);

 protected:
  // For subclasses: takes "lr" and hands back the rest.
  HyperParameters take_lr(HyperParameters h);
  static bool flag(double v) { return v != 0; }
  // The start of step(): the device's step count advances unless the step is skipped.
  void begin_step();
  // What the update of parameter i reads: its group's step state, and weight decay (`own`: the
  // optimizer's for that parameter).
  Tensor<double>& state_for(size_t i);
  double decay_for(size_t i, double own) const;

  struct Group {
    GroupOptions o;
    Tensor<double> state;  // defined when the group has a rate of its own
  };
  void write_group_lr(Group& g);

  NamedParameters<P> params_;
  NamedParameters<P> skipped_;
  std::vector<Group> groups_;
  std::vector<size_t> group_of_;  // per parameter: 0, or its group's index + 1
  double lr_;
  int64_t steps_ = 0;
  Tensor<double> step_state_;
};

template <typename P>
Optimizer<P>::Optimizer(const NamedParameters<P>& params, double lr) : lr_(lr) {
  check_learning_rate("optimizer", lr);
  for (auto& kv : params) {
    RESNET_CHECK(kv.second.defined(), "optimizer: parameter '", kv.first, "' is undefined");
    (kv.second.requires_grad() ? params_ : skipped_).push_back(kv);
  }
  RESNET_CHECK(
      !params_.empty(), "optimizer: no parameters to optimize",
      skipped_.empty() ? std::string() : " (all " + std::to_string(skipped_.size()) + " are frozen)");
  if (!skipped_.empty())  // a note, not an error: freezing is deliberate (set_notice_handler silences it)
    notice("optimizer: skipping " + std::to_string(skipped_.size()) +
           " frozen parameters (requires_grad off), e.g. '" + skipped_.front().first + "'");
  group_of_.assign(params_.size(), 0);
  const Device d = params_.front().second.device();
  for (auto& kv : params_)
    RESNET_CHECK(kv.second.device() == d, "optimizer: parameter '", kv.first, "' is on ",
                 kv.second.device().to_string(), " but '", params_.front().first, "' is on ", d.to_string(),
                 "; one optimizer updates parameters of one device");
  step_state_ = Tensor<double>::zeros({optim_state::kSize}, d);
  const double init[2] = {lr_, 0.0};
  write_async(step_state_, optim_state::kLr, init, 2);
}

template <typename P>
void Optimizer<P>::zero_grad() {
  for (auto& kv : params_) {
    Tensor<P> g = kv.second.grad();
    if (g.defined()) g.zero_();
  }
}

template <typename P>
void Optimizer<P>::set_lr(double lr) {
  check_learning_rate(name(), lr);
  if (lr == lr_) return;
  lr_ = lr;
  write_async(step_state_, optim_state::kLr, &lr_, 1);
  for (auto& g : groups_) write_group_lr(g);
}

template <typename P>
size_t Optimizer<P>::add_group(const ParamSelector& select, GroupOptions o) {
  o.check();
  RESNET_CHECK(steps_ == 0, name(), ": parameter groups are made before the first step");
  Group g{o, Tensor<double>()};
  if (o.lr_scale() != 1.0) {  // a rate of its own: its own copy of the step state
    g.state = Tensor<double>::zeros({optim_state::kSize}, step_state_.device());
    write_group_lr(g);
  }
  size_t taken = 0;
  for (size_t i = 0; i < params_.size(); ++i)
    if (group_of_[i] == 0 && select(params_[i].first, params_[i].second)) {
      group_of_[i] = groups_.size() + 1;
      ++taken;
    }
  RESNET_CHECK(taken > 0, name(), ": the parameter group selects no parameter (groups made before took ",
               "theirs)");
  groups_.push_back(g);
  return taken;
}

template <typename P>
void Optimizer<P>::set_step_count(int64_t s) {
  steps_ = s;
  const double v = static_cast<double>(s);
  write_async(step_state_, optim_state::kStep, &v, 1);
}

template <typename P>
void Optimizer<P>::set_hyper_parameters(const HyperParameters& h) {
  for (auto& kv : h) RESNET_CHECK(kv.first == "lr", name(), ": unknown hyper-parameter '", kv.first, "'");
  if (h.count("lr")) {
    set_lr(h.at("lr"));
  }
}

template <typename P>
HyperParameters Optimizer<P>::take_lr(HyperParameters h) {
  auto it = h.find("lr");
  if (it != h.end()) {
    Optimizer::set_hyper_parameters({{"lr", it->second}});  // the base's: checks and sets lr only
    h.erase(it);
  }
  return h;
}

template <typename P>
void Optimizer<P>::begin_step() {
  RESNET_DISPATCH(step_state_.device(), optim_begin_step, step_state_);
  for (auto& g : groups_)  // a group's step number and skip flag are the optimizer's
    if (g.state.defined()) {
      TensorBase dst = g.state.view_at(optim_state::kStep, Shape{2});
      copy_into(dst, step_state_.view_at(optim_state::kStep, Shape{2}));
    }
}

template <typename P>
Tensor<double>& Optimizer<P>::state_for(size_t i) {
  const size_t g = group_of_[i];
  return g > 0 && groups_[g - 1].state.defined() ? groups_[g - 1].state : step_state_;
}

template <typename P>
double Optimizer<P>::decay_for(size_t i, double own) const {
  const size_t g = group_of_[i];
  return g > 0 && groups_[g - 1].o.weight_decay() >= 0 ? groups_[g - 1].o.weight_decay() : own;
}

template <typename P>
void Optimizer<P>::write_group_lr(Group& g) {
  if (!g.state.defined()) return;
  const double v = lr_ * g.o.lr_scale();
  write_async(g.state, optim_state::kLr, &v, 1);
}

}  // namespace optim
}  // namespace RESNET_ABI
}  // namespace resnet
