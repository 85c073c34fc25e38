// Contracts of the fused optimizer updates (backend/cpu/optim.hpp, src/cuda/optim.cu): the gradient and
// every state tensor have the parameter's shape and device; the hyper-parameters are finite and in range.
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>

#include "resnet/backend/contract/common.hpp"
#include "resnet/backend/optim_math.hpp"
#include "resnet/backend/params.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace contract {

// The step state (backend/optim_math.hpp): kSize doubles on the parameter's device. Its values are checked
// where they can be read without waiting for a device: on the CPU (the optimizer checks the learning rate
// when it is set, on every backend).
inline void step_state(const char* op, const TensorBase& param, const TensorBase& state, bool adam) {
  RESNET_CHECK(state.defined() && state.dtype() == DType::F64 && state.numel() == optim_state::kSize &&
                   state.is_contiguous(),
               op, ": the step state must be a contiguous float64 tensor of ", int(optim_state::kSize),
               " values (Optimizer::step_state()), got ", state.defined() ? state.describe() : "undefined");
  RESNET_CHECK(state.device() == param.device(), op, ": the step state is on ", state.device().to_string(),
               " but the parameter on ", param.device().to_string());
  if (!state.device().is_cpu()) return;
  const double* s = static_cast<const double*>(state.raw_data());
  const double lr = s[optim_state::kLr], step = s[optim_state::kStep];
  RESNET_CHECK(std::isfinite(lr) && lr >= 0.0, op, ": learning rate must be finite and >= 0, got ", lr);
  if (adam && !optim_state::skipped(s))
    RESNET_CHECK(step >= 1, op, ": step must count from 1, got ", step, " (call optim_begin_step first)");
}

inline void sgd_step(const char* op, const TensorBase& param, const TensorBase& grad, const TensorBase& buf,
                     const TensorBase& state, const SgdHyper& h) {
  input(op, param, 0, "parameter");
  like(op, param, param, grad, "gradient");
  if (h.momentum != 0.0) like(op, param, param, buf, "momentum buffer");
  step_state(op, param, state, false);
  RESNET_CHECK(h.momentum >= 0.0, op, ": momentum must be >= 0, got ", h.momentum);
  RESNET_CHECK(!h.nesterov || (h.momentum > 0.0 && h.dampening == 0.0), op,
               ": nesterov needs momentum > 0 and no dampening");
}
inline void adamw_step(const char* op, const TensorBase& param, const TensorBase& grad, const TensorBase& m,
                       const TensorBase& v, const TensorBase& state, const AdamHyper& h) {
  input(op, param, 0, "parameter");
  like(op, param, param, grad, "gradient");
  like(op, param, param, m, "first moment");
  like(op, param, param, v, "second moment");
  step_state(op, param, state, true);
  RESNET_CHECK(h.beta1 >= 0.0 && h.beta1 < 1.0 && h.beta2 >= 0.0 && h.beta2 < 1.0, op,
               ": betas must be in [0, 1), got ", h.beta1, ", ", h.beta2);
}
inline void optim_begin_step(const char* op, const TensorBase& state) {
  RESNET_CHECK(state.defined() && state.dtype() == DType::F64 && state.numel() == optim_state::kSize &&
                   state.is_contiguous(),
               op, ": the step state must be a contiguous float64 tensor of ", int(optim_state::kSize),
               " values, got ", state.defined() ? state.describe() : "undefined");
}

}  // namespace contract
}  // namespace RESNET_ABI
}  // namespace resnet
