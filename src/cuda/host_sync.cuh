// The one counter every host wait of resnet::cuda goes through (runtime.hpp, HostSync; host_sync.cu).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/cuda/runtime.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {
namespace detail {
// Call right before the wait.
void count_host_sync(HostSync reason);
}  // namespace detail
}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
