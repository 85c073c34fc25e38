// Elementwise kernels: one grid-stride map over 16-byte packs (scalar for the tail and for unaligned
// pointers) with the per-element rule in a small functor, plus a per-channel bias add.
//
// Every functor takes (flat index, a, b, y_old) in storage types and returns the new y. The gradient rule
// of backend/params.hpp holds: functors with an `acc` flag add into y when it is set and overwrite otherwise.
// ReLU keeps NaN (v < 0 ? 0 : v) so a diverging run stays visible to all_finite.
#pragma once

#include "resnet/core/abi.hpp"
#include "launch.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

template <typename TA, typename TY, int V, typename F>
__global__ void __launch_bounds__(kBlock)
    map_kernel(const TA* __restrict__ a, const TA* __restrict__ b, TY* y, int64_t n, bool read_y, F f) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t npack = n / V;
  for (int64_t p = first; p < npack; p += stride) {
    Pack<TA, V> pa{}, pb{};
    Pack<TY, V> py{};
    if (a) pa = reinterpret_cast<const Pack<TA, V>*>(a)[p];
    if (b) pb = reinterpret_cast<const Pack<TA, V>*>(b)[p];
    if (read_y) py = reinterpret_cast<const Pack<TY, V>*>(y)[p];
#pragma unroll
    for (int j = 0; j < V; ++j) py.v[j] = f(p * V + j, pa.v[j], pb.v[j], py.v[j]);
    reinterpret_cast<Pack<TY, V>*>(y)[p] = py;
  }
  for (int64_t i = npack * V + first; i < n; i += stride) {
    TA va = a ? a[i] : TA(), vb = b ? b[i] : TA();
    y[i] = f(i, va, vb, read_y ? y[i] : TY());
  }
}

// Runs f over n elements; picks 16-byte packs when every pointer allows it.
template <typename TA, typename TY, typename F>
void launch_map(const TA* a, const TA* b, TY* y, int64_t n, bool read_y, const F& f, const LaunchEnv& env) {
  if (n <= 0) return;
  constexpr int VA = vec_width<TA>(), VY = vec_width<TY>();
  constexpr int V = VA < VY ? VA : VY;
  const bool vec = (!a || aligned_to(a, sizeof(TA) * V)) && (!b || aligned_to(b, sizeof(TA) * V)) &&
                   aligned_to(y, sizeof(TY) * V) && n >= V;
  if (vec) {
    RESNET_LAUNCH((map_kernel<TA, TY, V, F>), grid_for(n / V, kBlock, env.sm_count), kBlock, env, a, b, y, n,
                  read_y, f);
  } else {
    RESNET_LAUNCH((map_kernel<TA, TY, 1, F>), grid_for(n, kBlock, env.sm_count), kBlock, env, a, b, y, n,
                  read_y, f);
  }
}

// ---------------------------------------------------------------- the per-element rules

