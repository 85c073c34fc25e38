// The CUDA backend on a GPU beyond single ops (those are the op registry's gpu mode, tests/ops): the
// runtime (versions, allocator, streams, out of memory, wrong devices), bit-exact casts, TF32 and cuDNN's
// algorithm searches, BatchNorm's kernel paths, labels reported at synchronisation, and ResNet-18/50
// forward and backward against the CPU. GPU outputs are pre-filled with a sentinel so an element a
// kernel never writes fails the comparison.
//
// The GPU cases are hidden ([.gpu]): `test_cuda --gpu` (ctest: test_cuda_gpu) runs them and exits 77,
// skipped, without a device; a plain `test_cuda` runs the cases that need none. The binary is built and run
// in CI either way, so it compiles against the current API and cannot rot.
#include <cstdio>
#include <cstring>

#include "net_runs.hpp"
#include "test_util.hpp"

using namespace resnet;
using testing::relative_error;

namespace {

// The GPU cases are hidden ([.gpu]) and run by `test_cuda --gpu`, which exits 77 (skipped) without a
// device (tests/gpu_main.cpp); run by name without one, they fail rather than pass.
#define REQUIRE_GPU() REQUIRE(cuda::device_count() > 0)

const Device kGpu = Device::cuda(0);
constexpr double kSentinel = 7777.0;

template <typename T>
Tensor<T> rnd(const Shape& s, uint64_t seed, double sd = 1.0, double mean = 0.0) {
  Generator g(seed);
  return Tensor<T>::randn(s, g, mean, sd);
}
template <typename T>
Tensor<double> to_double(const Tensor<T>& t) {
  std::vector<T> v = t.to_vector();
  std::vector<double> d(v.size());
  for (size_t i = 0; i < v.size(); ++i) d[i] = static_cast<double>(static_cast<float>(v[i]));
  if (std::is_same<T, double>::value) std::memcpy(d.data(), v.data(), d.size() * sizeof(double));
  return Tensor<double>::from_vector(d, t.shape());
}
template <typename T>
Tensor<T> gpu(const Tensor<T>& t) {
  return t.to(kGpu);
}
template <typename T>
Tensor<T> gpu_sentinel(const Shape& s) {
  Tensor<T> t = Tensor<T>::empty(s, kGpu);
  cuda::fill(t, kSentinel);
  return t;
}
template <typename T>
Tensor<double> cpu_sentinel(const Shape& s) {
  return Tensor<double>::full(s, -kSentinel);
}
template <typename T>
double err(const Tensor<T>& got, const Tensor<double>& ref) {
  return relative_error(to_double(got).to_vector(), ref.to_vector());
}
template <typename T>
double tol() {
  if (std::is_same<T, double>::value) return 1e-10;
  if (std::is_same<T, float>::value) return cuda::tf32_enabled() ? 3e-3 : 1e-5;
  if (std::is_same<T, half_t>::value) return 4e-3;
  return 2e-2;
}
template <typename T>
const char* name() {
  return dtype_name(dtype_of<T>::value);
}

struct Tf32Off {
  bool saved = cuda::tf32_enabled();
  Tf32Off() { cuda::set_tf32(false); }
  ~Tf32Off() { cuda::set_tf32(saved); }
};

}  // namespace

// ---------------------------------------------------------------- runtime (runs with or without a GPU)

TEST_CASE("cuda: runtime report names the compiled and loaded library versions", "[cuda]") {
  const std::string info = cuda::runtime_info();
  INFO(info);
  std::printf("%s", info.c_str());
  CHECK(info.find("cuDNN loaded") != std::string::npos);
  CHECK(info.find("compiled against") != std::string::npos);
  CHECK(info.find("cuBLAS loaded") != std::string::npos);
  if (cuda::device_count() == 0) CHECK(!cuda::unavailable_reason().empty());
}

TEST_CASE("cuda: without a device, allocating on cuda is a clear error", "[cuda]") {
  if (cuda::device_count() > 0) {
    WARN("a device is present: checking an out-of-range device index instead");
    testing::require_error_mentions([] { Tensor<float>::empty({4}, Device::cuda(99)); },
                                    {"cuda:99", "does not exist"});
    return;
  }
  testing::require_error_mentions([] { Tensor<float>::empty({4}, Device::cuda(0)); }, {"no CUDA device"});
}

