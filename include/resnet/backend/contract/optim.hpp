// Contracts of the fused optimizer updates (backend/cpu/optim.hpp, src/cuda/optim.cu): the gradient and
// every state tensor have the parameter's shape and device; the hyper-parameters are finite and in range.
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>

#include "resnet/backend/contract/common.hpp"
#include "resnet/backend/params.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace contract {

inline void sgd_step(const char* op, const TensorBase& param, const TensorBase& grad, const TensorBase& buf,
                     const SgdHyper& h) {
  input(op, param, 0, "parameter");
  like(op, param, param, grad, "gradient");
  if (h.momentum != 0.0) like(op, param, param, buf, "momentum buffer");
  RESNET_CHECK(std::isfinite(h.lr) && h.lr >= 0.0, op, ": learning rate must be finite and >= 0, got ", h.lr);
  RESNET_CHECK(h.momentum >= 0.0, op, ": momentum must be >= 0, got ", h.momentum);
  RESNET_CHECK(!h.nesterov || (h.momentum > 0.0 && h.dampening == 0.0), op,
               ": nesterov needs momentum > 0 and no dampening");
}
inline void adamw_step(const char* op, const TensorBase& param, const TensorBase& grad, const TensorBase& m,
                       const TensorBase& v, const AdamHyper& h) {
  input(op, param, 0, "parameter");
  like(op, param, param, grad, "gradient");
  like(op, param, param, m, "first moment");
  like(op, param, param, v, "second moment");
  RESNET_CHECK(std::isfinite(h.lr) && h.lr >= 0.0, op, ": learning rate must be finite and >= 0, got ", h.lr);
  RESNET_CHECK(h.beta1 >= 0.0 && h.beta1 < 1.0 && h.beta2 >= 0.0 && h.beta2 < 1.0, op,
               ": betas must be in [0, 1), got ", h.beta1, ", ", h.beta2);
  RESNET_CHECK(h.step >= 1, op, ": step must count from 1, got ", h.step);
}

}  // namespace contract
}  // namespace RESNET_ABI
}  // namespace resnet
