// Element types: the runtime tag (DType) and the compile-time traits that map C++ types to it.
// half_t and bf16_t are 16-bit storage types with float conversions usable on host and device; the CUDA
// kernels reinterpret them as __half / __nv_bfloat16, which have the same bit layout.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>
#include <cstring>
#include <string>

#include "resnet/core/error.hpp"

#if defined(__CUDACC__)
#define RESNET_HD __host__ __device__
#else
#define RESNET_HD
#endif

namespace resnet {
inline namespace RESNET_ABI {

enum class DType : uint8_t { F32, F64, F16, BF16, I32, I64, U8 };

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "float32";
    case DType::F64:
      return "float64";
    case DType::F16:
      return "float16";
    case DType::BF16:
      return "bfloat16";
    case DType::I32:
      return "int32";
    case DType::I64:
      return "int64";
    case DType::U8:
      return "uint8";
  }
  return "unknown";
}

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
      return 4;
    case DType::F64:
      return 8;
    case DType::F16:
      return 2;
    case DType::BF16:
      return 2;
    case DType::I32:
      return 4;
    case DType::I64:
      return 8;
    case DType::U8:
      return 1;
  }
  return 0;
}

inline bool dtype_is_floating(DType t) {
  return t == DType::F32 || t == DType::F64 || t == DType::F16 || t == DType::BF16;
}

// IEEE 754 binary16, round-to-nearest-even on conversion from float.
struct half_t {
  uint16_t bits = 0;
  half_t() = default;
  RESNET_HD half_t(float f) : bits(from_float(f)) {}  // NOLINT: implicit like a float type
  RESNET_HD operator float() const { return to_float(bits); }

  static RESNET_HD uint16_t from_float(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t mant = x & 0x7fffffu;
    if (exp == 0xffu) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));  // inf / nan
    int32_t e = static_cast<int32_t>(exp) - 127 + 15;
    if (e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow to inf
    if (e <= 0) {                                                 // subnormal or zero
      if (e < -10) return static_cast<uint16_t>(sign);
      mant |= 0x800000u;
      uint32_t shift = static_cast<uint32_t>(14 - e);
      uint32_t h = mant >> shift;
      uint32_t rem = mant & ((1u << shift) - 1u);
      uint32_t halfway = 1u << (shift - 1u);
      if (rem > halfway || (rem == halfway && (h & 1u))) ++h;
      return static_cast<uint16_t>(sign | h);
    }
    uint32_t h = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent: correct
    return static_cast<uint16_t>(sign | h);
  }
  static RESNET_HD float to_float(uint16_t h) {
    uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t x;
    if (exp == 0) {
      if (mant == 0) {
        x = sign;
      } else {  // normalise a subnormal
        int e = -1;
        do {
          ++e;
          mant <<= 1;
        } while ((mant & 0x400u) == 0);
        x = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
      }
    } else if (exp == 0x1f) {
      x = sign | 0x7f800000u | (mant << 13);
    } else {
      x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
  }
};

// bfloat16: the top 16 bits of a float, round-to-nearest-even.
struct bf16_t {
  uint16_t bits = 0;
  bf16_t() = default;
  RESNET_HD bf16_t(float f) : bits(from_float(f)) {}  // NOLINT
  RESNET_HD operator float() const { return to_float(bits); }
  static RESNET_HD uint16_t from_float(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet nan
    uint32_t lsb = (x >> 16) & 1u;
    x += 0x7fffu + lsb;
    return static_cast<uint16_t>(x >> 16);
  }
  static RESNET_HD float to_float(uint16_t b) {
    uint32_t x = static_cast<uint32_t>(b) << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
  }
};

template <typename T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::F32;
};
template <>
struct dtype_of<double> {
  static constexpr DType value = DType::F64;
};
template <>
struct dtype_of<half_t> {
  static constexpr DType value = DType::F16;
};
template <>
struct dtype_of<bf16_t> {
  static constexpr DType value = DType::BF16;
};
template <>
struct dtype_of<int32_t> {
  static constexpr DType value = DType::I32;
};
template <>
struct dtype_of<int64_t> {
  static constexpr DType value = DType::I64;
};
template <>
struct dtype_of<uint8_t> {
  static constexpr DType value = DType::U8;
};

// The type that parameters, BatchNorm statistics and reductions use for activations of type T:
// float for the 16-bit types (master weights, as mixed-precision training wants), T itself otherwise.
template <typename T>
struct accumulate_type {
  using type = T;
};
template <>
struct accumulate_type<half_t> {
  using type = float;
};
template <>
struct accumulate_type<bf16_t> {
  using type = float;
};
template <typename T>
using acc_t = typename accumulate_type<T>::type;

}  // namespace RESNET_ABI
}  // namespace resnet
