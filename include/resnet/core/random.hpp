// Random numbers: one seedable generator per purpose, plus a process-wide default that manual_seed resets.
// The engine is the standard's mt19937_64 written out (the standard fixes its sequence, so a seed gives the
// numbers std::mt19937_64 gives), so that a unit including the library does not parse <random>; the
// distributions are libstdc++'s, in random_inl.hpp (compiled into libresnet in the compiled mode).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"

#include <cstddef>
#include <cstdint>

namespace resnet {
inline namespace RESNET_ABI {

// A uniform random bit generator with std::mt19937_64's parameters and sequence.
class Mt19937_64 {
 public:
  using result_type = uint64_t;
  static constexpr result_type default_seed = 5489u;
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~result_type(0); }

  explicit Mt19937_64(result_type s = default_seed) { seed(s); }
  void seed(result_type s) {
    x_[0] = s;
    for (size_t i = 1; i < kN; ++i) x_[i] = 6364136223846793005ULL * (x_[i - 1] ^ (x_[i - 1] >> 62)) + i;
    at_ = kN;
  }
  result_type operator()() {
    if (at_ >= kN) twist();
    uint64_t z = x_[at_++];
    z ^= (z >> 29) & 0x5555555555555555ULL;
    z ^= (z << 17) & 0x71D67FFFEDA60000ULL;
    z ^= (z << 37) & 0xFFF7EEE000000000ULL;
    return z ^ (z >> 43);
  }

 private:
  static constexpr size_t kN = 312, kM = 156;
  void twist() {
    constexpr uint64_t upper = ~uint64_t(0) << 31, lower = ~upper;
    for (size_t k = 0; k < kN; ++k) {
      const uint64_t y = (x_[k] & upper) | (x_[(k + 1) % kN] & lower);
      x_[k] = x_[(k + kM) % kN] ^ (y >> 1) ^ ((y & 1) ? 0xB5026F5AA96619E9ULL : 0);
    }
    at_ = 0;
  }
  uint64_t x_[kN];
  size_t at_ = kN;
};

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) : engine_(seed) {}
  void seed(uint64_t s) { engine_.seed(s); }
  double normal(double mean = 0.0, double stddev = 1.0);
  double uniform(double lo = 0.0, double hi = 1.0);
  // Uniform integer in [0, n).
  int64_t randint(int64_t n);
  uint64_t next_u64() { return engine_(); }
  Mt19937_64& engine() { return engine_; }

 private:
  Mt19937_64 engine_;
};

inline Generator& default_generator() {
  static thread_local Generator g;
  return g;
}

inline void manual_seed(uint64_t seed) { default_generator().seed(seed); }

}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/core/random_inl.hpp"
#endif
