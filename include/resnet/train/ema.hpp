// An exponential moving average of a model's weights, as timm's ModelEmaV3 (timm/utils/model_ema.py):
// after optimizer update u (1-based) every floating tensor of the state_dict, parameters and BatchNorm
// running statistics alike, moves as ema <- decay_u ema + (1 - decay_u) w (timm's lerp with weight
// 1 - decay); integer buffers are copied. decay_u (timm's get_decay): s = u - update_after_step - 1; 0 when
// s <= 0 (the first update copies the model), else `decay`, or with a warm-up
//   EmaWarmup::Power  1 - (1 + s / warmup_gamma)^-warmup_power, clamped to [min_decay, decay] (timm's);
//   EmaWarmup::Count  min(decay, (1 + s) / (10 + s)) (TensorFlow's ExponentialMovingAverage num_updates).
// average_buffers false copies the running statistics instead (timm's exclude_buffers).
//
// The average lives in tensors of the model's own dtypes on its device and is updated there with the
// backend's scale and add_inplace. It is evaluated by swapping it into the model (with_weights) and saved as
// a weights checkpoint any loader reads, with the update count in its metadata for an exact resume.
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "resnet/autograd/grad_mode.hpp"
#include "resnet/backend/dispatch.hpp"
#include "resnet/core/arg.hpp"
#include "resnet/io/checkpoint.hpp"
#include "resnet/nn/module.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

enum class EmaWarmup { None, Power, Count };

struct EmaOptions {
  RESNET_ARG(double, decay) = 0.9998;
  RESNET_ARG(EmaWarmup, warmup) = EmaWarmup::None;
  RESNET_ARG(double, warmup_gamma) = 1.0;
  RESNET_ARG(double, warmup_power) = 2.0 / 3.0;
  RESNET_ARG(double, min_decay) = 0.0;
  RESNET_ARG(int64_t, update_after_step) = 0;
  RESNET_ARG(bool, average_buffers) = true;
};

constexpr const char* kEmaUpdatesKey = "ema_updates";

// The file an EMA is saved in beside a checkpoint: run/last.safetensors -> run/last.ema.safetensors.
inline std::string ema_path_for(const std::string& checkpoint) {
  const std::string ext = ".safetensors";
  const bool has = checkpoint.size() >= ext.size() &&
                   checkpoint.compare(checkpoint.size() - ext.size(), ext.size(), ext) == 0;
  return (has ? checkpoint.substr(0, checkpoint.size() - ext.size()) : checkpoint) + ".ema" + ext;
}

namespace detail {
// ema <- decay ema + (1 - decay) w, on their device; integer tensors are copied.
inline void lerp_into(TensorBase& ema, const TensorBase& w_in, double decay, bool average) {
  const bool floating = ema.dtype() == DType::F32 || ema.dtype() == DType::F64 ||
                        ema.dtype() == DType::BF16 || ema.dtype() == DType::F16;
  if (!average || !floating || decay == 0.0) {
    copy_into(ema, w_in);
    return;
  }
  TensorBase w = w_in;
  if (!ema.same_layout(w)) {  // the model changed memory format since: compare element for element
    w = TensorBase::empty(ema.shape(), ema.dtype(), ema.device(), ema.suggest_memory_format());
    copy_into(w, w_in);
  }
  auto run = [&](auto tag) {
    using U = decltype(tag);
    Tensor<U> e(ema);
    RESNET_DISPATCH(ema.device(), scale, e, decay, e);
    RESNET_DISPATCH(ema.device(), add_inplace, e, Tensor<U>(w), 1.0 - decay);
  };
  switch (ema.dtype()) {
    case DType::F32:
      return run(float());
    case DType::F64:
      return run(double());
    case DType::BF16:
      return run(bf16_t());
#if RESNET_WITH_CUDA
    case DType::F16: {
      Tensor<half_t> e(ema);
      cuda::scale(e, decay, e);
      cuda::add_inplace(e, Tensor<half_t>(w), 1.0 - decay);
      return;
    }
#endif
    default:
      RESNET_FAIL("ModelEma: unsupported dtype ", dtype_name(ema.dtype()), " on ", ema.device().to_string());
  }
}
}  // namespace detail

template <typename T>
class ModelEma {
 public:
  // A copy of the model's state as it is now (replaced by the first update).
  ModelEma(const nn::Module<T>& model, EmaOptions o = {}) : o_(o) {
    RESNET_CHECK(std::isfinite(o.decay()) && o.decay() >= 0 && o.decay() < 1,
                 "ModelEma: decay must be in [0, 1), got ", o.decay());
    RESNET_CHECK(o.min_decay() >= 0 && o.min_decay() <= o.decay(),
                 "ModelEma: min_decay must be in [0, decay = ", o.decay(), "], got ", o.min_decay());
    RESNET_CHECK(o.warmup_gamma() > 0 && o.warmup_power() > 0,
                 "ModelEma: warmup_gamma and warmup_power must be positive, got ", o.warmup_gamma(), " and ",
                 o.warmup_power());
    RESNET_CHECK(o.update_after_step() >= 0, "ModelEma: update_after_step must be >= 0, got ",
                 o.update_after_step());
    std::set<std::string> params;
    for (auto& kv : model.named_parameters()) params.insert(kv.first);
    for (auto& kv : model.state_dict()) {
      state_.emplace_back(kv.first, clone_of(kv.second));
      is_parameter_.push_back(params.count(kv.first) > 0);
    }
  }

