// resnet::cuda convolutions through cuDNN and linear layers through cuBLAS.
//
// Convolutions: one plan per shape, dtype, device and TF32 setting holds the cuDNN descriptors and, for
// each direction (forward, backward data, backward filter), the algorithm chosen the first time that
// direction runs: timed by cudnnFind*Ex on scratch outputs (never on a gradient that accumulates), or
// taken from cuDNN's heuristics (see runtime.hpp ConvSearch). Float32 uses FMA-only math unless TF32 is on;
// 16-bit types use tensor cores with float accumulation. Biases use our per-channel kernels.
//
// Channels-last activations (x, y, dx, dy with NHWC strides; off by default, cuda::set_channels_last) get
// NHWC tensor descriptors and an NHWC (KRSC, i.e. OHWI) filter. The model's weights stay OIHW (torchvision's
// layout: checkpoints and optimizers never see another), so each call transposes the weight into an OHWI
// copy on the device first, and the filter gradient is computed into an OHWI scratch tensor and
// transposed back (added into dw when accumulating). A weight that is itself channels-last (OHWI in
// memory) goes to NHWC plans as it is, and through the transposition the other way to NCHW plans. Why not
// hand cuDNN the OIHW filter with NHWC tensors: the legacy API supports that mix for only some algorithms and
// data types, and its fast NHWC (tensor core) kernels want KRSC filters, so a mixed plan could find no
// algorithm or only a slow one; a weight is small next to the activations (the copy is ~1% of a ResNet-50
// layer's bytes).
//
// Linear: row-major y = x W^T through cublasGemmEx with float (or double) accumulation.
#include "resnet/core/abi.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "capture.cuh"
#include "context.cuh"
#include "resnet/backend/contract/conv.hpp"
#include "resnet/backend/contract/linear.hpp"
#include "kernels/channel.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/layout.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

using detail::check_cuda_dense;
using detail::check_cuda_tensor;
using detail::check_index_range;
using detail::cuda_device;
using detail::is_nhwc;
using detail::launch_env;
using detail::OpScope;

namespace {

template <typename T>
struct DataType;
template <>
struct DataType<float> {
  static constexpr cudnnDataType_t cudnn = CUDNN_DATA_FLOAT;
  static constexpr cudaDataType_t cuda = CUDA_R_32F;
};
template <>
struct DataType<double> {
  static constexpr cudnnDataType_t cudnn = CUDNN_DATA_DOUBLE;
  static constexpr cudaDataType_t cuda = CUDA_R_64F;
};
template <>
struct DataType<half_t> {
  static constexpr cudnnDataType_t cudnn = CUDNN_DATA_HALF;
  static constexpr cudaDataType_t cuda = CUDA_R_16F;
};
template <>
struct DataType<bf16_t> {
  static constexpr cudnnDataType_t cudnn = CUDNN_DATA_BFLOAT16;
  static constexpr cudaDataType_t cuda = CUDA_R_16BF;
};

// alpha and beta are float for every type but double.
template <typename T>
using scale_t = std::conditional_t<std::is_same<T, double>::value, double, float>;

// ---------------------------------------------------------------- convolution plans

enum Direction { kForward = 0, kBackwardData = 1, kBackwardFilter = 2 };
const char* direction_name(int d) {
  return d == kForward ? "forward" : d == kBackwardData ? "backward data" : "backward filter";
}

struct ConvKey {
  int device;
  int dtype;
  bool tf32;
  bool nhwc;  // channels-last activations, OHWI filter
  int64_t n, c, h, w, k, kh, kw, sh, sw, ph, pw;
  bool operator==(const ConvKey& o) const {
    return device == o.device && dtype == o.dtype && tf32 == o.tf32 && nhwc == o.nhwc && n == o.n &&
           c == o.c && h == o.h && w == o.w && k == o.k && kh == o.kh && kw == o.kw && sh == o.sh &&
           sw == o.sw && ph == o.ph && pw == o.pw;
  }
};
struct ConvKeyHash {
  size_t operator()(const ConvKey& k) const {
    size_t h = std::hash<int64_t>()(k.device * 131 + k.dtype * 7 + (k.tf32 ? 1 : 0) + (k.nhwc ? 2 : 0));
    for (int64_t v : {k.n, k.c, k.h, k.w, k.k, k.kh, k.kw, k.sh, k.sw, k.ph, k.pw})
      h ^= std::hash<int64_t>()(v) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
  }
};

struct ChosenAlgo {
  bool chosen = false;
  int algo = 0;
  size_t workspace = 0;
};

struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv[3] = {nullptr, nullptr, nullptr};  // each direction keeps its math type
  ChosenAlgo algo[3];
  size_t y_bytes = 0, x_bytes = 0, w_bytes = 0;
  std::mutex mu;
  // Plans live as long as the process (a handful per network); descriptors are never destroyed.
};

