// The definitions of graph_step.hpp: included by it in header-only mode, and compiled once into the library
// in the compiled mode (src/train/parts.cpp). Not for direct inclusion.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "resnet/core/abi.hpp"
#include "resnet/core/error.hpp"
#include "resnet/train/graph_step.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {
namespace detail {

RESNET_INLINE std::string describe_change(const optim::HyperParameters& was,
                                          const optim::HyperParameters& now) {
  for (auto& kv : now) {
    auto it = was.find(kv.first);
    if (it == was.end() || it->second != kv.second)
      return kv.first + " " + (it == was.end() ? std::string("(none)") : std::to_string(it->second)) +
             " -> " + std::to_string(kv.second);
  }
  return "a hyper-parameter was removed";
}

}  // namespace detail
}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
