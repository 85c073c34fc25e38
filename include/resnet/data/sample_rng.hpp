// Counter-based randomness for the data pipeline: every sample's augmentation draws from its own generator,
// seeded from (run seed, epoch, sample index), so a run gives the same images whatever the number of loader
// threads or the order they finish in, and a resumed run sees exactly the data an uninterrupted one would.
// Only integer arithmetic specified by us (no std:: distributions, whose algorithms differ between standard
// libraries), so the stream is the same on every platform.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>
#include <numeric>
#include <vector>

namespace resnet {
inline namespace RESNET_ABI {
namespace data {

// SplitMix64's finaliser: a bijective mix of 64 bits.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// One seed from several counters (order matters).
inline uint64_t combine_seed(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b + 0x632be59bd9b4e019ULL)); }
inline uint64_t combine_seed(uint64_t a, uint64_t b, uint64_t c) {
  return combine_seed(combine_seed(a, b), c);
}

// A small, fast generator (SplitMix64 stream) with the few draws augmentation needs.
class SampleRng {
 public:
  explicit SampleRng(uint64_t seed) : state_(seed) {}
  uint64_t next_u64() {
    state_ += 0x9e3779b97f4a7c15ULL;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; the bias is below 2^-64 * n).
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next_u64()) * n) >> 64);
  }
  bool coin() { return (next_u64() >> 63) != 0; }

 private:
  uint64_t state_;
};

// The visiting order of an epoch: a Fisher-Yates shuffle of [0, n) seeded from (seed, epoch).
inline std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  SampleRng rng(combine_seed(seed, static_cast<uint64_t>(epoch), 0x5348554646ULL /* "SHUFF" */));
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i + 1)));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

// The seed of one sample's augmentation in one epoch.
inline uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t index) {
  return combine_seed(seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index));
}

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet
