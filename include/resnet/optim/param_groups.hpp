// Parameter groups: parameters an optimizer updates with their own learning rate and weight decay
// (torch.optim's param_groups). A group's rate is a multiple of the optimizer's (lr_scale), so whatever
// sets the optimizer's rate (a schedule, Trainer::fit) moves every group with it, as torch's schedulers
// scale each group's initial rate. Groups are the program's structure, not state: a program makes them
// again, before its first step, when it builds the optimizer for a resumed run.
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>
#include <functional>
#include <string>

#include "resnet/core/arg.hpp"
#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace optim {

struct GroupOptions {
  RESNET_ARG(double, lr_scale) = 1.0;       // the group's rate is lr_scale times the optimizer's
  RESNET_ARG(double, weight_decay) = -1.0;  // < 0: the optimizer's (its decay_1d rule included)

 public:
  void check() const {
    RESNET_CHECK(std::isfinite(lr_scale()) && lr_scale() > 0, "parameter group: lr_scale must be finite and ",
                 "positive, got ", lr_scale());
    RESNET_CHECK(std::isfinite(weight_decay()), "parameter group: weight_decay must be finite, got ",
                 weight_decay());
  }
};

// Picks a group's parameters by name and tensor.
using ParamSelector = std::function<bool(const std::string& name, const TensorBase& p)>;

// BatchNorm weights and biases, and every bias: the tensors of rank <= 1 (torchvision's norm_weight_decay
// and bias_weight_decay groups).
inline bool is_norm_or_bias(const std::string&, const TensorBase& p) { return p.rank() <= 1; }

}  // namespace optim
}  // namespace RESNET_ABI
}  // namespace resnet
