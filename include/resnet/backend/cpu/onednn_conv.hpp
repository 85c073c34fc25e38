// float32 and bfloat16 convolutions through oneDNN (Debian libdnnl-dev), when the build found it
// (RESNET_HAVE_DNNL).
//
// oneDNN is to the CPU what cuDNN is to the GPU: its JIT AVX-512/AVX2 convolution kernels run near the
// machine's peak, and it is what PyTorch's CPU convolutions use. For NCHW tensors its fast kernels want
// blocked layouts (nChw16c, OIhw16i16o), so each call reorders our tensors into the layout the primitive
// chose and the result back, as PyTorch does; the reorders cost a few percent of a convolution.
// Channels-last tensors are handed over as `nhwc` memory, which the JIT kernels read and write directly
// (no activation reorders; only the weights are reordered). A primitive that would fall back to oneDNN's
// slow reference kernels for nhwc is rebuilt with the blocked layout instead.
// bfloat16 needs avx512_core (or AMX) in oneDNN 2.x: conv.hpp asks bf16_native() before using it.
//
// Primitives are created once per shape and cached (creation is far slower than a small convolution).
// Temporaries (blocked copies, scratchpad) are carved from one per-thread workspace that only grows, so the
// steady state allocates nothing and they cost the largest call's bytes, not the sum over shapes. Gradient
// outputs honour the accumulate flag through a reorder with a sum post-op (dst = reorder(src) + dst).
#pragma once

#if defined(RESNET_HAVE_DNNL)

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>

#include <dnnl.hpp>

#include "resnet/backend/params.hpp"
#include "resnet/core/config.hpp"
#include "resnet/core/parallel.hpp"
#include "resnet/core/storage.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {
namespace onednn {

using dnnl::memory;
using tag = memory::format_tag;

// Everything that selects a primitive: the four dims of x, those of w, stride, padding, bias, whether the
// activations are channels-last, and the data type.
using ConvKey = std::array<int64_t, 14>;

struct Engine {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  static Engine& get() {
    static Engine* e = new Engine();  // never destroyed: primitives may outlive static destruction order
    return *e;
  }
};

// One growing buffer per thread that every call carves its temporaries from (blocked copies, scratchpad).
// Temporaries live only during a call, so the memory they cost is the largest call's, not the sum of every
// distinct size a caching allocator would keep.
class Workspace {
 public:
  static Workspace& local() {
    thread_local Workspace w;
    return w;
  }
  ~Workspace() { std::free(base_); }
  // Starts a call needing `total` bytes (the sum of round_up(size) of its parts).
  void begin(size_t total) {
    if (total > capacity_) {
      std::free(base_);
      capacity_ = round_up(total);
      base_ = static_cast<char*>(std::aligned_alloc(kAlign, capacity_));
      RESNET_CHECK(base_ != nullptr, "conv (oneDNN): out of memory for a ", capacity_, "-byte workspace");
    }
    used_ = 0;
  }
  void* take(size_t nbytes) {
    if (nbytes == 0) return nullptr;
    void* p = base_ + used_;
    used_ += round_up(nbytes);
    return p;
  }
  static size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

 private:
  static constexpr size_t kAlign = 4096;
  char* base_ = nullptr;
  size_t capacity_ = 0, used_ = 0;
};

// An operand in the user's plain layout and the layout the primitive wants, with the reorders between them.
struct Operand {
  memory::desc user, want;
  bool same = true;
  dnnl::reorder to_want, to_user, to_user_add;  // to_user_add: dst = reorder(src) + dst

