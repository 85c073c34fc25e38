// Random numbers: one seedable generator per purpose, plus a process-wide default that manual_seed resets.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>
#include <random>

namespace resnet {
inline namespace RESNET_ABI {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) : engine_(seed) {}
  void seed(uint64_t s) { engine_.seed(s); }
  double normal(double mean = 0.0, double stddev = 1.0) {
    return std::normal_distribution<double>(mean, stddev)(engine_);
  }
  double uniform(double lo = 0.0, double hi = 1.0) {
    return std::uniform_real_distribution<double>(lo, hi)(engine_);
  }
  // Uniform integer in [0, n).
  int64_t randint(int64_t n) { return std::uniform_int_distribution<int64_t>(0, n - 1)(engine_); }
  uint64_t next_u64() { return engine_(); }
  std::mt19937_64& engine() { return engine_; }

 private:
  std::mt19937_64 engine_;
};

inline Generator& default_generator() {
  static thread_local Generator g;
  return g;
}

inline void manual_seed(uint64_t seed) { default_generator().seed(seed); }

}  // namespace RESNET_ABI
}  // namespace resnet