std::string shape_text(const ConvKey& k) {
  return ::resnet::detail::concat("input [", k.n, ", ", k.c, ", ", k.h, ", ", k.w, "], weight [", k.k, ", ",
                                  k.c, ", ", k.kh, ", ", k.kw, "], stride ", k.sh, "x", k.sw, ", padding ",
                                  k.ph, "x", k.pw, k.nhwc ? ", channels-last" : "");
}

template <typename T>
cudnnMathType_t default_math(bool tf32) {
  if (std::is_same<T, float>::value) return tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  if (std::is_same<T, double>::value) return CUDNN_DEFAULT_MATH;
  return CUDNN_TENSOR_OP_MATH;
}

template <typename T>
ConvPlan& conv_plan(const ConvKey& key) {
  static auto* cache = new std::unordered_map<ConvKey, std::unique_ptr<ConvPlan>, ConvKeyHash>();
  static auto* mu = new std::mutex();
  std::lock_guard<std::mutex> lock(*mu);
  auto it = cache->find(key);
  if (it != cache->end()) return *it->second;
  for (int64_t v : {key.n, key.c, key.h, key.w, key.k, key.kh, key.kw})
    RESNET_CHECK(v < (int64_t(1) << 31), "conv2d: dimension ", v, " too large for cuDNN (", shape_text(key),
                 ")");
  auto plan = std::make_unique<ConvPlan>();
  const cudnnDataType_t dt = DataType<T>::cudnn;
  const cudnnDataType_t compute = std::is_same<T, double>::value ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  const int64_t oh = (key.h + 2 * key.ph - key.kh) / key.sh + 1,
                ow = (key.w + 2 * key.pw - key.kw) / key.sw + 1;
  auto i = [](int64_t v) { return static_cast<int>(v); };
  // Dimensions are given as N, C, H, W (K, C, KH, KW) in both formats; the format sets the strides.
  const cudnnTensorFormat_t fmt = key.nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  RESNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->x));
  RESNET_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->x, fmt, dt, i(key.n), i(key.c), i(key.h), i(key.w)));
  RESNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->y));
  RESNET_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->y, fmt, dt, i(key.n), i(key.k), i(oh), i(ow)));
  RESNET_CUDNN_CHECK(cudnnCreateFilterDescriptor(&plan->w));
  RESNET_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w, dt, fmt, i(key.k), i(key.c), i(key.kh), i(key.kw)));
  for (auto& conv : plan->conv) {
    RESNET_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    RESNET_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, i(key.ph), i(key.pw), i(key.sh), i(key.sw), 1, 1,
                                                       CUDNN_CROSS_CORRELATION, compute));
    RESNET_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, default_math<T>(key.tf32)));
  }
  int n = 0, c = 0, h = 0, w = 0;
  RESNET_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(plan->conv[0], plan->x, plan->w, &n, &c, &h, &w));
  RESNET_CHECK(n == key.n && c == key.k && h == oh && w == ow, "conv2d: cuDNN computes output [", n, ", ", c,
               ", ", h, ", ", w, "] but resnet expects [", key.n, ", ", key.k, ", ", oh, ", ", ow, "] for ",
               shape_text(key));
  plan->x_bytes = static_cast<size_t>(key.n * key.c * key.h * key.w) * sizeof(T);
  plan->y_bytes = static_cast<size_t>(key.n * key.k * oh * ow) * sizeof(T);
  plan->w_bytes = static_cast<size_t>(key.k * key.c * key.kh * key.kw) * sizeof(T);
  ConvPlan& ref = *plan;
  cache->emplace(key, std::move(plan));
  return ref;
}

