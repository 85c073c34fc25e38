// The compiled library's double tensors, ops, layers and networks (include/resnet/compiled.hpp lists them).
#include "resnet/compiled.hpp"

namespace resnet {
inline namespace RESNET_ABI {
RESNET_COMPILED_TENSOR_OPS(, double)
}  // namespace RESNET_ABI
}  // namespace resnet
