// Which BatchNorm kernels run for a shape: the policy, in one table (kBnPolicy) and one function (bn_plan)
// that walks it. A path is the default only once a GPU run has shown it correct and faster; what set each
// row's default is recorded in benchmarks/RESULTS.md ("Kernel policy"). Tests and benchmarks pass their
// own BnOptions; the library passes the process-wide switches (cuda::set_batchnorm_single_pass,
// ..._clusters).
//
//   multi-pass   statistics, finalize and apply kernels (batchnorm_multipass.cuh): any shape.
//   single pass  one block per channel holds it in registers (batchnorm_single_pass.cuh): channels of up to
//                kSingleBlock * 32 values (8 for double).
//   clusters     the single pass over a thread-block cluster of up to kMaxCluster blocks
//                (batchnorm_cluster.cuh, experimental): compute capability 9 and newer.
//   half packs   the multi-pass kernels with 8-byte packs where 16-byte ones do not divide H * W (16-bit
//                types at 14x14: 196 = 4 * 49); without it those shapes load single values.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>

#include "launch.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

struct BatchNormShape {
  int64_t N = 0, C = 0, HW = 0;
  int64_t numel() const { return N * C * HW; }
  int64_t count() const { return N * HW; }  // values per channel
};

// Largest block of the single-pass kernels; each thread holds K of its channel's values in registers.
constexpr int kSingleBlock = 512;
// Most blocks a channel is spread over (a thread-block cluster: the portable maximum).
constexpr int kMaxCluster = 8;

enum class BnPath { MultiPass, SinglePass, Cluster, HalfPacks };
inline const char* bn_path_name(BnPath p) {
  return p == BnPath::SinglePass  ? "single pass"
         : p == BnPath::Cluster   ? "clusters"
         : p == BnPath::HalfPacks ? "multi-pass, half packs"
                                  : "multi-pass";
}

// The policy: rows tried in order, the first whose switch is on, whose device is new enough and whose
// kernels hold the channel wins. The multi-pass row holds every channel, so a plan always exists.
struct BnPolicyRow {
  BnPath path;
  int min_cc_major;  // compute capability the kernels need (0: any)
  int min_blocks;    // blocks a channel: the single pass 1, clusters from 2 up to BnOptions::max_cluster
  bool default_on;   // what the library does without a switch; see RESULTS.md "Kernel policy"
};
constexpr BnPolicyRow kBnPolicy[] = {
    {BnPath::SinglePass, 0, 1, false},  // never run on a GPU
    {BnPath::Cluster, 9, 2, false},     // never run on a GPU
    {BnPath::HalfPacks, 0, 0, false},   // never run on a GPU
    {BnPath::MultiPass, 0, 0, true},    // timed on an H200 (session 1, RESULTS.md)
};

// Whether the library runs a path without being asked: the table's word, read by BnOptions and by the
// process-wide switches of resnet::cuda, so flipping a row's default_on is the whole change.
constexpr bool bn_default_on(BnPath path) {
  for (const BnPolicyRow& row : kBnPolicy)
    if (row.path == path) return row.default_on;
  return false;
}

// The switches a plan obeys. The defaults are the library's (kBnPolicy): today the multi-pass kernels
// everywhere with whole packs or single values, because neither the single pass, the clusters nor the
// half packs have run on a GPU yet.
struct BnOptions {
  bool single_pass = bn_default_on(BnPath::SinglePass);  // the single pass where a channel fits one block
  // > 1 (2, 4 or 8), with single_pass: clusters of up to this many blocks (sm_90+)
  int max_cluster = bn_default_on(BnPath::Cluster) ? kMaxCluster : 1;
  int block_threads = kSingleBlock;  // most threads in a single-pass block (tests use fewer)
  bool half_packs = bn_default_on(BnPath::HalfPacks);  // 8-byte packs in the multi-pass kernels
};

// Whether the multi-pass kernels over T take half packs for this H * W when allowed: whole 16-byte packs do
// not divide it, half ones do.
template <typename T>
constexpr bool bn_wants_half_packs(int64_t HW) {
  constexpr int W = vec_width<T>();
  return W > 2 && HW % W != 0 && HW % (W / 2) == 0;
}

inline bool bn_switched_on(BnPath path, const BnOptions& o) {
  switch (path) {
    case BnPath::SinglePass:
      return o.single_pass;
    case BnPath::Cluster:
      return o.single_pass && o.max_cluster > 1;
    case BnPath::HalfPacks:
      return o.half_packs;
    default:
      return true;
  }
}

// A plan: the path, and for the single pass and clusters K values a thread (8 or 32; double keeps 8 at
// most, a value taking two registers), `threads` a block and `blocks` blocks a channel.
struct BnPlan {
  BnPath path = BnPath::MultiPass;
  int K = 0;
  unsigned threads = 0, blocks = 1;
};

// Threads for `values` values a thread: whole warps, as few as hold the channel.
inline unsigned bn_single_threads(int64_t count, int64_t values) {
  const int64_t warps = (count + 32 * values - 1) / (32 * values);
  return static_cast<unsigned>(warps < 1 ? 32 : warps * 32);
}

template <typename T>
BnPlan bn_plan(const BatchNormShape& s, const BnOptions& o, const LaunchEnv& env) {
  const int64_t count = s.count();
  const int kmax = sizeof(cmp_t<T>) == 4 ? 32 : 8;
  for (const BnPolicyRow& row : kBnPolicy) {
    if (!bn_switched_on(row.path, o) || env.cc_major < row.min_cc_major) continue;
    if (row.path == BnPath::MultiPass) break;
    if (row.path == BnPath::HalfPacks) {
      if (bn_wants_half_packs<T>(s.HW)) return BnPlan{BnPath::HalfPacks};
      continue;
    }
    const int most =
        row.path == BnPath::Cluster ? (o.max_cluster < kMaxCluster ? o.max_cluster : kMaxCluster) : 1;
    for (int g = row.min_blocks; g <= most; g *= 2) {
      const int64_t room = static_cast<int64_t>(g) * o.block_threads;  // threads over the cluster
      if (count > room * kmax) continue;
      BnPlan p;
      p.path = row.path;
      p.K = count <= room * 8 ? 8 : kmax;
      p.blocks = static_cast<unsigned>(g);
      p.threads = bn_single_threads(count, static_cast<int64_t>(p.K) * g);
      return p;
    }
  }
  return BnPlan{};
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
