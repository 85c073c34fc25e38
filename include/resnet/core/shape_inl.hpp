// The definitions of shape.hpp: included by it in header-only mode, and compiled once into the library in
// the compiled mode (src/core/error.cpp). Not for direct inclusion.
#pragma once

#include <ostream>

#include "resnet/core/abi.hpp"
#include "resnet/core/shape.hpp"

namespace resnet {
inline namespace RESNET_ABI {

RESNET_INLINE std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.to_string(); }

}  // namespace RESNET_ABI
}  // namespace resnet