  void init(const memory::desc& u, const memory::desc& w, bool need_in, bool need_out) {
    auto& e = Engine::get();
    user = u;
    want = w;
    same = (u == w);
    if (same) return;
    if (need_in) to_want = dnnl::reorder(dnnl::reorder::primitive_desc(e.eng, u, e.eng, w));
    if (need_out) {
      to_user = dnnl::reorder(dnnl::reorder::primitive_desc(e.eng, w, e.eng, u));
      dnnl::primitive_attr a;
      dnnl::post_ops po;
      po.append_sum(1.f);
      a.set_post_ops(po);
      to_user_add = dnnl::reorder(dnnl::reorder::primitive_desc(e.eng, w, e.eng, u, a));
    }
  }
};

using dt = memory::data_type;
template <typename S>
constexpr dt dtype_of() {
  return std::is_same<S, float>::value ? dt::f32 : dt::bf16;
}
inline memory::desc any_desc(const memory::dims& d, dt t) { return memory::desc(d, t, tag::any); }
inline memory::desc plain_desc(const memory::dims& d, tag t, dt type) { return memory::desc(d, type, t); }
// Whether a primitive is oneDNN's reference (scalar) implementation.
template <typename PD>
bool is_reference(const PD& pd) {
  return std::string(pd.impl_info_str()).rfind("ref", 0) == 0;
}

struct ConvPrims {
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_forward fwd;
  Operand src, wei, dst;
  memory::desc bias;
  // Backward data and weights are created on first use (inference never needs them).
  bool bwd_data_ready = false, bwd_weights_ready = false;
  dnnl::convolution_backward_data bwd_data;
  Operand bd_diff_dst, bd_wei, bd_diff_src;
  memory::desc bd_scratch;
  dnnl::convolution_backward_weights bwd_weights;
  Operand bw_src, bw_diff_dst, bw_diff_wei;
  memory::desc bw_scratch, fwd_scratch;
  memory::dims strides, pad_l, pad_r;
  bool nhwc = false;  // the user's activations are channels-last
  dt type = dt::f32;
  // The activation descriptor a primitive is asked for: the user's nhwc memory itself, or `any` (blocked).
  memory::desc act(const memory::dims& d, bool direct) const {
    return direct ? plain_desc(d, tag::nhwc, type) : any_desc(d, type);
  }
  tag user_tag() const { return nhwc ? tag::nhwc : tag::nchw; }
};

inline dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

class ConvCache {
 public:
  static ConvCache& get() {
    static ConvCache* c = new ConvCache();
    return *c;
  }
  // The primitives for one shape; created on first use. Entries are never removed, so the reference stays
  // valid after the lock is released.
  ConvPrims& lookup(const Shape& xs, const Shape& ws, const ConvParams& p, bool bias, bool nhwc, dt type) {
    ConvKey k{
        xs[0],      xs[1],      xs[2],   xs[3],   ws[0],        ws[2],        ws[3],
        p.stride_h, p.stride_w, p.pad_h, p.pad_w, bias ? 1 : 0, nhwc ? 1 : 0, static_cast<int64_t>(type)};
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(k);
    if (it != map_.end()) return *it->second;
    auto prims = std::make_unique<ConvPrims>();
    prims->nhwc = nhwc;
    prims->type = type;
    build_forward(*prims, xs, ws, p, bias);
    return *map_.emplace(k, std::move(prims)).first->second;
  }
  std::mutex& mutex() { return mu_; }

 private:
  static void build_forward(ConvPrims& c, const Shape& xs, const Shape& ws, const ConvParams& p, bool bias) {
    auto& e = Engine::get();
    memory::dims x{xs[0], xs[1], xs[2], xs[3]}, w{ws[0], ws[1], ws[2], ws[3]};
    memory::dims y{xs[0], ws[0], p.out_h(xs[2], ws[2]), p.out_w(xs[3], ws[3])};
    c.strides = {p.stride_h, p.stride_w};
    c.pad_l = {p.pad_h, p.pad_w};
    // Right padding that gives exactly our output size (floor division may leave some input unread).
    c.pad_r = {(y[2] - 1) * p.stride_h + ws[2] - xs[2] - p.pad_h,
               (y[3] - 1) * p.stride_w + ws[3] - xs[3] - p.pad_w};
    c.bias = bias ? plain_desc({ws[0]}, tag::x, c.type) : memory::desc();
    auto make = [&](bool direct) {
      dnnl::convolution_forward::desc d =
          bias ? dnnl::convolution_forward::desc(
                     dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, c.act(x, direct),
                     any_desc(w, c.type), c.bias, c.act(y, direct), c.strides, c.pad_l, c.pad_r)
               : dnnl::convolution_forward::desc(
                     dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, c.act(x, direct),
                     any_desc(w, c.type), c.act(y, direct), c.strides, c.pad_l, c.pad_r);
      return dnnl::convolution_forward::primitive_desc(d, user_scratchpad(), e.eng);
    };
    c.fwd_pd = make(c.nhwc);
    if (c.nhwc && is_reference(c.fwd_pd)) c.fwd_pd = make(false);
    c.fwd = dnnl::convolution_forward(c.fwd_pd);
    c.fwd_scratch = c.fwd_pd.scratchpad_desc();
    c.src.init(plain_desc(x, c.user_tag(), c.type), c.fwd_pd.src_desc(), true, false);
    c.wei.init(plain_desc(w, tag::oihw, c.type), c.fwd_pd.weights_desc(), true, false);
    c.dst.init(plain_desc(y, c.user_tag(), c.type), c.fwd_pd.dst_desc(), false, true);
  }

 public:
  static void build_backward_data(ConvPrims& c) {
    auto& e = Engine::get();
    memory::dims x = c.src.user.dims(), w = c.wei.user.dims(), y = c.dst.user.dims();
    auto make = [&](bool direct) {
      dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, c.act(x, direct),
                                              any_desc(w, c.type), c.act(y, direct), c.strides, c.pad_l,
                                              c.pad_r);
      return dnnl::convolution_backward_data::primitive_desc(d, user_scratchpad(), e.eng, c.fwd_pd);
    };
    dnnl::convolution_backward_data::primitive_desc pd = make(c.nhwc);
    if (c.nhwc && is_reference(pd)) pd = make(false);
    c.bwd_data = dnnl::convolution_backward_data(pd);
    c.bd_scratch = pd.scratchpad_desc();
    c.bd_diff_dst.init(c.dst.user, pd.diff_dst_desc(), true, false);
    c.bd_wei.init(c.wei.user, pd.weights_desc(), true, false);
    c.bd_diff_src.init(c.src.user, pd.diff_src_desc(), false, true);
    c.bwd_data_ready = true;
  }
  static void build_backward_weights(ConvPrims& c) {
    auto& e = Engine::get();
    memory::dims x = c.src.user.dims(), w = c.wei.user.dims(), y = c.dst.user.dims();
    auto make = [&](bool direct) {
      dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, c.act(x, direct),
                                                 any_desc(w, c.type), c.act(y, direct), c.strides, c.pad_l,
                                                 c.pad_r);
      return dnnl::convolution_backward_weights::primitive_desc(d, user_scratchpad(), e.eng, c.fwd_pd);
    };
    dnnl::convolution_backward_weights::primitive_desc pd = make(c.nhwc);
    if (c.nhwc && is_reference(pd)) pd = make(false);
    c.bwd_weights = dnnl::convolution_backward_weights(pd);
    c.bw_scratch = pd.scratchpad_desc();
    c.bw_src.init(c.src.user, pd.src_desc(), true, false);
    c.bw_diff_dst.init(c.dst.user, pd.diff_dst_desc(), true, false);
    c.bw_diff_wei.init(c.wei.user, pd.diff_weights_desc(), false, true);
    c.bwd_weights_ready = true;
  }

 private:
  std::mutex mu_;
  std::map<ConvKey, std::unique_ptr<ConvPrims>> map_;
};

// Bytes of workspace an operand needs: none when the primitive reads or writes the user's memory directly.
inline size_t input_bytes(const Operand& o) { return o.same ? 0 : Workspace::round_up(o.want.get_size()); }
inline size_t output_bytes(const Operand& o, bool accumulate) {
  return o.same && !accumulate ? 0 : Workspace::round_up(o.want.get_size());
}
inline size_t scratch_bytes(const memory::desc& d) { return Workspace::round_up(d.get_size()); }

// An input operand as the primitive wants it: the user's memory itself, or a reordered copy in `temp`.
inline memory input_memory(const Operand& o, const void* data, void* temp) {
  auto& e = Engine::get();
  memory user(o.user, e.eng, const_cast<void*>(data));
  if (o.same) return user;
  memory m(o.want, e.eng, temp);
  o.to_want.execute(e.strm, user, m);
  return m;
}