// Scratch device memory for algorithm search only (once per shape): straight from the driver, so a large
// search workspace never lingers in the caching allocator.
struct SearchBuffer {
  void* p = nullptr;
  size_t size = 0;
  explicit SearchBuffer(size_t want, bool shrink_on_failure) {
    size = want;
    while (size > 0 && cudaMalloc(&p, size) != cudaSuccess) {
      cudaGetLastError();
      p = nullptr;
      if (!shrink_on_failure) break;
      size /= 2;
      if (size < (size_t(1) << 20)) size = 0;
    }
    if (!p) size = 0;
  }
  ~SearchBuffer() {
    if (p) cudaFree(p);
  }
};

size_t search_workspace_limit() {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    cudaGetLastError();
    return size_t(256) << 20;
  }
  const size_t cap = size_t(4) << 30;
  size_t limit = free_b / 4 * 3;
  return limit < cap ? limit : cap;
}

bool math_allowed(cudnnMathType_t m, cudnnMathType_t wanted) {
  // FMA-only float32 (TF32 off) must not come back with a tensor-op algorithm.
  if (wanted == CUDNN_FMA_MATH) return m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH;
  return true;
}

// Picks the algorithm of direction `d` from cuDNN's perf results (sorted fastest first).
template <typename Perf>
bool pick(const Perf* perf, int count, size_t limit, cudnnMathType_t wanted, Perf* out) {
  for (int k = 0; k < count; ++k)
    if (perf[k].status == CUDNN_STATUS_SUCCESS && perf[k].memory <= limit &&
        math_allowed(perf[k].mathType, wanted)) {
      *out = perf[k];
      return true;
    }
  return false;
}

