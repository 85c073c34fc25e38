// The one check of a learning rate, wherever one is set: an optimizer's construction, set_lr, a
// checkpoint's value, a schedule's base rate. The same words everywhere, so a user's search finds them.
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>
#include <string>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace optim {

inline void check_learning_rate(const std::string& who, double lr) {
  RESNET_CHECK(std::isfinite(lr) && lr >= 0, who, ": learning rate must be finite and >= 0, got ", lr);
}

}  // namespace optim
}  // namespace RESNET_ABI
}  // namespace resnet