  // The decay of update u (1-based).
  double decay_at(int64_t u) const {
    const double s = static_cast<double>(u - o_.update_after_step() - 1);
    if (s <= 0) return 0.0;
    switch (o_.warmup()) {
      case EmaWarmup::Power:
        return std::max(std::min(1.0 - std::pow(1.0 + s / o_.warmup_gamma(), -o_.warmup_power()), o_.decay()),
                        o_.min_decay());
      case EmaWarmup::Count:
        return std::min(o_.decay(), (1.0 + s) / (10.0 + s));
      default:
        return o_.decay();
    }
  }

  // After an optimizer step: one more update towards the model's current state.
  void update(const nn::Module<T>& model) {
    NoGradGuard no_grad;
    const double d = decay_at(++updates_);
    auto now = model.state_dict();
    RESNET_CHECK(now.size() == state_.size(), "ModelEma: the model has ", now.size(),
                 " state tensors, the average ", state_.size());
    for (size_t i = 0; i < now.size(); ++i) {
      RESNET_CHECK(now[i].first == state_[i].first, "ModelEma: the model's tensor '", now[i].first,
                   "' where the average has '", state_[i].first, "'");
      detail::lerp_into(state_[i].second, now[i].second, d, o_.average_buffers() || is_parameter_[i]);
    }
  }

  // f() run with the average in the model's tensors; the model's own are put back after, whatever f does.
  template <typename F>
  decltype(auto) with_weights(nn::Module<T>& model, F&& f) const {
    auto now = model.state_dict();
    std::vector<TensorBase> saved;
    for (auto& kv : now) saved.push_back(clone_of(kv.second));
    for (size_t i = 0; i < now.size(); ++i) copy_into(now[i].second, state_[i].second);
    struct Restore {
      std::vector<std::pair<std::string, TensorBase>>& now;
      std::vector<TensorBase>& saved;
      ~Restore() {
        for (size_t i = 0; i < now.size(); ++i) copy_into(now[i].second, saved[i]);
      }
    } restore{now, saved};
    return f();
  }

  // A weights checkpoint of the average (io::load reads it into a model), with the update count.
  void save(const std::string& path, io::TrainingState state = {}) const {
    state.optimizer.clear();
    std::vector<TensorBase> host;
    std::vector<io::SafetensorsEntry> entries;
    host.reserve(state_.size());
    for (auto& kv : state_) {
      host.push_back(io::detail::host_contiguous(kv.second));
      entries.push_back(
          io::SafetensorsEntry{kv.first, kv.second.dtype(), kv.second.shape(), host.back().raw_data()});
    }
    auto meta = io::detail::state_to_metadata(state);
    meta[kEmaUpdatesKey] = std::to_string(updates_);
    io::write_safetensors(path, entries, meta);
  }
  // Restores what save() wrote (the whole file is checked before anything changes); returns its state.
  io::TrainingState load(const std::string& path) {
    io::SafetensorsReader r = io::SafetensorsReader::open(path);
    io::detail::check_tensor_set(r, state_, "", "", "EMA of the model", "");
    const std::string where = "EMA checkpoint '" + path + "'";
    RESNET_CHECK(r.metadata().count(kEmaUpdatesKey), where, ": no '", kEmaUpdatesKey, "' in its metadata");
    const int64_t u = io::detail::parse_int_field(r.metadata(), kEmaUpdatesKey, where);
    RESNET_CHECK(u >= 0, where, ": negative ", kEmaUpdatesKey, " ", u);
    std::vector<TensorBase> staged;
    for (auto& kv : state_) staged.push_back(r.read(kv.first));
    for (size_t i = 0; i < state_.size(); ++i) copy_into(state_[i].second, staged[i]);
    updates_ = u;
    return io::detail::metadata_to_state(r.metadata(), path);
  }

  int64_t updates() const { return updates_; }
  const EmaOptions& options() const { return o_; }
  const std::vector<std::pair<std::string, TensorBase>>& state() const { return state_; }

 private:
  static TensorBase clone_of(const TensorBase& t) {
    TensorBase c = TensorBase::empty(t.shape(), t.dtype(), t.device(),
                                     t.is_dense() ? t.suggest_memory_format() : MemoryFormat::Contiguous);
    copy_into(c, t);
    return c;
  }

  EmaOptions o_;
  std::vector<std::pair<std::string, TensorBase>> state_;
  std::vector<bool> is_parameter_;
  int64_t updates_ = 0;
};

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
