// AdamW: Adam with decoupled weight decay and bias correction, as torch.optim.AdamW.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/arg.hpp"
#include "resnet/optim/optimizer.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace optim {

// AdamWOptions().lr(3e-4).weight_decay(0.05): named setters (core/arg.hpp).
struct AdamWOptions {
  RESNET_ARG(double, lr) = 1e-3;
  RESNET_ARG(double, beta1) = 0.9;
  RESNET_ARG(double, beta2) = 0.999;
  RESNET_ARG(double, eps) = 1e-8;
  RESNET_ARG(double, weight_decay) = 0.01;
  RESNET_ARG(bool, decay_1d) = true;  // false: no weight decay on BN weights and biases
};

template <typename P>
class AdamW : public Optimizer<P> {
 public:
  AdamW(const NamedParameters<P>& params, const AdamWOptions& o);

  void step() override;
  std::string name() const override { return "adamw"; }
  std::vector<std::pair<std::string, TensorBase>> state() const override;
  const AdamWOptions& options() const { return opts_; }

  HyperParameters hyper_parameters() const override;
  void set_hyper_parameters(const HyperParameters& h) override;

 private:
  static void check(const AdamWOptions& o);
  AdamWOptions opts_;
  std::vector<Tensor<P>> m_, v_;
};

template <typename P>
AdamW<P>::AdamW(const NamedParameters<P>& params, const AdamWOptions& o)
    : Optimizer<P>(params, o.lr()), opts_(o) {
  check(o);
  for (auto& kv : this->params_) {
    m_.push_back(Tensor<P>::zeros(kv.second.shape(), kv.second.device()));
    v_.push_back(Tensor<P>::zeros(kv.second.shape(), kv.second.device()));
  }
}

template <typename P>
void AdamW<P>::step() {
  NoGradGuard guard;
  ++this->steps_;
  this->begin_step();  // the bias correction's step number, on the device
  for (size_t i = 0; i < this->params_.size(); ++i) {
    Tensor<P>& p = this->params_[i].second;
    Tensor<P> g = p.grad();
    if (!g.defined()) continue;
    AdamHyper h;
    h.beta1 = opts_.beta1();
    h.beta2 = opts_.beta2();
    h.eps = opts_.eps();
    h.weight_decay = this->decay_for(i, decays(p, opts_.decay_1d()) ? opts_.weight_decay() : 0.0);
    RESNET_DISPATCH(p.device(), adamw_step, p, g, m_[i], v_[i], this->state_for(i), h);
  }
}

template <typename P>
auto AdamW<P>::state() const -> std::vector<std::pair<std::string, TensorBase>> {
  std::vector<std::pair<std::string, TensorBase>> s;
  for (size_t i = 0; i < m_.size(); ++i) {
    s.emplace_back(this->params_[i].first + ".exp_avg", m_[i]);
    s.emplace_back(this->params_[i].first + ".exp_avg_sq", v_[i]);
  }
  return s;
}

template <typename P>
auto AdamW<P>::hyper_parameters() const -> HyperParameters {
  return {{"lr", this->lr_},
          {"beta1", opts_.beta1()},
          {"beta2", opts_.beta2()},
          {"eps", opts_.eps()},
          {"weight_decay", opts_.weight_decay()},
          {"decay_1d", opts_.decay_1d() ? 1.0 : 0.0}};
}

template <typename P>
void AdamW<P>::set_hyper_parameters(const HyperParameters& h) {
  AdamWOptions o = opts_;
  for (auto& kv : this->take_lr(h)) {
    if (kv.first == "beta1")
      o.beta1(kv.second);
    else if (kv.first == "beta2")
      o.beta2(kv.second);
    else if (kv.first == "eps")
      o.eps(kv.second);
    else if (kv.first == "weight_decay")
      o.weight_decay(kv.second);
    else if (kv.first == "decay_1d")
      o.decay_1d(this->flag(kv.second));
    else
      RESNET_FAIL("adamw: unknown hyper-parameter '", kv.first, "'");
  }
  check(o);
  opts_ = o;
  opts_.lr(this->lr_);
}

template <typename P>
void AdamW<P>::check(const AdamWOptions& o) {
  RESNET_CHECK(o.beta1() >= 0 && o.beta1() < 1 && o.beta2() >= 0 && o.beta2() < 1,
               "AdamW: betas must be in [0, 1)");
  RESNET_CHECK(
      std::isfinite(o.eps()) && o.eps() > 0 && std::isfinite(o.weight_decay()) && o.weight_decay() >= 0,
      "AdamW: eps must be finite and positive and weight_decay finite and non-negative, got eps ", o.eps(),
      ", weight_decay ", o.weight_decay());
}

}  // namespace optim
}  // namespace RESNET_ABI
}  // namespace resnet