// Chooses (once) and returns the algorithm of direction d. a, b: the two inputs of that direction.
template <typename T>
ChosenAlgo choose(ConvPlan& plan, const ConvKey& key, int d, const void* a, const void* b) {
  std::lock_guard<std::mutex> lock(plan.mu);
  if (plan.algo[d].chosen) return plan.algo[d];
  detail::refuse_during_capture("cuDNN algorithm search (conv2d)",
                                "it times algorithms with cudaMalloc and waits for the device; run the step "
                                "eagerly at this shape first (warm-up)",
                                key.device);
  cudnnHandle_t h = detail::cudnn_handle(key.device);
  const cudnnMathType_t wanted = default_math<T>(key.tf32);
  cudnnConvolutionDescriptor_t conv = plan.conv[d];
  const bool benchmark = conv_search() == ConvSearch::Benchmark;
  const size_t limit = search_workspace_limit();
  int returned = 0;
  cudnnMathType_t math = wanted;
  int algo = -1;
  if (d == kForward) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT], best;
    if (benchmark) {
      SearchBuffer out(plan.y_bytes, false), ws(limit, true);
      RESNET_CHECK(out.p, "conv2d: no memory for the algorithm search output (", plan.y_bytes, " bytes)");
      RESNET_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, plan.x, a, plan.w, b, conv, plan.y, out.p,
                                                                CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned,
                                                                perf, ws.p, ws.size));
      if (pick(perf, returned, ws.size, wanted, &best)) algo = best.algo, math = best.mathType;
    } else {
      RESNET_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
          h, plan.x, plan.w, conv, plan.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf));
      if (pick(perf, returned, limit, wanted, &best)) algo = best.algo, math = best.mathType;
    }
  } else if (d == kBackwardData) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT], best;
    if (benchmark) {
      SearchBuffer out(plan.x_bytes, false), ws(limit, true);
      RESNET_CHECK(out.p, "conv2d: no memory for the algorithm search output (", plan.x_bytes, " bytes)");
      RESNET_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
          h, plan.w, a, plan.y, b, conv, plan.x, out.p, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned,
          perf, ws.p, ws.size));
      if (pick(perf, returned, ws.size, wanted, &best)) algo = best.algo, math = best.mathType;
    } else {
      RESNET_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
          h, plan.w, plan.y, conv, plan.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned, perf));
      if (pick(perf, returned, limit, wanted, &best)) algo = best.algo, math = best.mathType;
    }
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT], best;
    if (benchmark) {
      SearchBuffer out(plan.w_bytes, false), ws(limit, true);
      RESNET_CHECK(out.p, "conv2d: no memory for the algorithm search output (", plan.w_bytes, " bytes)");
      RESNET_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
          h, plan.x, a, plan.y, b, conv, plan.w, out.p, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &returned,
          perf, ws.p, ws.size));
      if (pick(perf, returned, ws.size, wanted, &best)) algo = best.algo, math = best.mathType;
    } else {
      RESNET_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
          h, plan.x, plan.y, conv, plan.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &returned, perf));
      if (pick(perf, returned, limit, wanted, &best)) algo = best.algo, math = best.mathType;
    }
  }
  RESNET_CHECK(algo >= 0, "conv2d ", direction_name(d), ": cuDNN offers no usable algorithm for ",
               dtype_name(dtype_of<T>::value), " ", shape_text(key), " (", returned,
               " candidates, workspace limit ", limit, " bytes)");
  // FMA-only float32 stays FMA-only: DEFAULT_MATH would let cuDNN use TF32 on Ampere.
  if (wanted == CUDNN_FMA_MATH) math = CUDNN_FMA_MATH;
  RESNET_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, math));
  size_t ws = 0;
  if (d == kForward)
    RESNET_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(
        h, plan.x, plan.w, conv, plan.y, static_cast<cudnnConvolutionFwdAlgo_t>(algo), &ws));
  else if (d == kBackwardData)
    RESNET_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(
        h, plan.w, plan.y, conv, plan.x, static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), &ws));
  else
    RESNET_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
        h, plan.x, plan.y, conv, plan.w, static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), &ws));
  plan.algo[d] = ChosenAlgo{true, algo, ws};
  return plan.algo[d];
}

template <typename T>
ConvKey conv_key(int dev, const TensorBase& x, const TensorBase& w, const ConvParams& p) {
  return ConvKey{dev,
                 static_cast<int>(dtype_of<T>::value),
                 tf32_enabled(),
                 is_nhwc(x),
                 x.dim(0),
                 x.dim(1),
                 x.dim(2),
                 x.dim(3),
                 w.dim(0),
                 w.dim(2),
                 w.dim(3),
                 p.stride_h,
                 p.stride_w,
                 p.pad_h,
                 p.pad_w};
}

// The filter cuDNN reads, in the plan's layout: OHWI (KRSC) for NHWC plans, OIHW otherwise; w itself when
// it is laid out so (a channels-last weight is OHWI in memory), else a transposed copy (see the top).
template <typename T>
Tensor<T> filter_for(const ConvKey& key, const Tensor<T>& w, int dev) {
  const bool ohwi = !w.is_contiguous();  // dense: checked before
  if (ohwi == key.nhwc) return w;
  Tensor<T> t = Tensor<T>::empty(w.shape(), w.device(),
                                 key.nhwc ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous);
  const int64_t O = w.dim(0), C = w.dim(1), K = w.dim(2) * w.dim(3);
  if (key.nhwc)
    kernels::batched_transpose(w.data(), t.data(), O, C, K, false, launch_env(dev));  // OIHW -> OHWI
  else
    kernels::batched_transpose(w.data(), t.data(), O, K, C, false, launch_env(dev));  // OHWI -> OIHW
  return t;
}