// An output operand: written in place when the layouts agree and nothing is accumulated, else into `temp`,
// which `finish_output` reorders (and adds, when accumulating) into the user's memory.
inline memory output_memory(const Operand& o, void* data, bool accumulate, void* temp) {
  auto& e = Engine::get();
  if (o.same && !accumulate) return memory(o.user, e.eng, data);
  return memory(o.want, e.eng, temp);
}
template <typename S>
void finish_output(const Operand& o, memory& m, void* data, bool accumulate) {
  auto& e = Engine::get();
  if (o.same && !accumulate) return;
  memory user(o.user, e.eng, data);
  if (o.same) {
    e.strm.wait();
    // Same layout but accumulating: a plain add (no reorder primitive was made for this operand).
    const S* s = static_cast<const S*>(m.get_data_handle());
    S* d = static_cast<S*>(data);
    const int64_t n = static_cast<int64_t>(o.user.get_size() / sizeof(S));
    parallel_for(n, 1 << 14, [&](int64_t b, int64_t en) {
#pragma omp simd
      for (int64_t i = b; i < en; ++i)
        d[i] = static_cast<S>(static_cast<float>(d[i]) + static_cast<float>(s[i]));
    });
    return;
  }
  (accumulate ? o.to_user_add : o.to_user).execute(e.strm, m, user);
}

// Convolutions run over the batch in chunks whose blocked copies fit in about chunk_bytes(): the copies then
// stay in cache between the reorder and the convolution, and the workspace stays small (the stem at 224x224
// would otherwise need a 51 MB blocked copy of its output). Late stages, with small images, run whole.
// The target size is the setting cpu_conv_chunk_kb (RESNET_CPU_CONV_CHUNK_KB, resnet::config(); tests shrink
// it to exercise chunking on small shapes): on a Zen 4, 12 MB measured up to 1.16x faster than 3 MB
// (benchmarks/RESULTS.md), not yet confirmed enough to become the default.
inline size_t chunk_bytes() { return static_cast<size_t>(config().cpu_conv_chunk_kb()) << 10; }
inline int64_t chunk_images(int64_t N, int64_t per_image_floats) {
  // Counted in float32 bytes whatever the type (bfloat16 chunks are the float ones).
  const int64_t per_image = std::max<int64_t>(1, per_image_floats * static_cast<int64_t>(sizeof(float)));
  const int64_t most =
      std::max<int64_t>(1, std::min<int64_t>(N, static_cast<int64_t>(chunk_bytes()) / per_image));
  // Equal chunks (16 = 8 + 8, not 12 + 4): oneDNN's backward kernels are slow per image on small batches.
  const int64_t chunks = (N + most - 1) / most;
  return (N + chunks - 1) / chunks;
}

// The primitives for a chunk of `n` images of x's shape (x's memory format and type).
template <typename S>
ConvPrims& chunk_prims(const Tensor<S>& x, int64_t n, const Shape& ws, const ConvParams& p, bool bias) {
  const Shape& xs = x.shape();
  return ConvCache::get().lookup(Shape{n, xs[1], xs[2], xs[3]}, ws, p, bias,
                                 x.suggest_memory_format() == MemoryFormat::ChannelsLast, dtype_of<S>());
}

// S: float or bf16_t. Activations in either memory format (one for x and y); w row-major OIHW.
template <typename S>
void conv2d_forward(const Tensor<S>& x, const Tensor<S>& w, const Tensor<S>* bias, Tensor<S>& y,
                    const ConvParams& p) {
  const int64_t N = x.dim(0), in_img = x.numel() / N, out_img = y.numel() / N;
  const int64_t nb = chunk_images(N, in_img + out_img);
  auto& e = Engine::get();
  auto& ws = Workspace::local();
  ConvPrims& c0 = chunk_prims(x, nb, w.shape(), p, bias != nullptr);
  size_t tail_bytes = 0;
  if (N % nb) {
    ConvPrims& t = chunk_prims(x, N % nb, w.shape(), p, bias != nullptr);
    tail_bytes = input_bytes(t.wei) + scratch_bytes(t.fwd_scratch);
  }
  ws.begin(input_bytes(c0.wei) + input_bytes(c0.src) + output_bytes(c0.dst, false) +
           scratch_bytes(c0.fwd_scratch) + tail_bytes);
  void* t_wei = ws.take(input_bytes(c0.wei));
  void* t_src = ws.take(input_bytes(c0.src));
  void* t_dst = ws.take(output_bytes(c0.dst, false));
  void* t_scr = ws.take(scratch_bytes(c0.fwd_scratch));
  void* t_wei2 = nullptr;
  void* t_scr2 = nullptr;
  memory mw = input_memory(c0.wei, w.data(), t_wei);
  for (int64_t n0 = 0; n0 < N; n0 += nb) {
    const int64_t n = std::min(nb, N - n0);
    ConvPrims& c = n == nb ? c0 : chunk_prims(x, n, w.shape(), p, bias != nullptr);
    void* scr = t_scr;
    memory mwc = mw;
    if (&c != &c0) {
      // The short last chunk has its own primitive, whose weight layout and scratchpad may differ.
      if (!t_scr2) t_scr2 = ws.take(scratch_bytes(c.fwd_scratch));
      scr = t_scr2;
      if (!(c.wei.want == c0.wei.want)) {
        if (!t_wei2) t_wei2 = ws.take(input_bytes(c.wei));
        mwc = input_memory(c.wei, w.data(), t_wei2);
      }
    }
    S* yn = y.data() + n0 * out_img;
    memory ms = input_memory(c.src, x.data() + n0 * in_img, t_src);
    memory md = output_memory(c.dst, yn, false, t_dst);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mwc}, {DNNL_ARG_DST, md}};
    if (c.fwd_scratch.get_size()) args.emplace(DNNL_ARG_SCRATCHPAD, memory(c.fwd_scratch, e.eng, scr));
    if (bias) args.emplace(DNNL_ARG_BIAS, memory(c.bias, e.eng, bias->data()));
    c.fwd.execute(e.strm, args);
    finish_output<S>(c.dst, md, yn, false);
  }
  e.strm.wait();
}

