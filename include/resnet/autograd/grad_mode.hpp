// Whether ops record themselves on the tape. NoGradGuard turns recording off for a scope (evaluation,
// optimizer updates); the setting is per thread.
#pragma once

#include "resnet/core/abi.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace autograd {

inline bool& grad_mode_flag() {
  static thread_local bool enabled = true;
  return enabled;
}
inline bool grad_enabled() { return grad_mode_flag(); }

class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_mode_flag()) { grad_mode_flag() = false; }
  ~NoGradGuard() { grad_mode_flag() = previous_; }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace autograd

using autograd::NoGradGuard;

}  // namespace RESNET_ABI
}  // namespace resnet