// y[.., c] += bias[c] over y's channels, in y's format.
template <typename T>
void add_bias(Tensor<T>& y, const Tensor<T>& bias, bool nhwc, int dev) {
  kernels::channel_bias_add(y.data(), bias.data(), y.numel(), y.dim(1), nhwc ? 1 : y.dim(2) * y.dim(3),
                            launch_env(dev));
}

}  // namespace

template <typename T>
void conv2d_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* bias, Tensor<T>& y,
                    const ConvParams& p) {
  const char* name = "conv2d";
  contract::conv2d("conv2d", x, w, y, p, bias);
  const int dev = cuda_device(name, x, "input");
  OpScope op(name, dev);
  check_cuda_dense(name, x, dev, "input");
  check_cuda_dense(name, w, dev, "weight");
  check_cuda_dense(name, y, dev, "output");
  if (bias) {
    check_cuda_tensor(name, *bias, dev, "bias");
    check_index_range(name, y);
  }
  if (y.numel() == 0) return;
  const ConvKey key = conv_key<T>(dev, x, w, p);
  ConvPlan& plan = conv_plan<T>(key);
  const Tensor<T> f = filter_for(key, w, dev);
  const ChosenAlgo a = choose<T>(plan, key, kForward, x.data(), f.data());
  void* ws = a.workspace ? detail::workspace(dev, a.workspace) : nullptr;
  const scale_t<T> one = 1, zero = 0;
  RESNET_CUDNN_CHECK(cudnnConvolutionForward(
      detail::cudnn_handle(dev), &one, plan.x, x.data(), plan.w, f.data(), plan.conv[kForward],
      static_cast<cudnnConvolutionFwdAlgo_t>(a.algo), ws, a.workspace, &zero, plan.y, y.data()));
  if (bias) add_bias(y, *bias, key.nhwc, dev);
}

template <typename T>
void conv2d_backward_data(const Tensor<T>& dy, const Tensor<T>& w, Tensor<T>& dx, const ConvParams& p,
                          bool accumulate) {
  const char* name = "conv2d_backward_data";
  contract::conv2d("conv2d_backward_data", dx, w, dy, p);
  const int dev = cuda_device(name, dy, "output gradient");
  OpScope op(name, dev);
  check_cuda_dense(name, dy, dev, "output gradient");
  check_cuda_dense(name, w, dev, "weight");
  check_cuda_dense(name, dx, dev, "input gradient");
  if (dx.numel() == 0) return;
  const ConvKey key = conv_key<T>(dev, dx, w, p);
  ConvPlan& plan = conv_plan<T>(key);
  const Tensor<T> f = filter_for(key, w, dev);
  const ChosenAlgo a = choose<T>(plan, key, kBackwardData, f.data(), dy.data());
  void* ws = a.workspace ? detail::workspace(dev, a.workspace) : nullptr;
  const scale_t<T> one = 1, beta = accumulate ? 1 : 0;
  RESNET_CUDNN_CHECK(cudnnConvolutionBackwardData(
      detail::cudnn_handle(dev), &one, plan.w, f.data(), plan.y, dy.data(), plan.conv[kBackwardData],
      static_cast<cudnnConvolutionBwdDataAlgo_t>(a.algo), ws, a.workspace, &beta, plan.x, dx.data()));
}

