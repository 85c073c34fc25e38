// The three backends an op entry runs on, with the CPU backend's function names and signatures:
//   Cpu   resnet::cpu (the reference in double; the fast paths in float);
//   Sim   the CUDA kernels of kernels/*.cuh on host memory under the CPU simulator, planned for a simulated
//         device (multiprocessors, compute capability) the way src/cuda plans them for a real one;
//   Cuda  resnet::cuda on a GPU (only when the program links resnet::cuda).
// Sim is the one written out: each function does what its src/cuda twin does between the checks and the
// launch (geometry, workspace, launch environment), including its choice of the NHWC kernels for
// channels-last tensors (src/cuda's detail::is_nhwc: the same rule, here as Sim::nhwc).
#pragma once

// clang-format off
#include "cuda/sim.hpp"
#include "kernels/elementwise.cuh"
#include "kernels/reduction.cuh"
#include "kernels/batchnorm.cuh"
#include "kernels/batchnorm_nhwc.cuh"
#include "kernels/batchnorm_sync.cuh"
#include "kernels/loss.cuh"
#include "kernels/optim.cuh"
#include "kernels/pool.cuh"
#include "kernels/pool_nhwc.cuh"
// clang-format on

#include "catch.hpp"
#include "ops/registry.hpp"
#include "resnet/backend/cpu/batchnorm_sync.hpp"
#if RESNET_WITH_CUDA
#include "resnet/backend/cuda/batchnorm_sync.hpp"
#endif

namespace opreg {

namespace cpu = resnet::cpu;
namespace k = resnet::kernels;
using resnet::Activation;
using resnet::AdamHyper;
using resnet::BatchNormParams;
using resnet::ConvParams;
using resnet::PoolParams;
using resnet::SgdHyper;

#define OPREG_FORWARD(ns, fn)             \
  template <typename... A>                \
  decltype(auto) fn(A&&... a) {           \
    return ns::fn(std::forward<A>(a)...); \
  }
#define OPREG_FORWARD_ALL(ns)                       \
  OPREG_FORWARD(ns, fill)                           \
  OPREG_FORWARD(ns, add)                            \
  OPREG_FORWARD(ns, add_inplace)                    \
  OPREG_FORWARD(ns, scale)                          \
  OPREG_FORWARD(ns, mul)                            \
  OPREG_FORWARD(ns, relu_forward)                   \
  OPREG_FORWARD(ns, relu_backward)                  \
  OPREG_FORWARD(ns, sum_all)                        \
  OPREG_FORWARD(ns, broadcast_scalar)               \
  OPREG_FORWARD(ns, cast)                           \
  OPREG_FORWARD(ns, conv2d_forward)                 \
  OPREG_FORWARD(ns, conv2d_backward_data)           \
  OPREG_FORWARD(ns, conv2d_backward_weight)         \
  OPREG_FORWARD(ns, conv2d_backward_bias)           \
  OPREG_FORWARD(ns, batchnorm_forward_training)     \
  OPREG_FORWARD(ns, batchnorm_forward_inference)    \
  OPREG_FORWARD(ns, batchnorm_backward)             \
  OPREG_FORWARD(ns, batchnorm_sync_stats)           \
  OPREG_FORWARD(ns, batchnorm_sync_combine)         \
  OPREG_FORWARD(ns, batchnorm_sync_backward_reduce) \
  OPREG_FORWARD(ns, batchnorm_sync_backward_apply)  \
  OPREG_FORWARD(ns, maxpool2d_forward)              \
  OPREG_FORWARD(ns, maxpool2d_backward)             \
  OPREG_FORWARD(ns, avgpool2d_forward)              \
  OPREG_FORWARD(ns, avgpool2d_backward)             \
  OPREG_FORWARD(ns, global_avgpool_forward)         \
  OPREG_FORWARD(ns, global_avgpool_backward)        \
  OPREG_FORWARD(ns, linear_forward)                 \
  OPREG_FORWARD(ns, linear_backward)                \
  OPREG_FORWARD(ns, softmax_forward)                \
  OPREG_FORWARD(ns, softmax_backward)               \
  OPREG_FORWARD(ns, cross_entropy_forward)          \
  OPREG_FORWARD(ns, cross_entropy_backward)         \
  OPREG_FORWARD(ns, sgd_step)                       \
  OPREG_FORWARD(ns, adamw_step)

struct Cpu {
  static constexpr const char* name = "cpu";
  OPREG_FORWARD_ALL(cpu)
};

#if RESNET_WITH_CUDA
struct Cuda {
  static constexpr const char* name = "gpu";
  OPREG_FORWARD_ALL(resnet::cuda)
};
#else
struct Cuda {
  static constexpr const char* name = "gpu";
};
#endif

// BatchNorm's kernel choices a simulated device can ask for (SimDevice::variant).
enum SimBn { kBnDefault = 0, kBnSinglePass = 1, kBnClusters = 2 };

struct Sim {
  static constexpr const char* name = "sim";
  explicit Sim(const SimDevice& d) : dev(d) {}
  SimDevice dev;
  k::KernelErrorReport error{0, 0, 0};
  std::vector<char> ws;