TEST_CASE("cuda: float16 tensors on the CPU are refused with a message (they compute on the GPU)", "[cuda]") {
  auto h = Tensor<half_t>::randn({2, 3});
  testing::require_error_mentions([&] { relu(h); }, {"relu_forward", "CUDA devices only"});
  // bfloat16 computes on the CPU too: float arithmetic, rounded once.
  auto b = Tensor<bf16_t>::randn({2, 3});
  auto bb = add(b, b).to_vector();
  for (size_t i = 0; i < 6; ++i) CHECK(static_cast<float>(bb[i]) == 2 * static_cast<float>(b.to_vector()[i]));
  // Conversions are the exception: data can be cast on the host before it goes to the GPU.
  auto f = Tensor<float>::randn({2, 3});
  auto fh = cast<half_t>(f);
  auto back = cast<float>(fh);
  for (size_t i = 0; i < 6; ++i)
    CHECK(std::abs(back.to_vector()[i] - f.to_vector()[i]) <= 1e-3f * (1 + std::abs(f.to_vector()[i])));
  // A float16 network still builds (and would run on a GPU): its parameters are float master weights.
  auto net = models::resnet18<half_t>();
  CHECK(net->named_parameters().front().second.dtype() == DType::F32);
}

// Channels-last on CUDA devices: opt-in. The decision is host logic (ops/elementwise.hpp), so
// it is tested without a device; the GPU case below runs the kernels both ways.
TEST_CASE("cuda: channels-last kernels are off by default; off, ops convert NHWC device tensors", "[cuda]") {
  const bool saved = cuda::channels_last_enabled();
  // Never run on a GPU: never the default.
  if (config().source(SettingId::CudaNhwc) == SettingSource::Default) CHECK_FALSE(saved);
  cuda::set_channels_last(true);
  CHECK(config().cuda_nhwc());  // the backend's setter is the setting's
  config().set_cuda_nhwc(false);
  CHECK_FALSE(cuda::channels_last_enabled());
  const Tensor<float> cl = Tensor<float>::randn({2, 3, 4, 5}).contiguous(MemoryFormat::ChannelsLast);
  REQUIRE(cl.suggest_memory_format() == MemoryFormat::ChannelsLast);
  cuda::set_channels_last(false);
  CHECK_FALSE(detail::takes_channels_last(Device::cuda(0)));
  CHECK(detail::takes_channels_last(Device::cpu()));  // the CPU takes both formats regardless
  // What op_format decides for a channels-last tensor on a device that does not take it: row-major.
  CHECK(detail::op_format_for(cl, detail::takes_channels_last(Device::cuda(0))) == MemoryFormat::Contiguous);
  cuda::set_channels_last(true);
  CHECK(cuda::channels_last_enabled());
  CHECK(detail::takes_channels_last(Device::cuda(0)));
  CHECK(detail::op_format_for(cl, detail::takes_channels_last(Device::cuda(0))) ==
        MemoryFormat::ChannelsLast);
  CHECK(detail::op_format_for(cl.contiguous(), true) == MemoryFormat::Contiguous);
  CHECK(cuda::runtime_info().find("channels-last kernels on") != std::string::npos);
  cuda::set_channels_last(saved);
}

TEST_CASE("cuda: with channels-last on, NHWC device tensors stay NHWC through a fused block",
          "[cuda][.gpu]") {
  const bool saved = cuda::channels_last_enabled();
  Tf32Off tf32;
  Generator g(3);
  auto x = Tensor<double>::randn({2, 8, 6, 6}, g);
  auto w = Tensor<double>::randn({8, 8, 3, 3}, g);
  auto gamma = Tensor<double>::randn({8}, g), beta = Tensor<double>::randn({8}, g);
  auto run = [&](Device dev, MemoryFormat f, MemoryFormat* out_format) {
    Tensor<double> rm = Tensor<double>::zeros({8}, dev), rv = Tensor<double>::ones({8}, dev);
    Tensor<double> xd = x.to(dev).contiguous(f);
    Tensor<double> y = conv2d(xd, w.to(dev), ConvParams{1, 1, 1, 1});
    y = batch_norm(y, xd, gamma.to(dev), beta.to(dev), rm, rv, true, BatchNormParams{1e-5, 0.1},
                   Activation::ReLU);
    y = max_pool2d(y, PoolParams{3, 3, 2, 2, 1, 1, true});
    *out_format = y.suggest_memory_format();
    return global_avg_pool(y).to(Device::cpu()).to_vector();
  };
  MemoryFormat f_cpu, f_off, f_on;
  const auto want = run(Device::cpu(), MemoryFormat::Contiguous, &f_cpu);
  cuda::set_channels_last(false);
  const auto off = run(Device::cuda(0), MemoryFormat::ChannelsLast, &f_off);
  cuda::set_channels_last(true);
  const auto on = run(Device::cuda(0), MemoryFormat::ChannelsLast, &f_on);
  cuda::set_channels_last(saved);
  CHECK(f_off == MemoryFormat::Contiguous);   // converted at entry
  CHECK(f_on == MemoryFormat::ChannelsLast);  // computed in NHWC
  CHECK(relative_error(off, want) < 1e-9);
  CHECK(relative_error(on, want) < 1e-9);
}

TEST_CASE("cuda: memory-format copies reorder on the device, bit for bit, every element size",
          "[cuda][.gpu]") {
  REQUIRE_GPU();
  Generator g(5);
  auto check_dtype = [&](auto tag) {
    using T = decltype(tag);
    const Tensor<float> xf = Tensor<float>::randn({3, 5, 4, 7}, g);
    Tensor<T> x = Tensor<T>::empty(xf.shape());
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<T>(xf.data()[i]);
    const Tensor<T> host_cl = x.contiguous(MemoryFormat::ChannelsLast);  // the CPU's strided copy
    auto bits = [](const Tensor<T>& t) {                                 // raw memory order, as bytes
      const auto* p = reinterpret_cast<const unsigned char*>(t.data());
      return std::vector<unsigned char>(p, p + t.nbytes());
    };
    // NCHW -> NHWC on the device, and back.
    const Tensor<T> dev_cl = x.to(Device::cuda(0)).contiguous(MemoryFormat::ChannelsLast);
    REQUIRE(dev_cl.device().is_cuda());
    CHECK(dev_cl.suggest_memory_format() == MemoryFormat::ChannelsLast);
    Tensor<T> raw = Tensor<T>::empty(x.shape(), Device::cpu(), MemoryFormat::ChannelsLast);
    copy_bytes(raw.raw_data(), Device::cpu(), dev_cl.raw_data(), dev_cl.device(), dev_cl.nbytes());
    CHECK(bits(raw) == bits(host_cl));
    const Tensor<T> back = dev_cl.contiguous().to(Device::cpu());
    CHECK(bits(back) == bits(x));
    // Across devices with a format change: host NHWC -> device NCHW, device NCHW -> host NHWC.
    Tensor<T> dev_nchw = Tensor<T>::empty(x.shape(), Device::cuda(0));
    copy_into(dev_nchw, host_cl);
    CHECK(bits(dev_nchw.to(Device::cpu())) == bits(x));
    Tensor<T> host_out = Tensor<T>::empty(x.shape(), Device::cpu(), MemoryFormat::ChannelsLast);
    copy_into(host_out, dev_nchw);
    CHECK(bits(host_out) == bits(host_cl));
  };
  check_dtype(float());
  check_dtype(double());
  check_dtype(half_t());
  check_dtype(bf16_t());
}

// ---------------------------------------------------------------- memory, copies, streams

TEST_CASE("cuda: copies round-trip every dtype and zero_/fill_ work on the device", "[cuda][.gpu]") {
  REQUIRE_GPU();
  auto f = rnd<float>({3, 5, 7}, 1);
  CHECK(gpu(f).to(Device::cpu()).to_vector() == f.to_vector());
  auto d = rnd<double>({33}, 2);
  CHECK(gpu(d).to_vector() == d.to_vector());
  auto h = rnd<half_t>({17}, 3);
  auto hb = gpu(h).to_vector();
  for (size_t i = 0; i < hb.size(); ++i) CHECK(hb[i].bits == h.to_vector()[i].bits);
  auto i32 = Tensor<int32_t>::from_vector({1, -2, 3}, {3});
  CHECK(gpu(i32).to_vector() == i32.to_vector());
  Tensor<float> z = gpu(f);
  z.zero_();
  for (float v : z.to_vector()) CHECK(v == 0.f);
  z.fill_(2.5f);
  for (float v : z.to_vector()) CHECK(v == 2.5f);
  Tensor<float> c = gpu(f).clone();  // device to device
  CHECK(c.to_vector() == f.to_vector());
}

TEST_CASE("cuda: the caching allocator reuses memory (no cudaMalloc per op after warm-up)", "[cuda][.gpu]") {
  REQUIRE_GPU();
  auto x = gpu(rnd<float>({64, 64, 8, 8}, 4));
  auto step = [&] {
    Tensor<float> y = Tensor<float>::empty(x.shape(), kGpu);
    cuda::relu_forward(x, y);
    Tensor<float> s = Tensor<float>::empty({}, kGpu);
    cuda::sum_all(y, s);
    return s.item();
  };
  step();
  const size_t mallocs = cuda::memory_stats().cuda_mallocs;
  for (int i = 0; i < 20; ++i) step();
  CHECK(cuda::memory_stats().cuda_mallocs == mallocs);
  CHECK(cuda::memory_stats().peak_allocated_bytes >= x.nbytes());
}

// Tagged [oom]: its failing cudaMalloc is on purpose, and the compute-sanitizer runs leave it out.
TEST_CASE("cuda: out of memory names the requested and free bytes", "[cuda][.gpu][oom]") {
  REQUIRE_GPU();
  testing::require_error_mentions([] { Tensor<float>::empty({int64_t(1) << 45}, kGpu); },
                                  {"out of memory", "bytes", "free"});
  auto x = gpu(rnd<float>({8}, 5));  // the device still works afterwards
  CHECK(x.to_vector().size() == 8);
}

TEST_CASE("cuda: ops on a stream of their own give the same results", "[cuda][.gpu]") {
  REQUIRE_GPU();
  auto a = rnd<float>({1000}, 6), b = rnd<float>({1000}, 7);
  cuda::Stream s;
  Tensor<float> y;
  {
    cuda::StreamGuard guard(s);
    auto ga = gpu(a), gb = gpu(b);
    y = Tensor<float>::empty(a.shape(), kGpu);
    cuda::add(ga, gb, y);
    s.synchronize();
  }
  auto ref = Tensor<float>::empty(a.shape());
  cpu::add(a, b, ref);
  CHECK(y.to_vector() == ref.to_vector());
}

TEST_CASE("cuda: ops reject tensors on the wrong device with a message", "[cuda][.gpu]") {
  REQUIRE_GPU();
  auto a = gpu(rnd<float>({4}, 8));
  auto b = rnd<float>({4}, 9);  // on the CPU
  Tensor<float> y = Tensor<float>::empty({4}, kGpu);
  testing::require_error_mentions([&] { cuda::add(a, b, y); }, {"add", "is not on cuda:0"});
}

// ---------------------------------------------------------------- elementwise
// Every op's values against the CPU backend are the op registry's gpu mode (tests/ops, test_ops --gpu).
// What stays here: bit-exact casts and the host answer of all_finite.

template <typename T>
void check_all_finite() {
  auto a = rnd<T>({1001}, 11);
  CHECK(cuda::all_finite(gpu(a)));
  std::vector<T> bad = a.to_vector();
  bad[5] = static_cast<T>(std::numeric_limits<float>::infinity());
  CHECK_FALSE(cuda::all_finite(gpu(Tensor<T>::from_vector(bad, a.shape()))));
  bad[5] = static_cast<T>(std::numeric_limits<float>::quiet_NaN());
  CHECK_FALSE(cuda::all_finite(gpu(Tensor<T>::from_vector(bad, a.shape()))));
}

TEST_CASE("cuda: all_finite finds an infinity and a NaN", "[cuda][.gpu]") {
  REQUIRE_GPU();
  check_all_finite<float>();
  check_all_finite<double>();
  check_all_finite<half_t>();
  check_all_finite<bf16_t>();
}

template <typename S, typename D>
void check_cast() {
  auto x = rnd<S>({1001}, 14, 50.0);
  auto y = gpu_sentinel<D>({1001});
  cuda::cast(gpu(x), y);
  Tensor<D> r = Tensor<D>::empty({1001});
  cpu::cast(x, r);
  auto got = y.to_vector(), want = r.to_vector();
  for (size_t i = 0; i < got.size(); ++i) REQUIRE(std::memcmp(&got[i], &want[i], sizeof(D)) == 0);
}

TEST_CASE("cuda: casts round exactly as the CPU backend", "[cuda][.gpu]") {
  REQUIRE_GPU();
  check_cast<float, half_t>();
  check_cast<float, bf16_t>();
  check_cast<float, double>();
  check_cast<double, float>();
  check_cast<double, double>();
  check_cast<float, float>();
}

// ---------------------------------------------------------------- convolution

struct ConvCase {
  int64_t N, C, H, W, K, k, stride, pad;
  bool bias;
};
const std::vector<ConvCase> kConvCases{{2, 3, 17, 15, 8, 3, 1, 1, true},
                                       {2, 8, 16, 16, 16, 3, 2, 1, false},
                                       {3, 16, 8, 8, 32, 1, 1, 0, false},
                                       {2, 16, 9, 9, 8, 1, 2, 0, true},
                                       {1, 3, 32, 32, 8, 7, 2, 3, false}};

template <typename T>
void check_conv(const ConvCase& c, double tolerance) {
  INFO(name<T>() << " conv x[" << c.N << "," << c.C << "," << c.H << "," << c.W << "] w[" << c.K << ",k"
                 << c.k << "] s" << c.stride << " p" << c.pad << " bias " << c.bias);
  ConvParams p{c.stride, c.stride, c.pad, c.pad};
  const Shape xs{c.N, c.C, c.H, c.W}, ws{c.K, c.C, c.k, c.k};
  const Shape ys{c.N, c.K, p.out_h(c.H, c.k), p.out_w(c.W, c.k)};
  auto x = rnd<T>(xs, 20), w = rnd<T>(ws, 21, 0.2), b = rnd<T>({c.K}, 22), dy = rnd<T>(ys, 23);
  auto xd = to_double(x), wd = to_double(w), bd = to_double(b), dyd = to_double(dy);
  auto gx = gpu(x), gw = gpu(w), gb = gpu(b), gdy = gpu(dy);
  {
    auto y = gpu_sentinel<T>(ys);
    auto r = cpu_sentinel<T>(ys);
    cuda::conv2d_forward(gx, gw, c.bias ? &gb : nullptr, y, p);
    cpu::conv2d_forward(xd, wd, c.bias ? &bd : nullptr, r, p);
    CHECK(err(y, r) < tolerance);
  }
  for (bool acc : {false, true}) {
    INFO("accumulate " << acc);
    auto dx0 = rnd<T>(xs, 24), dw0 = rnd<T>(ws, 25), db0 = rnd<T>({c.K}, 26);
    auto dx = acc ? gpu(dx0) : gpu_sentinel<T>(xs);
    auto dxr = acc ? to_double(dx0) : cpu_sentinel<T>(xs);
    cuda::conv2d_backward_data(gdy, gw, dx, p, acc);
    cpu::conv2d_backward_data(dyd, wd, dxr, p, acc);
    CHECK(err(dx, dxr) < tolerance);
    auto dw = acc ? gpu(dw0) : gpu_sentinel<T>(ws);
    auto dwr = acc ? to_double(dw0) : cpu_sentinel<T>(ws);
    cuda::conv2d_backward_weight(gx, gdy, dw, p, acc);
    cpu::conv2d_backward_weight(xd, dyd, dwr, p, acc);
    CHECK(err(dw, dwr) < tolerance);
    auto db = acc ? gpu(db0) : gpu_sentinel<T>({c.K});
    auto dbr = acc ? to_double(db0) : cpu_sentinel<T>({c.K});
    cuda::conv2d_backward_bias(gdy, db, acc);
    cpu::conv2d_backward_bias(dyd, dbr, acc);
    CHECK(err(db, dbr) < tolerance);
  }
}

TEST_CASE("cuda: convolutions with TF32 stay within TF32 precision", "[cuda][.gpu]") {
  REQUIRE_GPU();
  const bool saved = cuda::tf32_enabled();
  cuda::set_tf32(true);
  for (const auto& c : kConvCases) check_conv<float>(c, 3e-3);
  cuda::set_tf32(saved);
}

TEST_CASE("cuda: both algorithm searches give the same convolution", "[cuda][.gpu]") {
  REQUIRE_GPU();
  Tf32Off off;
  const auto saved = cuda::conv_search();
  cuda::set_conv_search(cuda::ConvSearch::Heuristic);
  check_conv<float>({2, 4, 10, 10, 6, 3, 1, 1, true}, 2e-5);
  cuda::set_conv_search(saved);
}

// ---------------------------------------------------------------- batch norm

struct BnCase {
  int64_t N, C, H, W;
};
// With the single pass on, the first four take it (a channel fits one block); {100, 6, 7, 7} takes its
// widest form (32 values a thread) in float and the 16-bit types, the multi-pass kernels in double; the last
// two the multi-pass kernels, with whole 16-byte packs (56x56) and, for the 16-bit types, half packs (14x14)
// where those are switched on (cuda::set_half_packs), else single values.
const std::vector<BnCase> kBnCases{{4, 8, 8, 8},   {3, 5, 7, 7},   {8, 16, 14, 14}, {2, 3, 1, 1},
                                   {100, 6, 7, 7}, {6, 4, 56, 56}, {90, 2, 14, 14}};

template <typename T>
void check_bn(const BnCase& c) {
  using P = acc_t<T>;
  const Shape s{c.N, c.C, c.H, c.W}, cs{c.C};
  INFO(name<T>() << " batch_norm " << s);
  const double t = 5 * tol<T>();
  auto x = rnd<T>(s, 30, 2.0, 0.5), r = rnd<T>(s, 31), dy = rnd<T>(s, 32);
  auto gamma = rnd<P>(cs, 33, 0.3, 1.0), beta = rnd<P>(cs, 34), rm = rnd<P>(cs, 35);
  auto rv = Tensor<P>::full(cs, P(1.5));
  auto xd = to_double(x), rd = to_double(r), dyd = to_double(dy), gd = to_double(gamma), bd = to_double(beta);
  for (bool res : {false, true})
    for (Activation act : {Activation::None, Activation::ReLU}) {
      INFO("residual " << res << " relu " << (act == Activation::ReLU));
      // training forward
      auto grm = gpu(rm), grv = gpu(rv), gsm = gpu_sentinel<P>(cs), gsi = gpu_sentinel<P>(cs);
      auto y = gpu_sentinel<T>(s);
      auto gx = gpu(x), gr = gpu(r);
      cuda::batchnorm_forward_training(gx, res ? &gr : nullptr, gpu(gamma), gpu(beta), grm, grv, gsm, gsi, y,
                                       BatchNormParams{}, act);
      auto rmr = to_double(rm), rvr = to_double(rv), smr = cpu_sentinel<P>(cs), sir = cpu_sentinel<P>(cs);
      auto yr = cpu_sentinel<T>(s);
      cpu::batchnorm_forward_training(xd, res ? &rd : nullptr, gd, bd, rmr, rvr, smr, sir, yr,
                                      BatchNormParams{}, act);
      CHECK(err(y, yr) < t);
      CHECK(err(gsm, smr) < 1e-5);
      CHECK(err(gsi, sir) < 1e-5);
      CHECK(err(grm, rmr) < 1e-5);
      CHECK(err(grv, rvr) < 1e-5);
      // inference forward
      auto yi = gpu_sentinel<T>(s);
      auto yir = cpu_sentinel<T>(s);
      cuda::batchnorm_forward_inference(gx, res ? &gr : nullptr, gpu(gamma), gpu(beta), gpu(rm), gpu(rv), yi,
                                        BatchNormParams{}, act);
      cpu::batchnorm_forward_inference(xd, res ? &rd : nullptr, gd, bd, to_double(rm), to_double(rv), yir,
                                       BatchNormParams{}, act);
      CHECK(err(yi, yir) < t);
      // backward, with the saved statistics and output of the training forward
      for (bool acc : {false, true}) {
        INFO("accumulate " << acc);
        auto dx0 = rnd<T>(s, 36), dr0 = rnd<T>(s, 37);
        auto dg0 = rnd<P>(cs, 38), db0 = rnd<P>(cs, 39);
        auto dx = acc ? gpu(dx0) : gpu_sentinel<T>(s), dres = acc ? gpu(dr0) : gpu_sentinel<T>(s);
        auto dg = acc ? gpu(dg0) : gpu_sentinel<P>(cs), db = acc ? gpu(db0) : gpu_sentinel<P>(cs);
        auto dxr = acc ? to_double(dx0) : cpu_sentinel<T>(s), drr = acc ? to_double(dr0) : cpu_sentinel<T>(s);
        auto dgr = acc ? to_double(dg0) : cpu_sentinel<P>(cs),
             dbr = acc ? to_double(db0) : cpu_sentinel<P>(cs);
        cuda::batchnorm_backward(gx, y, gpu(dy), gpu(gamma), gsm, gsi, true, act, &dx, acc,
                                 res ? &dres : nullptr, acc, &dg, &db, acc);
        cpu::batchnorm_backward(xd, to_double(y), dyd, gd, to_double(gsm), to_double(gsi), true, act, &dxr,
                                acc, res ? &drr : nullptr, acc, &dgr, &dbr, acc);
        // dx = gamma * invstd * (dz - mean(dz) - xhat * mean(dz * xhat)) cancels: with two values per
        // channel it is exactly eps / var times its terms, so any float32 result is off by ~1e-7 of the
        // terms, not of dx. Errors are measured against the size of the terms.
        double terms = 0;
        {
          const auto g = gd.to_vector(), is = to_double(gsi).to_vector(), d = dyd.to_vector();
          for (size_t i = 0; i < d.size(); ++i) {
            const size_t ch = (i / static_cast<size_t>(c.H * c.W)) % static_cast<size_t>(c.C);
            terms = std::max(terms, std::abs(g[ch] * is[ch] * d[i]));
          }
        }
        CHECK(relative_error(to_double(dx).to_vector(), dxr.to_vector(), terms) < t);
        if (res) CHECK(err(dres, drr) < t);
        CHECK(err(dg, dgr) < t);
        CHECK(err(db, dbr) < t);
      }
    }
}

// Which BatchNorm kernels ran during f() (cuda::batchnorm_path_counts): `want`, at least once, and no other.
enum class BnRan { MultiPass, SinglePass, Clusters, HalfPacks };
template <typename F>
void check_path(BnRan want, F&& f) {
  const cuda::BatchNormPathCounts a = cuda::batchnorm_path_counts();
  f();
  const cuda::BatchNormPathCounts b = cuda::batchnorm_path_counts();
  const uint64_t m = b.multi_pass - a.multi_pass, s = b.single_pass - a.single_pass,
                 c = b.clusters - a.clusters, h = b.half_packs - a.half_packs;
  INFO("BatchNorm launches: multi-pass " << m << ", single pass " << s << ", clusters " << c
                                         << ", half packs " << h);
  const uint64_t ran[] = {m, s, c, h};
  CHECK(ran[static_cast<int>(want)] > 0);
  CHECK(m + s + c + h == ran[static_cast<int>(want)]);
}
struct BnSwitches {  // sets the BatchNorm kernel switches for a scope
  bool single = cuda::batchnorm_single_pass(), clusters = cuda::batchnorm_clusters(),
       half = cuda::half_packs_enabled();
  BnSwitches(bool single_pass, bool use_clusters, bool half_packs = false) {
    cuda::set_batchnorm_single_pass(single_pass);
    cuda::set_batchnorm_clusters(use_clusters);
    cuda::set_half_packs(half_packs);
  }
  ~BnSwitches() {
    cuda::set_batchnorm_single_pass(single);
    cuda::set_batchnorm_clusters(clusters);
    cuda::set_half_packs(half);
  }
};

TEST_CASE("cuda: fused BatchNorm (+ residual + ReLU) forward and backward match the CPU backend",
          "[cuda][.gpu]") {
  REQUIRE_GPU();
  {
    // The single pass, asked for (it is off by default until a GPU run shows it correct and faster): the
    // first four shapes take it, {100, 6, 7, 7} too but in double, the last two never.
    BnSwitches on(true, false);
    for (size_t i = 0; i < kBnCases.size(); ++i) {
      INFO("case " << i);
      check_path(i <= 4 ? BnRan::SinglePass : BnRan::MultiPass, [&] { check_bn<float>(kBnCases[i]); });
      check_path(i <= 3 ? BnRan::SinglePass : BnRan::MultiPass, [&] { check_bn<double>(kBnCases[i]); });
    }
    for (size_t i : {2, 4, 6}) {
      INFO("case " << i);
      check_path(i <= 4 ? BnRan::SinglePass : BnRan::MultiPass, [&] {
        check_bn<half_t>(kBnCases[i]);
        check_bn<bf16_t>(kBnCases[i]);
      });
    }
  }
  {
    // The library's default, the multi-pass kernels with whole packs or single values, on the same small
    // shapes and a large one.
    BnSwitches off(false, false);
    for (size_t i : {0, 1, 4, 6}) {
      INFO("case " << i);
      check_path(BnRan::MultiPass, [&] {
        check_bn<float>(kBnCases[i]);
        check_bn<half_t>(kBnCases[i]);
      });
    }
  }
  // Half packs, asked for: the 16-bit types at 14x14 take them, float (whole packs divide 196) does not.
  BnSwitches half(false, false, true);
  INFO("case 6, half packs on");
  check_path(BnRan::HalfPacks, [&] {
    check_bn<half_t>(kBnCases[6]);
    check_bn<bf16_t>(kBnCases[6]);
  });
  check_path(BnRan::MultiPass, [&] { check_bn<float>(kBnCases[6]); });
}

TEST_CASE("cuda: BatchNorm in thread-block clusters (experimental) matches the CPU backend", "[cuda][.gpu]") {
  REQUIRE_GPU();
  // With the single pass and clusters on, the two multi-pass shapes above spread a channel over 2 blocks
  // (float, 16-bit) or 8 (double) on compute capability 9 and newer; elsewhere they stay on the multi-pass
  // kernels. The counters say which ran: a cluster the device refuses would fall back, and fail here.
  BnSwitches on(true, true);
  const BnRan want = cuda::compute_capability(0) >= 90 ? BnRan::Clusters : BnRan::MultiPass;
  for (size_t i : {5, 6}) {
    INFO("case " << i);
    check_path(want, [&] { check_bn<float>(kBnCases[i]); });
    check_path(want, [&] { check_bn<double>(kBnCases[i]); });
    check_path(want, [&] { check_bn<half_t>(kBnCases[i]); });
    check_path(want, [&] { check_bn<bf16_t>(kBnCases[i]); });
  }
}

TEST_CASE("cuda: a label out of range is reported at the next synchronisation", "[cuda][.gpu]") {
  REQUIRE_GPU();
  auto logits = gpu(rnd<float>({3, 4}, 63));
  auto labels = gpu(Tensor<int32_t>::from_vector({0, 9, 1}, {3}));
  // The CPU's message for the same labels (backend/contract/loss.hpp), then where the kernel found it.
  testing::require_error_mentions(
      [&] { cross_entropy(logits, labels).item(); },
      {contract::label_out_of_range("cross_entropy", 9, 1, 4), "found by a kernel"});
  CHECK(std::isfinite(cross_entropy(logits, gpu(Tensor<int32_t>::from_vector({0, 3, 1}, {3}))).item()));
}

// ---------------------------------------------------------------- whole networks through autograd
// One training step of ResNet-18/50 on the GPU in every dtype against the CPU in double, by the bounds of
// tests/net_runs.hpp (shared with the CPU's channels-last and bfloat16 tests).
using netruns::compare_nets;
using netruns::kBf16Bounds;
using netruns::kDoubleBounds;
using netruns::kFloatBounds;
using netruns::kHalfBounds;
using netruns::run_net;

TEST_CASE("cuda: ResNet-18 forward and backward match the CPU", "[cuda][.gpu][net]") {
  REQUIRE_GPU();
  Tf32Off off;
  const netruns::NetRun ref = run_net<double>("resnet18", MemoryFormat::Contiguous, 4, 64);
  SECTION("double") {
    compare_nets(run_net<double>("resnet18", MemoryFormat::Contiguous, 4, 64, kGpu), ref, kDoubleBounds);
  }
  SECTION("float32") {
    compare_nets(run_net<float>("resnet18", MemoryFormat::Contiguous, 4, 64, kGpu), ref, kFloatBounds);
  }
  SECTION("float16") {
    compare_nets(run_net<half_t>("resnet18", MemoryFormat::Contiguous, 4, 64, kGpu), ref, kHalfBounds);
  }
  SECTION("bfloat16") {
    compare_nets(run_net<bf16_t>("resnet18", MemoryFormat::Contiguous, 4, 64, kGpu), ref, kBf16Bounds);
  }
}

TEST_CASE("cuda: ResNet-50 forward and backward match the CPU", "[cuda][.gpu][net]") {
  REQUIRE_GPU();
  Tf32Off off;
  const netruns::NetRun ref = run_net<double>("resnet50", MemoryFormat::Contiguous, 4, 64);
  SECTION("double") {
    compare_nets(run_net<double>("resnet50", MemoryFormat::Contiguous, 4, 64, kGpu), ref, kDoubleBounds);
  }
  SECTION("float32") {
    compare_nets(run_net<float>("resnet50", MemoryFormat::Contiguous, 4, 64, kGpu), ref, kFloatBounds);
  }
}

TEST_CASE("cuda: a few SGD steps of ResNet-18 on the GPU lower the loss", "[cuda][.gpu][net]") {
  REQUIRE_GPU();
  auto o = models::ResNetOptions().num_classes(2).seed(7);
  auto net = models::resnet18<float>(o);
  net->to(kGpu);
  optim::SGD<float> opt(net->named_parameters(), optim::SGDOptions().lr(0.05).momentum(0.9));
  auto x = rnd<float>({8, 3, 32, 32}, 90).to(kGpu);
  std::vector<int32_t> labels{0, 1, 0, 1, 1, 0, 1, 0};
  double first = 0, last = 0;
  for (int i = 0; i < 8; ++i) {
    opt.zero_grad();
    auto loss = cross_entropy(net->forward(x), labels);
    loss.backward();
    opt.step();
    last = loss.item();
    if (i == 0) first = last;
  }
  CHECK(last < first);
}