template <typename S>
void conv2d_backward_data(const Tensor<S>& dy, const Tensor<S>& w, Tensor<S>& dx, const ConvParams& p,
                          bool accumulate) {
  const int64_t N = dx.dim(0), in_img = dx.numel() / N, out_img = dy.numel() / N;
  const int64_t nb = chunk_images(N, in_img + out_img);
  auto& cache = ConvCache::get();
  auto& e = Engine::get();
  auto& ws = Workspace::local();
  auto prims = [&](int64_t n) -> ConvPrims& {
    ConvPrims& c = chunk_prims(dx, n, w.shape(), p, false);
    std::lock_guard<std::mutex> lock(cache.mutex());
    if (!c.bwd_data_ready) ConvCache::build_backward_data(c);
    return c;
  };
  ConvPrims& c0 = prims(nb);
  size_t tail_bytes = 0;
  if (N % nb) tail_bytes = input_bytes(prims(N % nb).bd_wei) + scratch_bytes(prims(N % nb).bd_scratch);
  ws.begin(input_bytes(c0.bd_wei) + input_bytes(c0.bd_diff_dst) + output_bytes(c0.bd_diff_src, accumulate) +
           scratch_bytes(c0.bd_scratch) + tail_bytes);
  void* t_wei = ws.take(input_bytes(c0.bd_wei));
  void* t_dy = ws.take(input_bytes(c0.bd_diff_dst));
  void* t_dx = ws.take(output_bytes(c0.bd_diff_src, accumulate));
  void* t_scr = ws.take(scratch_bytes(c0.bd_scratch));
  memory mw = input_memory(c0.bd_wei, w.data(), t_wei);
  for (int64_t n0 = 0; n0 < N; n0 += nb) {
    const int64_t n = std::min(nb, N - n0);
    ConvPrims& c = n == nb ? c0 : prims(n);
    void* scr = t_scr;
    memory mwc = mw;
    if (&c != &c0) {
      scr = ws.take(scratch_bytes(c.bd_scratch));
      if (!(c.bd_wei.want == c0.bd_wei.want))
        mwc = input_memory(c.bd_wei, w.data(), ws.take(input_bytes(c.bd_wei)));
    }
    S* dxn = dx.data() + n0 * in_img;
    memory mdy = input_memory(c.bd_diff_dst, dy.data() + n0 * out_img, t_dy);
    memory mdx = output_memory(c.bd_diff_src, dxn, accumulate, t_dx);
    std::unordered_map<int, memory> args{
        {DNNL_ARG_DIFF_DST, mdy}, {DNNL_ARG_WEIGHTS, mwc}, {DNNL_ARG_DIFF_SRC, mdx}};
    if (c.bd_scratch.get_size()) args.emplace(DNNL_ARG_SCRATCHPAD, memory(c.bd_scratch, e.eng, scr));
    c.bwd_data.execute(e.strm, args);
    finish_output<S>(c.bd_diff_src, mdx, dxn, accumulate);
  }
  e.strm.wait();
}

