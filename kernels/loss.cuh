// Row-wise softmax and the fused log-softmax + cross-entropy loss over [N, K] logits, one block per row.
// Label smoothing s mixes the one-hot target with the uniform distribution: q = (1 - s) onehot + s / K.
// The loss is the mean over rows: per-row losses go to a workspace and one block sums them in a fixed
// order (deterministic). A label outside [0, K) is reported through LaunchEnv::error_flag and makes
// that row's loss NaN; the library turns the flag into an exception at its next synchronisation.
#pragma once

#include "resnet/core/abi.hpp"
#include "elementwise.cuh"
#include "reduce.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

template <typename T>
__global__ void __launch_bounds__(kBlock)
    softmax_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t K) {
  using C = cmp_t<T>;
  for (int64_t n = blockIdx.x; n < rows; n += gridDim.x) {
    const T* xr = x + n * K;
    C m = to_cmp(xr[0]);
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) m = k_max(m, to_cmp(xr[k]));
    m = block_max(m);
    C s = C(0);
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) s += k_exp(to_cmp(xr[k]) - m);
    s = block_sum(s);
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x)
      y[n * K + k] = from_cmp<T>(k_exp(to_cmp(xr[k]) - m) / s);
  }
}

// dx = [dx +] y * (dy - sum(dy * y)) per row.
template <typename T>
__global__ void __launch_bounds__(kBlock)
    softmax_backward_kernel(const T* __restrict__ y, const T* __restrict__ dy, T* dx, int64_t rows, int64_t K,
                            bool acc) {
  using C = cmp_t<T>;
  for (int64_t n = blockIdx.x; n < rows; n += gridDim.x) {
    C dot = C(0);
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) dot += to_cmp(y[n * K + k]) * to_cmp(dy[n * K + k]);
    dot = block_sum(dot);
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      const int64_t e = n * K + k;
      const C g = to_cmp(y[e]) * (to_cmp(dy[e]) - dot);
      dx[e] = from_cmp<T>(acc ? to_cmp(dx[e]) + g : g);
    }
  }
}

// The target probability of class k for a row labelled `label`.
template <typename C>
RESNET_HD inline C smoothed_target(int64_t k, int64_t label, C smoothing, int64_t K) {
  return (k == label ? C(1) - smoothing : C(0)) + smoothing / static_cast<C>(K);
}

template <typename T>
__global__ void __launch_bounds__(kBlock)
    cross_entropy_rows_kernel(const T* __restrict__ logits, const int32_t* __restrict__ labels, int64_t rows,
                              int64_t K, double smoothing, T* __restrict__ probs,
                              double* __restrict__ row_loss, KernelErrorReport* error_flag) {
  using C = cmp_t<T>;
  for (int64_t n = blockIdx.x; n < rows; n += gridDim.x) {
    const T* xr = logits + n * K;
    C m = to_cmp(xr[0]);
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) m = k_max(m, to_cmp(xr[k]));
    m = block_max(m);
    C s = C(0);
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) s += k_exp(to_cmp(xr[k]) - m);
    s = block_sum(s);
    const C log_z = m + k_log(s);
    const int64_t label = labels[n];
    const bool bad = label < 0 || label >= K;
    C loss = C(0);  // -sum_k q_k log p_k
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      const C logp = to_cmp(xr[k]) - log_z;
      loss -= smoothed_target(k, label, static_cast<C>(smoothing), K) * logp;
      probs[n * K + k] = from_cmp<T>(k_exp(logp));
    }
    loss = block_sum(loss);
    if (threadIdx.x == 0) {
      if (bad) {
        row_loss[n] = ::nan("");
        if (error_flag) {
          error_flag->where = static_cast<long long>((static_cast<unsigned long long>(n) << 32) |
                                                     static_cast<uint32_t>(static_cast<int32_t>(label)));
          error_flag->extent = static_cast<int>(K);
          __threadfence_system();
          error_flag->code = kLabelOutOfRange;
        }
      } else {
        row_loss[n] = static_cast<double>(loss);
      }
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kBlock)
    mean_of_rows_kernel(const double* __restrict__ row_loss, int64_t rows, T* loss) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) acc += row_loss[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) loss[0] = from_cmp<T>(static_cast<cmp_t<T>>(acc / static_cast<double>(rows)));
}

// dlogits = [dlogits +] (probs - q) * dloss[0] / N, dloss read on the device.
template <typename T>
struct CrossEntropyBackwardOp {
  const int32_t* labels;
  const T* dloss;
  FastDiv classes;
  int64_t rows;
  double smoothing;
  bool acc;
  RESNET_HD T operator()(int64_t i, T probs, T, T dx) const {
    using C = cmp_t<T>;
    const uint32_t n = classes.div(static_cast<uint32_t>(i));
    const int64_t k = static_cast<int64_t>(i) - static_cast<int64_t>(n) * classes.d;
    const C g = static_cast<C>(static_cast<double>(to_cmp(*dloss)) / static_cast<double>(rows));
    const C q = smoothed_target(k, static_cast<int64_t>(labels[n]), static_cast<C>(smoothing),
                                static_cast<int64_t>(classes.d));
    const T v = from_cmp<T>((to_cmp(probs) - q) * g);
    return acc ? from_cmp<T>(to_cmp(dx) + to_cmp(v)) : v;
  }
};

// ---------------------------------------------------------------- launchers

inline unsigned row_grid(int64_t rows) {
  return static_cast<unsigned>(rows < 65535 ? (rows > 0 ? rows : 1) : 65535);
}

template <typename T>
void softmax_forward(const T* x, T* y, int64_t rows, int64_t K, const LaunchEnv& env) {
  RESNET_LAUNCH((softmax_forward_kernel<T>), dim3(row_grid(rows)), kBlock, env, x, y, rows, K);
}
template <typename T>
void softmax_backward(const T* y, const T* dy, T* dx, int64_t rows, int64_t K, bool acc,
                      const LaunchEnv& env) {
  RESNET_LAUNCH((softmax_backward_kernel<T>), dim3(row_grid(rows)), kBlock, env, y, dy, dx, rows, K, acc);
}

inline size_t cross_entropy_workspace_bytes(int64_t rows) {
  return static_cast<size_t>(rows) * sizeof(double);
}

template <typename T>
void cross_entropy_forward(const T* logits, const int32_t* labels, int64_t rows, int64_t K, double smoothing,
                           T* loss, T* probs, void* workspace, const LaunchEnv& env) {
  auto* row_loss = static_cast<double*>(workspace);
  RESNET_LAUNCH((cross_entropy_rows_kernel<T>), dim3(row_grid(rows)), kBlock, env, logits, labels, rows, K,
                smoothing, probs, row_loss, env.error_flag);
  RESNET_LAUNCH((mean_of_rows_kernel<T>), dim3(1), kBlock, env, row_loss, rows, loss);
}

template <typename T>
void cross_entropy_backward(const T* probs, const int32_t* labels, double smoothing, const T* dloss,
                            T* dlogits, int64_t rows, int64_t K, bool acc, const LaunchEnv& env) {
  launch_map<T, T>(
      probs, nullptr, dlogits, rows * K, acc,
      CrossEntropyBackwardOp<T>{labels, dloss, FastDiv(static_cast<uint32_t>(K)), rows, smoothing, acc}, env);
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
