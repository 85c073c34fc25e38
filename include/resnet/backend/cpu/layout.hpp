// Element offsets of a rank-4 tensor [N, C, H, W] in either memory format (row-major NCHW or channels-last
// NHWC), for the CPU reference loops, which index through strides and so take both formats unchanged.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>

#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

struct Strides4 {
  int64_t n = 0, c = 0, h = 0, w = 0;
  explicit Strides4(const TensorBase& t) {
    const auto& s = t.strides();
    n = s[0];
    c = s[1];
    h = s[2];
    w = s[3];
  }
  int64_t at(int64_t in, int64_t ic, int64_t ih, int64_t iw) const {
    return in * n + ic * c + ih * h + iw * w;
  }
};

inline bool channels_last(const TensorBase& t) {
  return t.suggest_memory_format() == MemoryFormat::ChannelsLast;
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
