// BatchNorm2d's arithmetic, written once for every backend: the CUDA kernels (kernels/batchnorm_*.cuh), the
// CPU reference (cpu/batchnorm.hpp, in double) and the CPU fast path (cpu/batchnorm_fast.hpp, in float) all
// call these host+device functions, so their formulas cannot drift apart. Only the loops differ.
//
// Forward, per channel of `count` values with batch mean and (biased) variance var:
//   invstd = 1 / sqrt(var + eps)
//   y = act((x - pivot) * scale + shift [+ residual]),  scale = gamma * invstd,
//   shift = beta - (mean - pivot) * scale,
// where the pivot is any value near the mean (0 on the CPU; a sample of the channel, or the running mean,
// on the GPU, so that x - pivot keeps the digits of data with a large mean and a small spread).
// Training also updates the running statistics as PyTorch does, with the unbiased variance:
//   running_mean = (1 - momentum) * running_mean + momentum * mean
//   running_var  = (1 - momentum) * running_var  + momentum * var * count / (count - 1).
//
// Backward, given dy at the activation's output and the saved y as the ReLU mask:
//   dz = relu ? (y > 0 ? dy : 0) : dy                     (also the residual's gradient)
//   dgamma = sum(dz * (x - mean)) * invstd,  dbeta = sum(dz)
//   dx = a * dz + b * (x - mean) + c,  a = gamma * invstd,
//   b = -a * invstd^2 * sum(dz * (x - mean)) / count,  c = -a * sum(dz) / count
// (b = c = 0 in eval mode, where the statistics are constants). Sums and per-channel values are formed in
// double; the per-element rules run in the compute type C (float or double).
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>

#include "resnet/core/dtype.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace bn {

// ---------------------------------------------------------------- per-element rules

// max(v, 0) with NaN passed through (as torch.relu): a NaN must reach the loss, not vanish in a ReLU.
template <typename C>
RESNET_HD inline C relu(C v) {
  return v < C(0) ? C(0) : v;
}

template <typename C>
RESNET_HD inline C apply(C x, C pivot, C scale, C shift, C residual, bool relu_on) {
  const C v = (x - pivot) * scale + shift + residual;
  return relu_on ? relu(v) : v;
}

// The gradient at BN's output (and the residual's): dy where the saved output y passed the ReLU.
template <typename C>
RESNET_HD inline C dz(C dy, C y, bool relu_on) {
  return relu_on && !(y > C(0)) ? C(0) : dy;
}

// ---------------------------------------------------------------- forward statistics

RESNET_HD inline double invstd(double var, double eps) { return 1.0 / ::sqrt(var + eps); }

RESNET_HD inline double update_running_mean(double running, double mean, double momentum) {
  return (1.0 - momentum) * running + momentum * mean;
}
// `var` is the batch's biased variance; the running average takes the unbiased one, as PyTorch does.
RESNET_HD inline double update_running_var(double running, double var, double count, double momentum) {
  return (1.0 - momentum) * running + momentum * var * count / (count - 1.0);
}

// What a training forward records of a channel: the saved mean and invstd (for the backward) and the
// updated running statistics.
template <typename P>
RESNET_HD inline void store_statistics(double mean, double var, double inv, double count, double momentum,
                                       P* save_mean, P* save_invstd, P* running_mean, P* running_var) {
  *save_mean = static_cast<P>(mean);
  *save_invstd = static_cast<P>(inv);
  *running_mean = static_cast<P>(update_running_mean(static_cast<double>(*running_mean), mean, momentum));
  *running_var = static_cast<P>(update_running_var(static_cast<double>(*running_var), var, count, momentum));
}

template <typename C>
struct ScaleShift {
  C scale, shift;
};
// The scale is rounded to C before the shift is formed from it, so that the shift cancels the mean with
// the very scale the elements are multiplied by.
template <typename C>
RESNET_HD inline ScaleShift<C> scale_shift(double gamma, double beta, double inv, double mean_minus_pivot) {
  const C scale = static_cast<C>(gamma * inv);
  return ScaleShift<C>{scale, static_cast<C>(beta - mean_minus_pivot * static_cast<double>(scale))};
}

// ---------------------------------------------------------------- backward

// dgamma = [dgamma +] sum(dz * (x - mean)) * invstd, dbeta = [dbeta +] sum(dz); a null pointer is skipped.
template <typename P>
RESNET_HD inline void store_param_grads(double sum_dz, double sum_dz_xmu, double inv, bool accumulate,
                                        P* dgamma, P* dbeta) {
  if (dgamma) *dgamma = static_cast<P>((accumulate ? static_cast<double>(*dgamma) : 0.0) + sum_dz_xmu * inv);
  if (dbeta) *dbeta = static_cast<P>((accumulate ? static_cast<double>(*dbeta) : 0.0) + sum_dz);
}

// The per-channel coefficients of dx = a * dz + b * (x - mean) + c.
template <typename C>
struct Coefficients {
  C a;     // gamma * invstd: dz's share
  C b;     // -a * invstd^2 * sum(dz * (x - mean)) / count: the variance's share (0 in eval mode)
  C mean;  // the mean x is centred on
  C c;     // -a * sum(dz) / count: the mean's share (0 in eval mode)
};
template <typename C>
RESNET_HD inline Coefficients<C> dx_coefficients(double gamma, double mean, double inv, double sum_dz,
                                                 double sum_dz_xmu, double count, bool training) {
  const double a = gamma * inv;
  return Coefficients<C>{static_cast<C>(a),
                         static_cast<C>(training ? -a * inv * inv * sum_dz_xmu / count : 0.0),
                         static_cast<C>(mean), static_cast<C>(training ? -a * sum_dz / count : 0.0)};
}

template <typename C>
RESNET_HD inline C dx(C dz, C x_minus_mean, const Coefficients<C>& k) {
  return k.a * dz + k.b * x_minus_mean + k.c;
}

}  // namespace bn
}  // namespace RESNET_ABI
}  // namespace resnet