// Chunks of the batch each add their share into the weight gradient (the first one overwrites unless
// accumulating), so chunking never changes what is computed, only the order of the sum.
template <typename S>
void conv2d_backward_weight(const Tensor<S>& x, const Tensor<S>& dy, Tensor<S>& dw, const ConvParams& p,
                            bool accumulate) {
  const int64_t N = x.dim(0), in_img = x.numel() / N, out_img = dy.numel() / N;
  const int64_t nb = chunk_images(N, in_img + out_img);
  auto& cache = ConvCache::get();
  auto& e = Engine::get();
  auto& ws = Workspace::local();
  auto prims = [&](int64_t n) -> ConvPrims& {
    ConvPrims& c = chunk_prims(x, n, dw.shape(), p, false);
    std::lock_guard<std::mutex> lock(cache.mutex());
    if (!c.bwd_weights_ready) ConvCache::build_backward_weights(c);
    return c;
  };
  ConvPrims& c0 = prims(nb);
  size_t tail_bytes = 0;
  if (N % nb)
    tail_bytes = output_bytes(prims(N % nb).bw_diff_wei, true) + scratch_bytes(prims(N % nb).bw_scratch);
  ws.begin(input_bytes(c0.bw_src) + input_bytes(c0.bw_diff_dst) + output_bytes(c0.bw_diff_wei, true) +
           scratch_bytes(c0.bw_scratch) + tail_bytes);
  void* t_x = ws.take(input_bytes(c0.bw_src));
  void* t_dy = ws.take(input_bytes(c0.bw_diff_dst));
  void* t_dw = ws.take(output_bytes(c0.bw_diff_wei, true));
  void* t_scr = ws.take(scratch_bytes(c0.bw_scratch));
  for (int64_t n0 = 0; n0 < N; n0 += nb) {
    const int64_t n = std::min(nb, N - n0);
    ConvPrims& c = n == nb ? c0 : prims(n);
    void* scr = &c == &c0 ? t_scr : ws.take(scratch_bytes(c.bw_scratch));
    void* tdw = &c == &c0 ? t_dw : ws.take(output_bytes(c.bw_diff_wei, true));
    const bool acc = accumulate || n0 > 0;
    memory mx = input_memory(c.bw_src, x.data() + n0 * in_img, t_x);
    memory mdy = input_memory(c.bw_diff_dst, dy.data() + n0 * out_img, t_dy);
    memory mdw = output_memory(c.bw_diff_wei, dw.data(), acc, tdw);
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, mx}, {DNNL_ARG_DIFF_DST, mdy}, {DNNL_ARG_DIFF_WEIGHTS, mdw}};
    if (c.bw_scratch.get_size()) args.emplace(DNNL_ARG_SCRATCHPAD, memory(c.bw_scratch, e.eng, scr));
    c.bwd_weights.execute(e.strm, args);
    finish_output<S>(c.bw_diff_wei, mdw, dw.data(), acc);
  }
  e.strm.wait();
}

// Whether oneDNN dispatches to AMX on this CPU (its effective ISA includes avx512_core_amx's bits: AMX tiles
// for bfloat16 matrix products, where its bfloat16 convolutions beat float32 ones).
inline bool has_amx() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto amx = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_amx);
  return (isa & amx) == amx;
}

// Whether oneDNN has bfloat16 convolutions other than its scalar reference on this CPU (forward and both
// backwards), probed once on a small shape: oneDNN 2.x refuses to create them without avx512_core.
inline bool bf16_native() {
  static const bool ok = [] {
    try {
      auto& e = Engine::get();
      const memory::dims x{2, 16, 8, 8}, w{16, 16, 3, 3}, one{1, 1};
      auto a = [](const memory::dims& d) { return any_desc(d, dt::bf16); };
      const auto alg = dnnl::algorithm::convolution_direct;
      dnnl::convolution_forward::primitive_desc f(
          dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, a(x), a(w), a(x), one, one,
                                          one),
          e.eng);
      dnnl::convolution_backward_data::primitive_desc bd(
          dnnl::convolution_backward_data::desc(alg, a(x), a(w), a(x), one, one, one), e.eng, f);
      dnnl::convolution_backward_weights::primitive_desc bw(
          dnnl::convolution_backward_weights::desc(alg, a(x), a(w), a(x), one, one, one), e.eng, f);
      return !is_reference(f) && !is_reference(bd) && !is_reference(bw);
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return ok;
}

}  // namespace onednn
}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet

#endif  // RESNET_HAVE_DNNL