template <typename T>
void conv2d_backward_weight(const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& dw, const ConvParams& p,
                            bool accumulate) {
  const char* name = "conv2d_backward_weight";
  contract::conv2d("conv2d_backward_weight", x, dw, dy, p);
  const int dev = cuda_device(name, x, "input");
  OpScope op(name, dev);
  check_cuda_dense(name, x, dev, "input");
  check_cuda_dense(name, dy, dev, "output gradient");
  check_cuda_dense(name, dw, dev, "weight gradient");
  if (dw.numel() == 0) return;
  const ConvKey key = conv_key<T>(dev, x, dw, p);
  ConvPlan& plan = conv_plan<T>(key);
  const ChosenAlgo a = choose<T>(plan, key, kBackwardFilter, x.data(), dy.data());
  void* ws = a.workspace ? detail::workspace(dev, a.workspace) : nullptr;
  // cuDNN writes the plan's filter layout; when dw is laid out otherwise, into a scratch filter that is
  // transposed into dw afterwards (added when accumulating).
  const bool dw_ohwi = !dw.is_contiguous(), direct = dw_ohwi == key.nhwc;
  Tensor<T> out = direct ? dw
                         : Tensor<T>::empty(dw.shape(), dw.device(),
                                            key.nhwc ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous);
  const scale_t<T> one = 1, beta = accumulate && direct ? 1 : 0;
  RESNET_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
      detail::cudnn_handle(dev), &one, plan.x, x.data(), plan.y, dy.data(), plan.conv[kBackwardFilter],
      static_cast<cudnnConvolutionBwdFilterAlgo_t>(a.algo), ws, a.workspace, &beta, plan.w, out.data()));
  const int64_t O = dw.dim(0), C = dw.dim(1), K = dw.dim(2) * dw.dim(3);
  if (!direct && key.nhwc)
    kernels::batched_transpose(out.data(), dw.data(), O, K, C, accumulate, launch_env(dev));  // OHWI -> OIHW
  else if (!direct)
    kernels::batched_transpose(out.data(), dw.data(), O, C, K, accumulate, launch_env(dev));  // OIHW -> OHWI
}

template <typename T>
void conv2d_backward_bias(const Tensor<T>& dy, Tensor<T>& db, bool accumulate) {
  const char* name = "conv2d_backward_bias";
  contract::conv2d_bias_grad("conv2d_backward_bias", dy, db);
  const int dev = cuda_device(name, dy, "output gradient");
  OpScope op(name, dev);
  check_cuda_dense(name, dy, dev, "output gradient");
  check_cuda_tensor(name, db, dev, "bias gradient");
  check_index_range(name, dy);
  const auto env = launch_env(dev);
  // Channels-last: N * H * W rows of C values, i.e. the per-channel sum with H * W = 1 (as linear's bias).
  const bool nhwc = is_nhwc(dy);
  const int64_t N = nhwc ? dy.dim(0) * dy.dim(2) * dy.dim(3) : dy.dim(0), C = dy.dim(1),
                HW = nhwc ? 1 : dy.dim(2) * dy.dim(3);
  void* ws = detail::workspace(dev, kernels::channel_sum_workspace_bytes<T>(N, C, HW, env.sm_count));
  kernels::channel_sum(dy.data(), N, C, HW, db.data(), accumulate, ws, env, half_packs_enabled());
}

// ---------------------------------------------------------------- linear through cuBLAS

namespace {

// Row-major C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C, as cpu::gemm: cuBLAS is column-major, and a
// row-major matrix is its transpose in column-major, so compute C^T = op(B)^T op(A)^T.
template <typename T>
void gemm(int dev, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
          const T* b, int64_t ldb, bool accumulate, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  for (int64_t v : {m, n, k, lda, ldb, ldc})
    RESNET_CHECK(v < (int64_t(1) << 31), "linear: dimension ", v, " too large for cuBLAS");
  cublasHandle_t h = detail::cublas_handle(dev);
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                          op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  auto i = [](int64_t v) { return static_cast<int>(v); };
  const cudaDataType_t dt = DataType<T>::cuda;
  if (std::is_same<T, double>::value) {
    const double one = 1, beta = accumulate ? 1 : 0;
    RESNET_CUBLAS_CHECK(cublasGemmEx(h, op_b, op_a, i(n), i(m), i(k), &one, b, dt, i(ldb), a, dt, i(lda),
                                     &beta, c, dt, i(ldc), CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT));
  } else {
    const float one = 1, beta = accumulate ? 1 : 0;
    const cublasComputeType_t compute =
        std::is_same<T, float>::value && tf32_enabled() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    RESNET_CUBLAS_CHECK(cublasGemmEx(h, op_b, op_a, i(n), i(m), i(k), &one, b, dt, i(ldb), a, dt, i(lda),
                                     &beta, c, dt, i(ldc), compute, CUBLAS_GEMM_DEFAULT));
  }
}

}  // namespace

