// SGD with momentum, dampening, Nesterov and (coupled) weight decay, as torch.optim.SGD.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/arg.hpp"
#include "resnet/optim/optimizer.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace optim {

// SGDOptions().lr(0.05).momentum(0.9).weight_decay(5e-4): named setters (core/arg.hpp).
struct SGDOptions {
  RESNET_ARG(double, lr) = 0.1;
  RESNET_ARG(double, momentum) = 0.0;
  RESNET_ARG(double, dampening) = 0.0;
  RESNET_ARG(double, weight_decay) = 0.0;
  RESNET_ARG(bool, nesterov) = false;
  RESNET_ARG(bool, decay_1d) = true;  // false: no weight decay on BN weights and biases
};

template <typename P>
class SGD : public Optimizer<P> {
 public:
  SGD(const NamedParameters<P>& params, const SGDOptions& o);

  void step() override;
  std::string name() const override { return "sgd"; }
  std::vector<std::pair<std::string, TensorBase>> state() const override;
  const SGDOptions& options() const { return opts_; }

  HyperParameters hyper_parameters() const override;
  void set_hyper_parameters(const HyperParameters& h) override;

 private:
  static void check(const SGDOptions& o);
  SGDOptions opts_;
  std::vector<Tensor<P>> buffers_;
};

template <typename P>
SGD<P>::SGD(const NamedParameters<P>& params, const SGDOptions& o) : Optimizer<P>(params, o.lr()), opts_(o) {
  check(o);
  if (o.momentum() != 0)
    for (auto& kv : this->params_)
      buffers_.push_back(Tensor<P>::zeros(kv.second.shape(), kv.second.device()));
}

template <typename P>
void SGD<P>::step() {
  NoGradGuard guard;
  this->begin_step();  // step 1 (the first) copies the gradient into the momentum buffer
  for (size_t i = 0; i < this->params_.size(); ++i) {
    Tensor<P>& p = this->params_[i].second;
    Tensor<P> g = p.grad();
    if (!g.defined()) continue;
    SgdHyper h;
    h.momentum = opts_.momentum();
    h.dampening = opts_.dampening();
    h.weight_decay = this->decay_for(i, decays(p, opts_.decay_1d()) ? opts_.weight_decay() : 0.0);
    h.nesterov = opts_.nesterov();
    Tensor<P> buf = buffers_.empty() ? Tensor<P>() : buffers_[i];
    RESNET_DISPATCH(p.device(), sgd_step, p, g, buf, this->state_for(i), h);
  }
  ++this->steps_;
}

template <typename P>
auto SGD<P>::state() const -> std::vector<std::pair<std::string, TensorBase>> {
  std::vector<std::pair<std::string, TensorBase>> s;
  for (size_t i = 0; i < buffers_.size(); ++i)
    s.emplace_back(this->params_[i].first + ".momentum_buffer", buffers_[i]);
  return s;
}

template <typename P>
auto SGD<P>::hyper_parameters() const -> HyperParameters {
  return {{"lr", this->lr_},
          {"momentum", opts_.momentum()},
          {"dampening", opts_.dampening()},
          {"weight_decay", opts_.weight_decay()},
          {"nesterov", opts_.nesterov() ? 1.0 : 0.0},
          {"decay_1d", opts_.decay_1d() ? 1.0 : 0.0}};
}

template <typename P>
void SGD<P>::set_hyper_parameters(const HyperParameters& h) {
  SGDOptions o = opts_;
  for (auto& kv : this->take_lr(h)) {
    if (kv.first == "momentum")
      o.momentum(kv.second);
    else if (kv.first == "dampening")
      o.dampening(kv.second);
    else if (kv.first == "weight_decay")
      o.weight_decay(kv.second);
    else if (kv.first == "nesterov")
      o.nesterov(this->flag(kv.second));
    else if (kv.first == "decay_1d")
      o.decay_1d(this->flag(kv.second));
    else
      RESNET_FAIL("sgd: unknown hyper-parameter '", kv.first, "'");
  }
  check(o);
  // Momentum buffers exist or not from construction on: switching momentum on or off needs a new SGD.
  RESNET_CHECK((o.momentum() != 0) == !buffers_.empty(), "sgd: momentum ", o.momentum(),
               " does not fit an optimizer built with momentum ", opts_.momentum());
  opts_ = o;
  opts_.lr(this->lr_);
}

template <typename P>
void SGD<P>::check(const SGDOptions& o) {
  for (double v : {o.momentum(), o.weight_decay(), o.dampening()})
    RESNET_CHECK(std::isfinite(v) && v >= 0,
                 "SGD: momentum, dampening and weight_decay must be finite and "
                 "non-negative, got momentum ",
                 o.momentum(), ", dampening ", o.dampening(), ", weight_decay ", o.weight_decay());
  RESNET_CHECK(!o.nesterov() || (o.momentum() > 0 && o.dampening() == 0),
               "SGD: Nesterov needs momentum > 0 and no dampening");
}

}  // namespace optim
}  // namespace RESNET_ABI
}  // namespace resnet
