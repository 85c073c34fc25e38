// Whether a GPU can be used, declared in every build so that portable code needs no #if: with the CUDA
// backend (RESNET_WITH_CUDA, link resnet::cuda) the runtime answers; without it there is no device, and
// the reason says how to get one.
#pragma once

#include "resnet/core/abi.hpp"

#if RESNET_WITH_CUDA
#include "resnet/backend/cuda/runtime.hpp"
#else
#include <string>

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

inline int device_count() { return 0; }
inline bool is_available() { return false; }
inline std::string unavailable_reason() {
  return "this program was built without the CUDA backend (build with nvcc present and link resnet::cuda)";
}

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
#endif