template <typename T>
void linear_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* bias, Tensor<T>& y) {
  const char* name = "linear";
  contract::linear("linear", x, w, y, bias);
  const int dev = cuda_device(name, x, "input");
  OpScope op(name, dev);
  check_cuda_tensor(name, x, dev, "input");
  check_cuda_tensor(name, w, dev, "weight");
  check_cuda_tensor(name, y, dev, "output");
  const int64_t N = x.dim(0), I = x.dim(1), O = w.dim(0);
  gemm<T>(dev, false, true, N, O, I, x.data(), I, w.data(), I, false, y.data(), O);
  if (bias) {
    check_cuda_tensor(name, *bias, dev, "bias");
    check_index_range(name, y);
    kernels::channel_bias_add(y.data(), bias->data(), y.numel(), O, 1, launch_env(dev));
  }
}

template <typename T>
void linear_backward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& dy, Tensor<T>* dx,
                     bool dx_accumulate, Tensor<T>* dw, Tensor<T>* db, bool param_accumulate) {
  const char* name = "linear_backward";
  contract::linear_backward("linear_backward", x, w, dy, dx, dw, db);
  const int dev = cuda_device(name, dy, "output gradient");
  OpScope op(name, dev);
  check_cuda_tensor(name, x, dev, "input");
  check_cuda_tensor(name, w, dev, "weight");
  check_cuda_tensor(name, dy, dev, "output gradient");
  const int64_t N = x.dim(0), I = x.dim(1), O = w.dim(0);
  if (dx) {
    check_cuda_tensor(name, *dx, dev, "input gradient");
    gemm<T>(dev, false, false, N, I, O, dy.data(), O, w.data(), I, dx_accumulate, dx->data(), I);
  }
  if (dw) {
    check_cuda_tensor(name, *dw, dev, "weight gradient");
    gemm<T>(dev, true, false, O, I, N, dy.data(), O, x.data(), I, param_accumulate, dw->data(), I);
  }
  if (db) {
    check_cuda_tensor(name, *db, dev, "bias gradient");
    const auto env = launch_env(dev);
    void* ws = detail::workspace(dev, kernels::channel_sum_workspace_bytes<T>(N, O, 1, env.sm_count));
    kernels::channel_sum(dy.data(), N, O, 1, db->data(), param_accumulate, ws, env);
  }
}

#define RESNET_CUDA_CONV_LINEAR(T)                                                                           \
  template void conv2d_forward<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>*, Tensor<T>&,          \
                                  const ConvParams&);                                                        \
  template void conv2d_backward_data<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&, const ConvParams&,   \
                                        bool);                                                               \
  template void conv2d_backward_weight<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&, const ConvParams&, \
                                          bool);                                                             \
  template void conv2d_backward_bias<T>(const Tensor<T>&, Tensor<T>&, bool);                                 \
  template void linear_forward<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>*, Tensor<T>&);         \
  template void linear_backward<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, Tensor<T>*, bool,   \
                                   Tensor<T>*, Tensor<T>*, bool);

RESNET_CUDA_CONV_LINEAR(float)
RESNET_CUDA_CONV_LINEAR(double)
RESNET_CUDA_CONV_LINEAR(half_t)
RESNET_CUDA_CONV_LINEAR(bf16_t)

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
