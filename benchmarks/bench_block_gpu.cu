// bench_block, GPU part: our block kernels (unfused and fused) and cuDNN's fused batch norm, timed with CUDA
// events on the library's stream. Calls the kernel launchers of kernels/*.cuh directly (raw pointers, no
// per-call checks), so the numbers are the kernels' and not the op wrappers'.
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_block.hpp"
#include "kernels/batchnorm.cuh"
#include "resnet/resnet.hpp"

namespace bench_block {
namespace {

#define BB_CUDA(call)                                                                                \
  do {                                                                                               \
    cudaError_t e_ = (call);                                                                         \
    if (e_ != cudaSuccess) RESNET_FAIL("bench_block: ", #call, " failed: ", cudaGetErrorString(e_)); \
  } while (0)

struct Events {
  cudaEvent_t a = nullptr, b = nullptr;
  Events() {
    BB_CUDA(cudaEventCreate(&a));
    BB_CUDA(cudaEventCreate(&b));
  }
  ~Events() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
};

// Median over `runs` samples of the time of one call, each sample timing 10 back-to-back calls.
template <typename Fn>
double median_ms(cudaStream_t s, Fn&& fn, int runs, int warmup) {
  constexpr int kInner = 10;
  Events ev;
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  for (int r = 0; r < runs; ++r) {
    BB_CUDA(cudaEventRecord(ev.a, s));
    for (int i = 0; i < kInner; ++i) fn();
    BB_CUDA(cudaEventRecord(ev.b, s));
    BB_CUDA(cudaEventSynchronize(ev.b));
    float ms = 0;
    BB_CUDA(cudaEventElapsedTime(&ms, ev.a, ev.b));
    t.push_back(static_cast<double>(ms) / kInner);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

using resnet::Device;
using resnet::Tensor;
namespace k = resnet::kernels;

template <typename T>
T* dev_ptr(const Tensor<T>& t) {
  return t.data();
}

// cuDNN's fused batch norm (NHWC float16), forward and backward; returns a note instead of a time when
// cuDNN refuses the configuration.
struct CudnnBn {
  cudnnHandle_t h = nullptr;
  cudnnTensorDescriptor_t x = nullptr, bn = nullptr;
  cudnnActivationDescriptor_t act = nullptr;
  explicit CudnnBn(cudaStream_t s) {
    if (cudnnCreate(&h) != CUDNN_STATUS_SUCCESS) RESNET_FAIL("bench_block: cudnnCreate failed");
    cudnnSetStream(h, s);
    cudnnCreateTensorDescriptor(&x);
    cudnnCreateTensorDescriptor(&bn);
    cudnnCreateActivationDescriptor(&act);
    cudnnSetActivationDescriptor(act, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0);
  }
  ~CudnnBn() {
    cudnnDestroyActivationDescriptor(act);
    cudnnDestroyTensorDescriptor(bn);
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroy(h);
  }
};

std::string status_note(cudnnStatus_t st) { return std::string("cuDNN refused: ") + cudnnGetErrorString(st); }

template <typename T>
void run_dtype(const Options& o, const RowSink& sink, cudaStream_t stream, int sm_count, int cc_major,
               const Tensor<float>& noise, const char* dtype) {
  const Device gpu = Device::cuda(0);
  k::LaunchEnv env;
  env.stream = stream;
  env.sm_count = sm_count;
  env.cc_major = cc_major;
  const bool half = std::is_same<T, resnet::half_t>::value;
  std::unique_ptr<CudnnBn> cudnn = half ? std::make_unique<CudnnBn>(stream) : nullptr;
  for (int64_t N : o.batches)
    for (const auto& sh : o.shapes) {
      const int64_t n = N * sh.C * sh.H * sh.W;
      const resnet::Shape s{N, sh.C, sh.H, sh.W}, cs{sh.C};
      if (n > noise.numel()) RESNET_FAIL("bench_block: noise buffer too small");
      auto make = [&](int64_t offset) {
        Tensor<T> t = Tensor<T>::empty(s, gpu);
        k::cast(noise.data() + offset % 7, t.data(), n, env);
        return t;
      };
      Tensor<T> x = make(0), r = make(1), dy = make(2);
      Tensor<T> y = Tensor<T>::empty(s, gpu), t1 = Tensor<T>::empty(s, gpu), t2 = Tensor<T>::empty(s, gpu);
      Tensor<T> dx = Tensor<T>::empty(s, gpu), dres = Tensor<T>::empty(s, gpu), dz = Tensor<T>::empty(s, gpu);
      auto ones = Tensor<float>::ones(cs, gpu), zeros = Tensor<float>::zeros(cs, gpu);
      auto rm = Tensor<float>::zeros(cs, gpu), rv = Tensor<float>::ones(cs, gpu);
      auto sm = Tensor<float>::empty(cs, gpu), si = Tensor<float>::empty(cs, gpu);
      auto dg = Tensor<float>::empty(cs, gpu), db = Tensor<float>::empty(cs, gpu);
      const k::BatchNormShape bs{N, sh.C, sh.H * sh.W};
      const size_t ws_bytes = std::max(k::bn_forward_workspace_bytes<T>(bs, sm_count),
                                       k::bn_backward_workspace_bytes<T>(bs, sm_count));
      auto ws = Tensor<uint8_t>::empty({static_cast<int64_t>(ws_bytes)}, gpu);
      const double tensor_bytes = static_cast<double>(x.nbytes());
      const double copy_ms = median_ms(
          stream,
          [&] {
            BB_CUDA(cudaMemcpyAsync(t1.data(), x.data(), x.nbytes(), cudaMemcpyDeviceToDevice, stream));
          },
          o.runs, o.warmup);
      const double copy_gbs = 2 * tensor_bytes / (copy_ms * 1e6);
      for (bool tail : {false, true}) {
        if ((tail && !o.tail) || (!tail && !o.head)) continue;
        const T* res = tail ? r.data() : nullptr;
        const RowContext ctx{"cuda", dtype, sh, N, tensor_bytes, copy_gbs};
        auto row = [&](const char* pass, const char* variant, double ms, bool backward, Kernels kernels,
                       double unfused, const std::string& note) {
          sink(make_row(ctx, tail, pass, variant, ms, backward, kernels, unfused, note));
        };
        auto bn_fwd = [&](const T* resid, T* out, bool relu, const k::BnOptions& opt = {}) {
          k::bn_forward_training(x.data(), resid, ones.data(), zeros.data(), rm.data(), rv.data(), sm.data(),
                                 si.data(), out, bs, 1e-5, 0.1, relu, ws.data(), env, opt);
        };
        auto fused_bwd = [&](const k::BnOptions& opt) {
          k::bn_backward(x.data(), y.data(), dy.data(), ones.data(), sm.data(), si.data(), true, true,
                         dx.data(), false, tail ? dres.data() : static_cast<T*>(nullptr), false, dg.data(),
                         db.data(), false, bs, ws.data(), env, opt);
        };
        // (b) "fused" is the single pass where a channel fits one block (asked for explicitly: the library's
        // default is the multi-pass kernels until a GPU run has timed the single pass, RESULTS.md "Kernel
        // policy"), else the multi-pass kernels. Where it is the single pass, "fused-2pass" times the
        // multi-pass kernels on the same data; where a cluster would hold a channel that one block cannot
        // (the experimental cluster path, sm_90+), "fused-cluster" times that. All in one run.
        k::BnOptions multi, best, cluster;
        best.single_pass = true;
        cluster.single_pass = true;
        cluster.max_cluster = k::kMaxCluster;
        const bool single = k::bn_plan<T>(bs, best, env).path == k::BnPath::SinglePass;
        const bool clustered = k::bn_plan<T>(bs, cluster, env).path == k::BnPath::Cluster;
        const Kernels ours{true, single};
        double fwd_unfused = 0, bwd_unfused = 0;
        if (o.forward) {
          fwd_unfused = median_ms(
              stream,
              [&] {
                bn_fwd(nullptr, t1.data(), false, best);
                if (tail) k::add(t1.data(), r.data(), t2.data(), n, env);
                k::relu_forward(tail ? t2.data() : t1.data(), y.data(), n, env);
              },
              o.runs, o.warmup);
          const double fused = median_ms(
              stream, [&] { bn_fwd(res, y.data(), true, best); }, o.runs, o.warmup);
          row("fwd", "unfused", fwd_unfused, false, Kernels{false, single}, fwd_unfused, "");
          row("fwd", "fused", fused, false, ours, fwd_unfused, "");
          if (single) {
            const double two = median_ms(
                stream, [&] { bn_fwd(res, y.data(), true, multi); }, o.runs, o.warmup);
            row("fwd", "fused-2pass", two, false, kFusedTwoPass, fwd_unfused, "");
          }
          if (clustered) {
            const double cl = median_ms(
                stream, [&] { bn_fwd(res, y.data(), true, cluster); }, o.runs, o.warmup);
            row("fwd", "fused-cluster", cl, false, Kernels{true, true}, fwd_unfused, "");
          }
        }
        if (o.backward) {
          bn_fwd(res, y.data(), true, best);
          bwd_unfused = median_ms(
              stream,
              [&] {
                k::relu_backward(y.data(), dy.data(), dz.data(), n, false, env);
                if (tail)
                  BB_CUDA(
                      cudaMemcpyAsync(dres.data(), dz.data(), dz.nbytes(), cudaMemcpyDeviceToDevice, stream));
                k::bn_backward(x.data(), static_cast<const T*>(nullptr), dz.data(), ones.data(), sm.data(),
                               si.data(), true, false, dx.data(), false, static_cast<T*>(nullptr), false,
                               dg.data(), db.data(), false, bs, ws.data(), env, best);
              },
              o.runs, o.warmup);
          const double fused = median_ms(
              stream, [&] { fused_bwd(best); }, o.runs, o.warmup);
          row("bwd", "unfused", bwd_unfused, true, Kernels{false, single}, bwd_unfused, "");
          row("bwd", "fused", fused, true, ours, bwd_unfused, "");
          if (single) {
            const double two = median_ms(
                stream, [&] { fused_bwd(multi); }, o.runs, o.warmup);
            row("bwd", "fused-2pass", two, true, kFusedTwoPass, bwd_unfused, "");
          }
          if (clustered) {
            const double cl = median_ms(
                stream, [&] { fused_bwd(cluster); }, o.runs, o.warmup);
            row("bwd", "fused-cluster", cl, true, Kernels{true, true}, bwd_unfused, "");
          }
        }
        // (c) cuDNN's fused path: NHWC float16 only.
        if (!half) {
          if (o.forward)
            row("fwd", "cudnn", 0, false, kFusedTwoPass, 0,
                "n/a: cuDNN's fused BN+ReLU / BN+add+ReLU needs NHWC float16");
          if (o.backward)
            row("bwd", "cudnn", 0, true, kFusedTwoPass, 0,
                "n/a: cuDNN's fused BN+ReLU / BN+add+ReLU needs NHWC float16");
          continue;
        }
        const cudnnBatchNormMode_t mode = CUDNN_BATCHNORM_SPATIAL_PERSISTENT;
        const cudnnBatchNormOps_t ops =
            tail ? CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION : CUDNN_BATCHNORM_OPS_BN_ACTIVATION;
        cudnnSetTensor4dDescriptor(cudnn->x, CUDNN_TENSOR_NHWC, CUDNN_DATA_HALF, static_cast<int>(N),
                                   static_cast<int>(sh.C), static_cast<int>(sh.H), static_cast<int>(sh.W));
        cudnnDeriveBNTensorDescriptor(cudnn->bn, cudnn->x, mode);
        cudnnTensorDescriptor_t zd = tail ? cudnn->x : nullptr;
        size_t fws = 0, bws = 0, reserve = 0;
        cudnnStatus_t st = cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(
            cudnn->h, mode, ops, cudnn->x, zd, cudnn->x, cudnn->bn, cudnn->act, &fws);
        if (st == CUDNN_STATUS_SUCCESS)
          st = cudnnGetBatchNormalizationBackwardExWorkspaceSize(
              cudnn->h, mode, ops, cudnn->x, cudnn->x, cudnn->x, zd, cudnn->x, cudnn->bn, cudnn->act, &bws);
        if (st == CUDNN_STATUS_SUCCESS)
          st = cudnnGetBatchNormalizationTrainingExReserveSpaceSize(cudnn->h, mode, ops, cudnn->act, cudnn->x,
                                                                    &reserve);
        if (st != CUDNN_STATUS_SUCCESS) {
          if (o.forward) row("fwd", "cudnn", 0, false, kFusedTwoPass, 0, status_note(st));
          if (o.backward) row("bwd", "cudnn", 0, true, kFusedTwoPass, 0, status_note(st));
          continue;
        }
        auto cws = Tensor<uint8_t>::empty({static_cast<int64_t>(std::max<size_t>({fws, bws, 1}))}, gpu);
        auto cres = Tensor<uint8_t>::empty({static_cast<int64_t>(std::max<size_t>(reserve, 1))}, gpu);
        const float one = 1.f, zero = 0.f;
        auto cudnn_fwd = [&] {
          return cudnnBatchNormalizationForwardTrainingEx(
              cudnn->h, mode, ops, &one, &zero, cudnn->x, x.data(), zd, tail ? r.data() : nullptr, cudnn->x,
              y.data(), cudnn->bn, ones.data(), zeros.data(), 0.1, rm.data(), rv.data(), 1e-5, sm.data(),
              si.data(), cudnn->act, cws.data(), fws, cres.data(), reserve);
        };
        st = cudnn_fwd();
        if (st != CUDNN_STATUS_SUCCESS) {
          if (o.forward) row("fwd", "cudnn", 0, false, kFusedTwoPass, 0, status_note(st));
          if (o.backward) row("bwd", "cudnn", 0, true, kFusedTwoPass, 0, status_note(st));
          continue;
        }
        if (o.forward) {
          const double ms = median_ms(
              stream, [&] { cudnn_fwd(); }, o.runs, o.warmup);
          row("fwd", "cudnn", ms, false, kFusedTwoPass, fwd_unfused, "");
        }
        if (o.backward) {
          auto cudnn_bwd = [&] {
            return cudnnBatchNormalizationBackwardEx(
                cudnn->h, mode, ops, &one, &zero, &one, &zero, cudnn->x, x.data(), cudnn->x, y.data(),
                cudnn->x, dy.data(), zd, tail ? dres.data() : nullptr, cudnn->x, dx.data(), cudnn->bn,
                ones.data(), zeros.data(), dg.data(), db.data(), 1e-5, sm.data(), si.data(), cudnn->act,
                cws.data(), bws, cres.data(), reserve);
          };
          st = cudnn_bwd();
          if (st != CUDNN_STATUS_SUCCESS) {
            row("bwd", "cudnn", 0, true, kFusedTwoPass, 0, status_note(st));
          } else {
            const double ms = median_ms(
                stream, [&] { cudnn_bwd(); }, o.runs, o.warmup);
            row("bwd", "cudnn", ms, true, kFusedTwoPass, bwd_unfused, "");
          }
        }
      }
    }
}

}  // namespace

bool run_gpu(const Options& o, const RowSink& sink, std::string* why_not) {
  if (resnet::cuda::device_count() == 0) {
    *why_not = "no CUDA device (" + resnet::cuda::unavailable_reason() + ")";
    return false;
  }
  BB_CUDA(cudaSetDevice(0));
  cudaDeviceProp prop;
  BB_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("bench_block: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  cudaStream_t stream = static_cast<cudaStream_t>(resnet::cuda::current_stream(0));
  int64_t largest = 0;
  for (int64_t N : o.batches)
    for (const auto& sh : o.shapes) largest = std::max(largest, N * sh.C * sh.H * sh.W);
  // Random values once, on the host, then cast on the device into every tensor.
  std::vector<float> host(static_cast<size_t>(largest + 8));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& v : host) v = nd(rng);
  Tensor<float> noise = Tensor<float>::from_vector(host, {largest + 8}).to(Device::cuda(0));
  host.clear();
  host.shrink_to_fit();
  for (const auto& d : o.dtypes) {
    if (d == "float32")
      run_dtype<float>(o, sink, stream, prop.multiProcessorCount, prop.major, noise, "float32");
    if (d == "float16")
      run_dtype<resnet::half_t>(o, sink, stream, prop.multiProcessorCount, prop.major, noise, "float16");
  }
  BB_CUDA(cudaStreamSynchronize(stream));
  return true;
}

}  // namespace bench_block