  k::LaunchEnv env() {
    k::LaunchEnv e;
    e.sm_count = dev.sm;
    e.cc_major = dev.cc_major;
    e.error_flag = &error;
    return e;
  }
  void* workspace(size_t bytes) {
    ws.assign(bytes + 64, 0);
    return ws.data();
  }
  // src/cuda/context.cuh's is_nhwc: a tensor dense in both formats is read as row-major (the same memory).
  static bool nhwc(const TensorBase& t) {
    return t.rank() == 4 && t.suggest_memory_format() == resnet::MemoryFormat::ChannelsLast;
  }
  // NHWC kernel launches (BatchNorm, pooling, bias gradient): the sim nhwc mode asserts they ran.
  static inline int nhwc_ran = 0;

  // ---- elementwise
  template <typename T>
  void fill(Tensor<T>& y, double v) {
    k::fill(y.data(), y.numel(), v, env());
  }
  template <typename T>
  void add(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& y) {
    k::add(a.data(), b.data(), y.data(), y.numel(), env());
  }
  template <typename T>
  void add_inplace(Tensor<T>& y, const Tensor<T>& x, double alpha = 1.0) {
    k::add_inplace(y.data(), x.data(), y.numel(), alpha, env());
  }
  template <typename T>
  void scale(const Tensor<T>& x, double alpha, Tensor<T>& y) {
    k::scale(x.data(), alpha, y.data(), y.numel(), env());
  }
  template <typename T>
  void mul(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& y, bool acc = false) {
    k::mul(a.data(), b.data(), y.data(), y.numel(), acc, env());
  }
  template <typename T>
  void relu_forward(const Tensor<T>& x, Tensor<T>& y) {
    k::relu_forward(x.data(), y.data(), y.numel(), env());
  }
  template <typename T>
  void relu_backward(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx, bool acc) {
    k::relu_backward(y.data(), dy.data(), dx.data(), y.numel(), acc, env());
  }
  template <typename T>
  void sum_all(const Tensor<T>& x, Tensor<T>& y) {
    k::sum_all(x.data(), x.numel(), y.data(), workspace(k::sum_all_workspace_bytes()), env());
  }
  template <typename T>
  void broadcast_scalar(const Tensor<T>& dy, double alpha, Tensor<T>& dx, bool acc) {
    k::broadcast_scalar(dy.data(), alpha, dx.data(), dx.numel(), acc, env());
  }
  template <typename S, typename D>
  void cast(const Tensor<S>& x, Tensor<D>& y) {
    k::cast(x.data(), y.data(), x.numel(), env());
  }
  template <typename T>
  void conv2d_backward_bias(const Tensor<T>& dy, Tensor<T>& db, bool acc) {
    const bool cl = nhwc(dy);
    nhwc_ran += cl;
    const int64_t N = cl ? dy.dim(0) * dy.dim(2) * dy.dim(3) : dy.dim(0), C = dy.dim(1),
                  HW = cl ? 1 : dy.dim(2) * dy.dim(3);
    void* w = workspace(k::channel_sum_workspace_bytes<T>(N, C, HW, dev.sm));
    k::channel_sum(dy.data(), N, C, HW, db.data(), acc, w, env());
  }

