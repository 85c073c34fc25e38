// Softmax and the fused, numerically stable log-softmax + cross-entropy loss on the CPU, over rows of
// [N, K] logits. Labels are int32 class indices; label smoothing s mixes the one-hot target with the
// uniform distribution: q = (1 - s) * onehot + s / K. The loss is the mean over the batch.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/cpu/api.hpp"

#include "resnet/backend/contract/loss.hpp"

#include <cmath>

#include "resnet/backend/cpu/elementwise.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

template <typename T>
void softmax_forward(const Tensor<T>& x, Tensor<T>& y) {
  contract::softmax("softmax", x, y);
  const int64_t N = x.dim(0), K = x.dim(1);
  const T* px = x.data();
  T* py = y.data();
  for (int64_t n = 0; n < N; ++n) {
    const T* row = px + n * K;
    double m = static_cast<double>(row[0]);
    for (int64_t k = 1; k < K; ++k) m = std::max(m, static_cast<double>(row[k]));
    double s = 0.0;
    for (int64_t k = 0; k < K; ++k) s += std::exp(static_cast<double>(row[k]) - m);
    for (int64_t k = 0; k < K; ++k)
      py[n * K + k] = static_cast<T>(std::exp(static_cast<double>(row[k]) - m) / s);
  }
}

// dx = y * (dy - sum(dy * y)) per row
template <typename T>
void softmax_backward(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx, bool accumulate) {
  contract::softmax_backward("softmax_backward", y, dy, dx);
  const int64_t N = y.dim(0), K = y.dim(1);
  for (int64_t n = 0; n < N; ++n) {
    const T* yr = y.data() + n * K;
    const T* gr = dy.data() + n * K;
    T* out = dx.data() + n * K;
    double dot = 0.0;
    for (int64_t k = 0; k < K; ++k) dot += static_cast<double>(yr[k]) * static_cast<double>(gr[k]);
    for (int64_t k = 0; k < K; ++k) {
      const double g = static_cast<double>(yr[k]) * (static_cast<double>(gr[k]) - dot);
      out[k] = static_cast<T>(accumulate ? static_cast<double>(out[k]) + g : g);
    }
  }
}

// loss (one element) = mean_n( -sum_k q_nk * log softmax(x_n)_k ); probs receives softmax(x) for the
// backward.
template <typename T>
void cross_entropy_forward(const Tensor<T>& logits, const Tensor<int32_t>& labels, double label_smoothing,
                           Tensor<T>& loss, Tensor<T>& probs) {
  contract::cross_entropy("cross_entropy", logits, labels, label_smoothing, loss, probs);
  const int64_t N = logits.dim(0), K = logits.dim(1);
  contract::label_values("cross_entropy", labels.data(), N, K);
  const T* px = logits.data();
  const int32_t* pl = labels.data();
  T* pp = probs.data();
  double total = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const T* row = px + n * K;
    double m = static_cast<double>(row[0]);
    for (int64_t k = 1; k < K; ++k) m = std::max(m, static_cast<double>(row[k]));
    double s = 0.0;
    for (int64_t k = 0; k < K; ++k) s += std::exp(static_cast<double>(row[k]) - m);
    const double log_z = m + std::log(s);
    double row_loss = 0.0;
    for (int64_t k = 0; k < K; ++k) {
      const double logp = static_cast<double>(row[k]) - log_z;
      const double q = (k == pl[n] ? 1.0 - label_smoothing : 0.0) + label_smoothing / static_cast<double>(K);
      row_loss -= q * logp;
      pp[n * K + k] = static_cast<T>(std::exp(logp));
    }
    total += row_loss;
  }
  loss.data()[0] = static_cast<T>(total / static_cast<double>(N));
}

// dlogits = (probs - q) * dloss / N
template <typename T>
void cross_entropy_backward(const Tensor<T>& probs, const Tensor<int32_t>& labels, double label_smoothing,
                            const Tensor<T>& dloss, Tensor<T>& dlogits, bool accumulate) {
  contract::cross_entropy_backward("cross_entropy_backward", probs, labels, label_smoothing, dloss, dlogits);
  const int64_t N = probs.dim(0), K = probs.dim(1);
  const double g = static_cast<double>(dloss.data()[0]) / static_cast<double>(N);
  const int32_t* pl = labels.data();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const double q = (k == pl[n] ? 1.0 - label_smoothing : 0.0) + label_smoothing / static_cast<double>(K);
      // Formed in double and rounded once into T (float, bfloat16 or double).
      const double v = (static_cast<double>(probs.data()[n * K + k]) - q) * g;
      T& out = dlogits.data()[n * K + k];
      out = static_cast<T>(accumulate ? static_cast<double>(out) + v : v);
    }
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
