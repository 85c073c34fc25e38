// The compiled library's float tensors, ops, layers and networks (include/resnet/compiled.hpp lists them).
#include "resnet/compiled.hpp"

namespace resnet {
inline namespace RESNET_ABI {
RESNET_COMPILED_TENSOR_OPS(, float)
}  // namespace RESNET_ABI
}  // namespace resnet
