// Per-channel reductions over NCHW tensors: how a channel's N * H * W values are split among blocks, and
// the plain per-channel sum (the gradient of a convolution's or a linear layer's bias).
//
// Channel c of an [N, C, HW] tensor is N runs of HW contiguous values. A reduction runs on a grid of
// (C, splits) blocks; block (c, s) walks its share of the channel's packs (V values that never straddle
// two runs, so V divides HW: a full 16-byte vector, else (where asked for) half of one, else a single value),
// and writes one partial result per block. A small finalize kernel combines the `splits` partials of each
// channel in double, in a fixed order: results are deterministic.
#pragma once

#include "resnet/core/abi.hpp"

#include <type_traits>

#include "launch.cuh"
#include "reduce.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

struct ChannelPlan {
  int64_t N = 0, C = 0, HW = 0;
  int V = 1;          // values per pack
  int64_t packs = 0;  // packs per channel: N * HW / V
  int splits = 1;     // blocks per channel
  int64_t packs_per_split = 0;
  FastDiv hw_packs;  // divides a pack index by HW / V
};

// The widest pack of at most vmax values that divides HW: vmax, then (with half_packs) vmax / 2, else 1.
// Half a vector matters for 16-bit types at 14x14 (196 = 8 * 24.5 = 4 * 49), where whole vectors do not fit
// a run. half_packs is the library's switch (cuda::set_half_packs, off by default): the half-vector kernels
// have never run on a GPU, and without them those shapes take single values, as the GPU ran them.
inline int pack_width_for(int64_t HW, int vmax, bool half_packs = false) {
  if (vmax > 1 && HW % vmax == 0) return vmax;
  if (half_packs && vmax > 2 && HW % (vmax / 2) == 0) return vmax / 2;
  return 1;
}

// Calls f(std::integral_constant<int, V>{}) for V = pack width v, one of the widths pack_width_for picks for
// storage type T: the launchers instantiate one kernel per width.
template <typename T, typename F>
void with_pack_width(int v, F&& f) {
  constexpr int W = vec_width<T>();
  if (v == W) return f(std::integral_constant<int, W>{});
  if constexpr (W / 2 > 1)
    if (v == W / 2) return f(std::integral_constant<int, W / 2>{});
  f(std::integral_constant<int, 1>{});
}

// vmax: the widest pack the pointers allow (1 when any is not 16-byte aligned); half_packs: pack_width_for.
inline ChannelPlan plan_channels(int64_t N, int64_t C, int64_t HW, int vmax, int sm_count,
                                 bool half_packs = false) {
  ChannelPlan p;
  p.N = N;
  p.C = C;
  p.HW = HW;
  p.V = pack_width_for(HW, vmax, half_packs);
  p.packs = N * HW / p.V;
  // The split depends on the element count only (not on V), so workspace sizes do not depend on alignment.
  const int64_t target_blocks = static_cast<int64_t>(sm_count > 0 ? sm_count : 1) * 8;
  int64_t splits = (target_blocks + C - 1) / C;
  const int64_t most = N * HW / (kBlock * 16);  // at least 16 values a thread
  if (splits > most) splits = most;
  if (splits > 1024) splits = 1024;
  if (splits < 1) splits = 1;
  p.splits = static_cast<int>(splits);
  p.packs_per_split = (p.packs + splits - 1) / splits;  // trailing splits may be empty: they add zeros
  p.hw_packs = FastDiv(static_cast<uint32_t>(HW / p.V));
  return p;
}

// Element offset of pack `p` of channel `c`.
RESNET_HD inline int64_t channel_offset(const ChannelPlan& g, int64_t c, int64_t p) {
  const uint32_t n = g.hw_packs.div(static_cast<uint32_t>(p));
  const int64_t i = (p - static_cast<int64_t>(n) * g.hw_packs.d) * g.V;
  return (static_cast<int64_t>(n) * g.C + c) * g.HW + i;
}

// The pack range of block (c, s).
RESNET_HD inline void split_range(const ChannelPlan& g, int64_t s, int64_t* begin, int64_t* end) {
  *begin = s * g.packs_per_split;
  *end = *begin + g.packs_per_split < g.packs ? *begin + g.packs_per_split : g.packs;
}

// ---------------------------------------------------------------- per-channel sum

template <typename T, int V>
__global__ void __launch_bounds__(kBlock)
    channel_sum_kernel(const T* __restrict__ x, ChannelPlan g, cmp_t<T>* __restrict__ partial) {
  using C = cmp_t<T>;
  const int64_t c = blockIdx.x, s = blockIdx.y;
  int64_t begin, end;
  split_range(g, s, &begin, &end);
  C acc = C(0);
  for (int64_t p = begin + threadIdx.x; p < end; p += blockDim.x) {
    const Pack<T, V> v = *reinterpret_cast<const Pack<T, V>*>(x + channel_offset(g, c, p));
#pragma unroll
    for (int j = 0; j < V; ++j) acc += to_cmp(v.v[j]);
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partial[c * g.splits + s] = acc;
}

// out[c] = [out[c] +] sum of the channel's partials, summed in double.
template <typename T>
__global__ void __launch_bounds__(kBlock)
    channel_sum_finalize_kernel(const cmp_t<T>* __restrict__ partial, int64_t channels, int splits, T* out,
                                bool acc) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  double s = 0.0;
  for (int k = 0; k < splits; ++k) s += static_cast<double>(partial[c * splits + k]);
  if (acc) s += static_cast<double>(to_cmp(out[c]));
  out[c] = from_cmp<T>(static_cast<cmp_t<T>>(s));
}

template <typename T>
size_t channel_sum_workspace_bytes(const ChannelPlan& g) {
  return static_cast<size_t>(g.C * g.splits) * sizeof(cmp_t<T>);
}

// out[c] = [out[c] +] sum over n and i of x[n, c, i], for x of shape [N, C, HW]. half_packs: pack_width_for.
template <typename T>
void channel_sum(const T* x, int64_t N, int64_t C, int64_t HW, T* out, bool acc, void* workspace,
                 const LaunchEnv& env, bool half_packs = false) {
  const int vmax = aligned_to(x, 16) ? vec_width<T>() : 1;
  const ChannelPlan g = plan_channels(N, C, HW, vmax, env.sm_count, half_packs);
  auto* partial = static_cast<cmp_t<T>*>(workspace);
  const dim3 grid(static_cast<unsigned>(C), static_cast<unsigned>(g.splits));
  with_pack_width<T>(g.V, [&](auto v) {
    RESNET_LAUNCH((channel_sum_kernel<T, decltype(v)::value>), grid, kBlock, env, x, g, partial);
  });
  RESNET_LAUNCH((channel_sum_finalize_kernel<T>), dim3(static_cast<unsigned>((C + kBlock - 1) / kBlock)),
                kBlock, env, partial, C, g.splits, out, acc);
}

template <typename T>
size_t channel_sum_workspace_bytes(int64_t N, int64_t C, int64_t HW, int sm_count) {
  return channel_sum_workspace_bytes<T>(plan_channels(N, C, HW, 1, sm_count));
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
