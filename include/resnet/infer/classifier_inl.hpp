// The definitions of classifier.hpp: included by it in header-only mode, and compiled once into the library
// in the compiled mode (src/infer/tta.cpp). Not for direct inclusion.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "resnet/core/abi.hpp"
#include "resnet/core/error.hpp"
#include "resnet/infer/classifier.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace infer {
namespace detail {

RESNET_INLINE double metadata_number(const io::TrainingState& s, const char* key, double fallback) {
  auto it = s.extra.find(key);
  if (it == s.extra.end()) return fallback;
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  RESNET_CHECK(end == it->second.c_str() + it->second.size() && !it->second.empty(), "checkpoint metadata '",
               key, "' = '", it->second, "' is not a number");
  return v;
}

}  // namespace detail
}  // namespace infer
}  // namespace RESNET_ABI
}  // namespace resnet
