// bfloat16 on the CPU: storage only. Kernels read bfloat16, compute in float and round back (to nearest
// even), as PyTorch's CPU bfloat16 does. bfloat16 -> float is a 16-bit shift, float -> bfloat16 an add and a
// shift; both are written branch-free over the bits so that the loops vectorise.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>
#include <cstring>

#include "resnet/core/parallel.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {
namespace bf16 {

inline float load(bf16_t v) {
  const uint32_t u = static_cast<uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float load(float v) { return v; }
inline double load(double v) { return v; }
// Round to nearest even; NaN stays a (quiet) NaN. The same result as bf16_t(float), without branches.
inline bf16_t round(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
  const uint32_t nan = (x >> 16) | 0x40u;
  bf16_t b;
  b.bits = static_cast<uint16_t>((x & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
  return b;
}
// Stores a result computed in float (or double) into S (bf16_t: rounded to nearest even).
template <typename S, typename V>
inline S store(V v) {
  if constexpr (std::is_same<S, bf16_t>::value)
    return round(static_cast<float>(v));
  else
    return static_cast<S>(v);
}

constexpr int64_t kGrain = 1 << 15;

inline void to_float(const bf16_t* src, float* dst, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) dst[i] = load(src[i]);
  });
}
// dst = round(src), or round(dst + src) when accumulating.
inline void from_float(const float* src, bf16_t* dst, int64_t n, bool accumulate = false) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    if (accumulate) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) dst[i] = round(load(dst[i]) + src[i]);
    } else {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) dst[i] = round(src[i]);
    }
  });
}

// A float copy of x in x's memory format (dense x).
inline Tensor<float> to_float(const Tensor<bf16_t>& x) {
  RESNET_CHECK(x.is_dense(), "bfloat16 -> float: tensor ", x.describe(), " must be contiguous");
  Tensor<float> f = Tensor<float>::empty(
      x.shape(), Device::cpu(), x.rank() == 4 ? x.suggest_memory_format() : MemoryFormat::Contiguous);
  to_float(x.data(), f.data(), x.numel());
  return f;
}
// A new float tensor laid out as `like` (for results that are rounded into `like` afterwards).
inline Tensor<float> float_like(const TensorBase& like) {
  return Tensor<float>::empty(like.shape(), Device::cpu(),
                              like.rank() == 4 ? like.suggest_memory_format() : MemoryFormat::Contiguous);
}
// dst = round(src) (or round(dst + src)); one memory layout.
inline void round_into(const Tensor<float>& src, Tensor<bf16_t>& dst, bool accumulate = false) {
  RESNET_CHECK(src.same_layout(dst), "float -> bfloat16: ", src.describe(), " and ", dst.describe(),
               " differ in shape or memory format");
  from_float(src.data(), dst.data(), dst.numel(), accumulate);
}

}  // namespace bf16
}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
