// resnet::cuda memory-format changes of dense tensors on one device (core/tensor.hpp's copy_into between
// NCHW and NHWC): a batched transpose of raw elements, so a channels-last tensor on a GPU never makes a round
// trip through the host. The elements are moved as half_t, float or double of the same size: loads and
// stores only, no arithmetic, so every bit pattern (NaN payloads included) arrives unchanged.
#include "resnet/core/abi.hpp"
#include "context.cuh"
#include "kernels/layout.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

void transpose_bytes(void* dst, const void* src, size_t elem_size, int64_t B, int64_t I, int64_t J,
                     int device) {
  const int64_t n = B * I * J;
  if (n == 0) return;
  RESNET_CHECK(B > 0 && I > 0 && J > 0 && n < (int64_t(1) << 32), "memory-format copy: ", B, " x ", I, " x ",
               J, " elements (the device transpose takes fewer than 2^32)");
  detail::OpScope op("memory-format copy", device);
  const kernels::LaunchEnv env = detail::launch_env(device);
  switch (elem_size) {
    case 2:
      kernels::batched_transpose(static_cast<const half_t*>(src), static_cast<half_t*>(dst), B, I, J, false,
                                 env);
      break;
    case 4:
      kernels::batched_transpose(static_cast<const float*>(src), static_cast<float*>(dst), B, I, J, false,
                                 env);
      break;
    case 8:
      kernels::batched_transpose(static_cast<const double*>(src), static_cast<double*>(dst), B, I, J, false,
                                 env);
      break;
    default:
      RESNET_FAIL("memory-format copy: elements of ", elem_size,
                  " bytes (the device transpose moves 2, 4 or 8)");
  }
}

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