  // ---- pooling
  static k::PoolGeom geom(const TensorBase& x, const TensorBase& y, const PoolParams& p) {
    return k::PoolGeom{x.dim(0) * x.dim(1),
                       x.dim(2),
                       x.dim(3),
                       y.dim(2),
                       y.dim(3),
                       static_cast<int>(p.kernel_h),
                       static_cast<int>(p.kernel_w),
                       static_cast<int>(p.stride_h),
                       static_cast<int>(p.stride_w),
                       static_cast<int>(p.pad_h),
                       static_cast<int>(p.pad_w),
                       p.count_include_pad};
  }
  static k::PoolGeomNhwc geom_nhwc(const TensorBase& x, const TensorBase& y, const PoolParams& p) {
    k::PoolGeomNhwc q;
    q.g = geom(x, y, p);
    q.N = x.dim(0);
    q.C = x.dim(1);
    return q;
  }
  template <typename T>
  void maxpool2d_forward(const Tensor<T>& x, Tensor<T>& y, Tensor<int32_t>& idx, const PoolParams& p) {
    if (nhwc(x) && ++nhwc_ran)
      k::maxpool_nhwc_forward(x.data(), y.data(), idx.data(), geom_nhwc(x, y, p), env());
    else
      k::maxpool_forward(x.data(), y.data(), idx.data(), geom(x, y, p), env());
  }
  template <typename T>
  void maxpool2d_backward(const Tensor<T>& dy, const Tensor<int32_t>& idx, Tensor<T>& dx, bool acc) {
    if (nhwc(dx) && ++nhwc_ran)
      k::maxpool_nhwc_backward(dy.data(), idx.data(), dx.data(), dx.dim(0), dx.dim(1), dx.dim(2) * dx.dim(3),
                               dy.dim(2) * dy.dim(3), acc, env());
    else
      k::maxpool_backward(dy.data(), idx.data(), dx.data(), dx.dim(0) * dx.dim(1), dx.dim(2) * dx.dim(3),
                          dy.dim(2) * dy.dim(3), acc, env());
  }
  template <typename T>
  void avgpool2d_forward(const Tensor<T>& x, Tensor<T>& y, const PoolParams& p) {
    if (nhwc(x) && ++nhwc_ran)
      k::avgpool_nhwc_forward(x.data(), y.data(), geom_nhwc(x, y, p), env());
    else
      k::avgpool_forward(x.data(), y.data(), geom(x, y, p), env());
  }
  template <typename T>
  void avgpool2d_backward(const Tensor<T>& dy, Tensor<T>& dx, const PoolParams& p, bool acc) {
    if (nhwc(dx) && ++nhwc_ran)
      k::avgpool_nhwc_backward(dy.data(), dx.data(), geom_nhwc(dx, dy, p), acc, env());
    else
      k::avgpool_backward(dy.data(), dx.data(), geom(dx, dy, p), acc, env());
  }
  template <typename T>
  void global_avgpool_forward(const Tensor<T>& x, Tensor<T>& y) {
    if (nhwc(x) && ++nhwc_ran)
      k::global_avgpool_nhwc_forward(x.data(), y.data(), x.dim(0), x.dim(1), x.dim(2) * x.dim(3), env());
    else
      k::global_avgpool_forward(x.data(), y.data(), x.dim(0) * x.dim(1), x.dim(2) * x.dim(3), env());
  }
  template <typename T>
  void global_avgpool_backward(const Tensor<T>& dy, Tensor<T>& dx, bool acc) {
    if (nhwc(dx) && ++nhwc_ran)
      k::global_avgpool_nhwc_backward(dy.data(), dx.data(), dx.dim(0), dx.dim(1), dx.dim(2) * dx.dim(3), acc,
                                      env());
    else
      k::global_avgpool_backward(dy.data(), dx.data(), dx.dim(0) * dx.dim(1), dx.dim(2) * dx.dim(3), acc,
                                 env());
  }

  // ---- softmax and cross-entropy
  template <typename T>
  void softmax_forward(const Tensor<T>& x, Tensor<T>& y) {
    k::softmax_forward(x.data(), y.data(), x.dim(0), x.dim(1), env());
  }
  template <typename T>
  void softmax_backward(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx, bool acc) {
    k::softmax_backward(y.data(), dy.data(), dx.data(), y.dim(0), y.dim(1), acc, env());
  }
  template <typename T>
  void cross_entropy_forward(const Tensor<T>& logits, const Tensor<int32_t>& labels, double smoothing,
                             Tensor<T>& loss, Tensor<T>& probs) {
    const int64_t N = logits.dim(0), K = logits.dim(1);
    void* w = workspace(k::cross_entropy_workspace_bytes(N));
    k::cross_entropy_forward(logits.data(), labels.data(), N, K, smoothing, loss.data(), probs.data(), w,
                             env());
  }
  template <typename T>
  void cross_entropy_backward(const Tensor<T>& probs, const Tensor<int32_t>& labels, double smoothing,
                              const Tensor<T>& dloss, Tensor<T>& dlogits, bool acc) {
    k::cross_entropy_backward(probs.data(), labels.data(), smoothing, dloss.data(), dlogits.data(),
                              probs.dim(0), probs.dim(1), acc, env());
  }

