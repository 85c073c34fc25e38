// The compiled library's bf16_t tensors, ops, layers and networks (include/resnet/compiled.hpp lists them).
#include "resnet/compiled.hpp"

namespace resnet {
inline namespace RESNET_ABI {
RESNET_COMPILED_TENSOR_OPS(, bf16_t)
}  // namespace RESNET_ABI
}  // namespace resnet
