// The compiled library's optimizers, for float and double parameters (include/resnet/compiled.hpp).
#include "resnet/compiled.hpp"

namespace resnet {
inline namespace RESNET_ABI {
RESNET_COMPILED_OPTIM(, float)
RESNET_COMPILED_OPTIM(, double)
}  // namespace RESNET_ABI
}  // namespace resnet