  // ---- optimizers
  template <typename P>
  void sgd_step(Tensor<P>& param, const Tensor<P>& grad, Tensor<P>& buf, const Tensor<double>& state,
                const SgdHyper& h) {
    k::sgd_step(param.data(), grad.data(), h.momentum != 0.0 ? buf.data() : nullptr, param.numel(),
                state.data(), h, env());
  }
  template <typename P>
  void adamw_step(Tensor<P>& param, const Tensor<P>& grad, Tensor<P>& m, Tensor<P>& v,
                  const Tensor<double>& state, const AdamHyper& h) {
    k::adamw_step(param.data(), grad.data(), m.data(), v.data(), param.numel(), state.data(), h, env());
  }

  // ---- BatchNorm (+ residual + ReLU)
  // The kernels each run took, per BatchNorm configuration (SimDevice::variant): the sim mode asserts
  // that each configuration ran the path it exists for.
  static inline int bn_ran[3][3] = {};
  template <typename T>
  void ran(k::BnPath taken, const k::BatchNormShape& s) {
    const k::BnPath planned = k::bn_plan<T>(s, bn_options(), env()).path;
    INFO("BatchNorm plan " << k::bn_path_name(planned) << ", ran " << k::bn_path_name(taken));
    CHECK(taken == planned);  // the launcher ran what the plan said (the simulator fits every cluster)
    ++bn_ran[dev.variant][static_cast<int>(taken)];
  }
  k::BnOptions bn_options() const {
    k::BnOptions o;
    o.single_pass = dev.variant == kBnSinglePass || dev.variant == kBnClusters;
    o.max_cluster = dev.variant == kBnClusters ? 8 : 1;
    if (dev.variant == kBnClusters) o.block_threads = 32;
    return o;
  }
  template <typename T, typename P>
  void batchnorm_forward_training(const Tensor<T>& x, const Tensor<T>* r, const Tensor<P>& gamma,
                                  const Tensor<P>& beta, Tensor<P>& rm, Tensor<P>& rv, Tensor<P>& sm,
                                  Tensor<P>& si, Tensor<T>& y, const BatchNormParams& bp, Activation act) {
    const k::BatchNormShape s{x.dim(0), x.dim(1), x.dim(2) * x.dim(3)};
    if (nhwc(x)) {
      ++nhwc_ran;
      void* w = workspace(k::bn_nhwc_forward_workspace_bytes<T>(s, dev.sm));
      k::bn_nhwc_forward_training(x.data(), r ? r->data() : static_cast<const T*>(nullptr), gamma.data(),
                                  beta.data(), rm.data(), rv.data(), sm.data(), si.data(), y.data(), s,
                                  bp.eps, bp.momentum, act == Activation::ReLU, w, env());
      return;
    }
    void* w = workspace(k::bn_forward_workspace_bytes<T>(s, dev.sm));
    k::bn_forward_training(x.data(), r ? r->data() : static_cast<const T*>(nullptr), gamma.data(),
                           beta.data(), rm.data(), rv.data(), sm.data(), si.data(), y.data(), s, bp.eps,
                           bp.momentum, act == Activation::ReLU, w, env(), bn_options());
  }
  template <typename T, typename P>
  void batchnorm_forward_inference(const Tensor<T>& x, const Tensor<T>* r, const Tensor<P>& gamma,
                                   const Tensor<P>& beta, const Tensor<P>& rm, const Tensor<P>& rv,
                                   Tensor<T>& y, const BatchNormParams& bp, Activation act) {
    const k::BatchNormShape s{x.dim(0), x.dim(1), x.dim(2) * x.dim(3)};
    void* w = workspace(k::bn_inference_workspace_bytes<T>(s));
    if (nhwc(x)) {
      ++nhwc_ran;
      k::bn_nhwc_forward_inference(x.data(), r ? r->data() : static_cast<const T*>(nullptr), gamma.data(),
                                   beta.data(), rm.data(), rv.data(), y.data(), s, bp.eps,
                                   act == Activation::ReLU, w, env());
      return;
    }
    k::bn_forward_inference(x.data(), r ? r->data() : static_cast<const T*>(nullptr), gamma.data(),
                            beta.data(), rm.data(), rv.data(), y.data(), s, bp.eps, act == Activation::ReLU,
                            w, env());
  }
  template <typename T, typename P>
  void batchnorm_backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, const Tensor<P>& gamma,
                          const Tensor<P>& mean, const Tensor<P>& invstd, bool training, Activation act,
                          Tensor<T>* dx, bool dx_acc, Tensor<T>* dres, bool dres_acc, Tensor<P>* dgamma,
                          Tensor<P>* dbeta, bool param_acc) {
    const k::BatchNormShape s{x.dim(0), x.dim(1), x.dim(2) * x.dim(3)};
    const bool relu = act == Activation::ReLU;
    if (nhwc(x)) {
      ++nhwc_ran;
      void* w = workspace(k::bn_nhwc_backward_workspace_bytes<T>(s, dev.sm));
      k::bn_nhwc_backward(x.data(), relu ? y.data() : static_cast<const T*>(nullptr), dy.data(), gamma.data(),
                          mean.data(), invstd.data(), training, relu,
                          dx ? dx->data() : static_cast<T*>(nullptr), dx_acc,
                          dres ? dres->data() : static_cast<T*>(nullptr), dres_acc,
                          dgamma ? dgamma->data() : static_cast<P*>(nullptr),
                          dbeta ? dbeta->data() : static_cast<P*>(nullptr), param_acc, s, w, env());
      return;
    }
    void* w = workspace(k::bn_backward_workspace_bytes<T>(s, dev.sm));
    const k::BnPath taken = k::bn_backward(
        x.data(), relu ? y.data() : static_cast<const T*>(nullptr), dy.data(), gamma.data(), mean.data(),
        invstd.data(), training, relu, dx ? dx->data() : static_cast<T*>(nullptr), dx_acc,
        dres ? dres->data() : static_cast<T*>(nullptr), dres_acc,
        dgamma ? dgamma->data() : static_cast<P*>(nullptr), dbeta ? dbeta->data() : static_cast<P*>(nullptr),
        param_acc, s, w, env(), bn_options());
    if (dx || dres || dgamma || dbeta) ran<T>(taken, s);
  }

