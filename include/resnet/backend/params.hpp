// Plain parameter structs shared by the CPU and CUDA backends, so both have the same signatures and a test
// compares them with one line.
//
// The gradient rule for every backend function: a function writes each gradient it is given. With
// accumulate == false it overwrites the tensor (which may hold garbage); with accumulate == true it adds to
// what the tensor holds. The tape passes accumulate == true exactly when the slot already has a gradient,
// so parameter gradients sum across backward passes until the optimizer zeroes them.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {

struct ConvParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;

  int64_t out_h(int64_t h, int64_t kh) const { return (h + 2 * pad_h - kh) / stride_h + 1; }
  int64_t out_w(int64_t w, int64_t kw) const { return (w + 2 * pad_w - kw) / stride_w + 1; }
};

struct PoolParams {
  int64_t kernel_h = 2, kernel_w = 2;
  int64_t stride_h = 2, stride_w = 2;
  int64_t pad_h = 0, pad_w = 0;
  // Average pooling only: whether padded zeros count in the divisor (PyTorch's default is true).
  bool count_include_pad = true;

  int64_t out_h(int64_t h) const { return (h + 2 * pad_h - kernel_h) / stride_h + 1; }
  int64_t out_w(int64_t w) const { return (w + 2 * pad_w - kernel_w) / stride_w + 1; }
};

enum class Activation { None, ReLU };

struct BatchNormParams {
  double eps = 1e-5;
  double momentum = 0.1;  // running = (1 - momentum) * running + momentum * batch, as in PyTorch
};

// The constant hyper-parameters of an update. The learning rate and the step number change every step and
// are read from the optimizer's step-state tensor instead (backend/optim_math.hpp, optim_state::kLr, kStep).
struct SgdHyper {
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

struct AdamHyper {
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // decoupled (AdamW)
};

}  // namespace RESNET_ABI
}  // namespace resnet
