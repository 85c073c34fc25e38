// Stands in for the resnet::cuda library in the ODR test: the device hooks the core declares when built
// with CUDA (a CPU-only test never calls them).
#include "resnet/core/storage.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {
void* device_allocate(size_t, int) { RESNET_FAIL("fake_cuda: no device"); }
void device_free(void*, int) {}
void copy_bytes(void*, Device, const void*, Device, size_t) { RESNET_FAIL("fake_cuda: no device"); }
void fill_zero_bytes(void*, int, size_t) { RESNET_FAIL("fake_cuda: no device"); }
void transpose_bytes(void*, const void*, size_t, int64_t, int64_t, int64_t, int) {
  RESNET_FAIL("fake_cuda: no device");
}
}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