  // ---- SyncBatchNorm's split pieces (kernels/batchnorm_sync.cuh)
  template <typename T>
  void batchnorm_sync_stats(const Tensor<T>& x, Tensor<double>& stats) {
    k::bn_sync_stats(x.data(), stats.data(), x.dim(0), x.dim(1), x.dim(2) * x.dim(3), env());
  }
  template <typename P>
  void batchnorm_sync_combine(const Tensor<double>& g, Tensor<P>& sm, Tensor<P>& si, Tensor<P>& var,
                              Tensor<P>& rm, Tensor<P>& rv, Tensor<double>& count,
                              const BatchNormParams& bp) {
    k::bn_sync_combine(g.data(), g.dim(0), g.dim(2), sm.data(), si.data(), var.data(), rm.data(), rv.data(),
                       count.data(), bp.eps, bp.momentum, env());
  }
  template <typename T, typename P>
  void batchnorm_sync_backward_reduce(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy,
                                      const Tensor<P>& mean, const Tensor<P>& invstd, Activation act,
                                      Tensor<double>& sums, Tensor<P>* dgamma, Tensor<P>* dbeta, bool acc) {
    const bool relu = act == Activation::ReLU;
    k::bn_sync_backward_reduce(x.data(), relu ? y.data() : static_cast<const T*>(nullptr), dy.data(),
                               mean.data(), invstd.data(), relu, sums.data(),
                               dgamma ? dgamma->data() : static_cast<P*>(nullptr),
                               dbeta ? dbeta->data() : static_cast<P*>(nullptr), acc, x.dim(0), x.dim(1),
                               x.dim(2) * x.dim(3), env());
  }
  template <typename T, typename P>
  void batchnorm_sync_backward_apply(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy,
                                     const Tensor<P>& gamma, const Tensor<P>& mean, const Tensor<P>& invstd,
                                     const Tensor<double>& sums, const Tensor<double>& count, Activation act,
                                     Tensor<T>* dx, bool dx_acc, Tensor<T>* dres, bool dres_acc) {
    const bool relu = act == Activation::ReLU;
    k::bn_sync_backward_apply(x.data(), relu ? y.data() : static_cast<const T*>(nullptr), dy.data(),
                              gamma.data(), mean.data(), invstd.data(), sums.data(), count.data(), relu,
                              dx ? dx->data() : static_cast<T*>(nullptr), dx_acc,
                              dres ? dres->data() : static_cast<T*>(nullptr), dres_acc, x.dim(0), x.dim(1),
                              x.dim(2) * x.dim(3), env());
  }
};

}  // namespace opreg