template <typename T>
struct FillOp {
  T value;
  RESNET_HD T operator()(int64_t, T, T, T) const { return value; }
};
template <typename T>
struct AddOp {  // y = a + b
  RESNET_HD T operator()(int64_t, T a, T b, T) const { return from_cmp<T>(to_cmp(a) + to_cmp(b)); }
};
template <typename T>
struct AxpyOp {  // y += alpha * a
  cmp_t<T> alpha;
  RESNET_HD T operator()(int64_t, T a, T, T y) const { return from_cmp<T>(to_cmp(y) + alpha * to_cmp(a)); }
};
template <typename T>
struct ScaleOp {  // y = alpha * a
  cmp_t<T> alpha;
  RESNET_HD T operator()(int64_t, T a, T, T) const { return from_cmp<T>(alpha * to_cmp(a)); }
};
template <typename T>
struct MulOp {  // y = [y +] a * b
  bool acc;
  RESNET_HD T operator()(int64_t, T a, T b, T y) const {
    const cmp_t<T> p = to_cmp(a) * to_cmp(b);
    return from_cmp<T>(acc ? to_cmp(y) + p : p);
  }
};
template <typename C>
RESNET_HD inline C relu(C v) {
  return v < C(0) ? C(0) : v;
}
template <typename T>
struct ReluOp {
  RESNET_HD T operator()(int64_t, T a, T, T) const { return from_cmp<T>(relu(to_cmp(a))); }
};
// dx = [dx +] (y > 0 ? dy : 0), with a = the saved output y and b = dy.
template <typename C>
RESNET_HD inline C relu_grad(C y, C dy) {
  return y > C(0) ? dy : C(0);
}
template <typename T>
struct ReluBackwardOp {
  bool acc;
  RESNET_HD T operator()(int64_t, T y, T dy, T dx) const {
    const cmp_t<T> g = relu_grad(to_cmp(y), to_cmp(dy));
    return from_cmp<T>(acc ? to_cmp(dx) + g : g);
  }
};
// dx = [dx +] dy[0] * alpha, the scalar read on the device (no copy to the host).
template <typename T>
struct BroadcastScalarOp {
  const T* dy;
  double alpha;
  bool acc;
  RESNET_HD T operator()(int64_t, T, T, T dx) const {
    const T g = from_cmp<T>(static_cast<cmp_t<T>>(static_cast<double>(to_cmp(*dy)) * alpha));
    return acc ? from_cmp<T>(to_cmp(dx) + to_cmp(g)) : g;
  }
};
// Through float, as the CPU backend converts (double to double is a copy).
template <typename S, typename D>
struct CastOp {
  RESNET_HD D operator()(int64_t, S a, S, D) const { return from_cmp<D>(static_cast<float>(to_cmp(a))); }
};
template <>
struct CastOp<double, double> {
  RESNET_HD double operator()(int64_t, double a, double, double) const { return a; }
};
// y[n, c, ...] += bias[c] for NCHW (inner = H * W) and for [N, C] (inner = 1).
template <typename T>
struct ChannelBiasOp {
  const T* bias;
  FastDiv inner, channels;
  RESNET_HD T operator()(int64_t i, T, T, T y) const {
    const uint32_t c = channels.mod(inner.div(static_cast<uint32_t>(i)));
    return from_cmp<T>(to_cmp(y) + to_cmp(bias[c]));
  }
};

// ---------------------------------------------------------------- launchers

template <typename T>
void fill(T* y, int64_t n, double value, const LaunchEnv& env) {
  launch_map<T, T>(nullptr, nullptr, y, n, false, FillOp<T>{from_cmp<T>(static_cast<cmp_t<T>>(value))}, env);
}
template <typename T>
void add(const T* a, const T* b, T* y, int64_t n, const LaunchEnv& env) {
  launch_map<T, T>(a, b, y, n, false, AddOp<T>{}, env);
}
template <typename T>
void add_inplace(T* y, const T* x, int64_t n, double alpha, const LaunchEnv& env) {
  launch_map<T, T>(x, nullptr, y, n, true, AxpyOp<T>{static_cast<cmp_t<T>>(alpha)}, env);
}
template <typename T>
void scale(const T* x, double alpha, T* y, int64_t n, const LaunchEnv& env) {
  launch_map<T, T>(x, nullptr, y, n, false, ScaleOp<T>{static_cast<cmp_t<T>>(alpha)}, env);
}
template <typename T>
void mul(const T* a, const T* b, T* y, int64_t n, bool acc, const LaunchEnv& env) {
  launch_map<T, T>(a, b, y, n, acc, MulOp<T>{acc}, env);
}
template <typename T>
void relu_forward(const T* x, T* y, int64_t n, const LaunchEnv& env) {
  launch_map<T, T>(x, nullptr, y, n, false, ReluOp<T>{}, env);
}
template <typename T>
void relu_backward(const T* y, const T* dy, T* dx, int64_t n, bool acc, const LaunchEnv& env) {
  launch_map<T, T>(y, dy, dx, n, acc, ReluBackwardOp<T>{acc}, env);
}
template <typename T>
void broadcast_scalar(const T* dy, double alpha, T* dx, int64_t n, bool acc, const LaunchEnv& env) {
  launch_map<T, T>(nullptr, nullptr, dx, n, acc, BroadcastScalarOp<T>{dy, alpha, acc}, env);
}
template <typename S, typename D>
void cast(const S* x, D* y, int64_t n, const LaunchEnv& env) {
  launch_map<S, D>(x, nullptr, y, n, false, CastOp<S, D>{}, env);
}
// y[n, c, i] += bias[c] over y of `total` elements with `channels` channels of `inner` elements each.
template <typename T>
void channel_bias_add(T* y, const T* bias, int64_t total, int64_t channels, int64_t inner,
                      const LaunchEnv& env) {
  launch_map<T, T>(
      nullptr, nullptr, y, total, true,
      ChannelBiasOp<T>{bias, FastDiv(static_cast<uint32_t>(inner)), FastDiv(static_cast<uint32_t>(channels))},
      env);
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
