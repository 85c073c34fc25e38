// The simulator's own tests, and what of the CUDA kernels is not an op comparison: the plans (which
// BatchNorm path a shape takes), exact casts, unaligned inputs, closed forms and error flags. Every op is
// compared with the CPU backend by the op registry (tests/ops, mode sim), on the same simulator.
// This runs everywhere, GPU or not: the launchers plan grids, split reductions and carve workspaces
// exactly as in the library, and every kernel body executes its real indexing, shuffles and barriers.
// Each case runs with the threads of a block scheduled forward and in reverse, and every output is
// pre-filled with a sentinel so an element the kernel never writes fails the comparison.
#include "test_util.hpp"

// clang-format off
#include "cuda/sim.hpp"
#include "cuda/sim_test_util.hpp"
#include "kernels/batchnorm.cuh"
#include "kernels/layout.cuh"
#include "kernels/loss.cuh"
#include "kernels/optim.cuh"
#include "kernels/pool.cuh"
#include "kernels/reduction.cuh"
// clang-format on

#include <limits>
#include <random>

using namespace resnet;
namespace k = resnet::kernels;
using sim_test::OrderGuard;
using sim_test::pick_order;
using sim_test::randv;
using testing::relative_error;

namespace {

constexpr double kSentinel = 12345.0;

template <typename T>
std::vector<T> filled(size_t n, double value = kSentinel) {
  return std::vector<T>(n, static_cast<T>(value));
}
template <typename D, typename S>
std::vector<D> convert(const std::vector<S>& v) {
  std::vector<D> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<D>(static_cast<float>(v[i]));
  return out;
}
template <>
std::vector<double> convert<double, double>(const std::vector<double>& v) {
  return v;
}
template <typename T>
Tensor<T> tensor(const std::vector<T>& v, const Shape& s) {
  return Tensor<T>::from_vector(v, s);
}

// Reference type for T: the CPU backend runs in float for the 16-bit types.
template <typename T>
using ref_t = std::conditional_t<std::is_same<T, double>::value, double, float>;

template <typename T>
double tolerance() {
  if (std::is_same<T, double>::value) return 1e-12;
  if (std::is_same<T, float>::value) return 2e-6;
  if (std::is_same<T, half_t>::value) return 2e-3;
  return 1.6e-2;  // bf16
}

template <typename T>
k::LaunchEnv env_with(int sm_count, k::KernelErrorReport* flag = nullptr) {
  k::LaunchEnv e;
  e.sm_count = sm_count;
  e.error_flag = flag;
  return e;
}

}  // namespace

// ---------------------------------------------------------------- the simulator and the helpers

TEST_CASE("kernels: FastDiv divides exactly for every divisor shape we use", "[cuda-kernels]") {
  std::mt19937_64 rng(7);
  std::vector<uint32_t> divisors{1,    2,     3,     7,     49,       196,         784,        1000,
                                 3136, 12544, 65535, 65536, 1u << 20, 2147483647u, 2147483648u};
  for (uint32_t d = 1; d < 600; ++d) divisors.push_back(d);
  for (uint32_t d : divisors) {
    k::FastDiv f(d);
    std::vector<uint32_t> ns{0, 1, d - 1, d, d + 1, 2 * d - 1, 4294967295u, 4294967294u, 2147483648u};
    for (int i = 0; i < 2000; ++i) ns.push_back(static_cast<uint32_t>(rng()));
    for (uint32_t n : ns) {
      INFO("n = " << n << ", d = " << d);
      REQUIRE(f.div(n) == n / d);
      REQUIRE(f.mod(n) == n % d);
    }
  }
}

TEST_CASE("kernels: simulator catches a thread leaving before a barrier", "[cuda-kernels][sim]") {
  auto body = [] {
    if (threadIdx.x == 3) return;
    __syncthreads();
  };
  CHECK_THROWS_WITH(sim::launch(dim3(1), dim3(64), body), Catch::Contains("exited while"));
}

TEST_CASE("kernels: simulator catches a shuffle with missing lanes", "[cuda-kernels][sim]") {
  auto body = [] {
    if (threadIdx.x == 5) return;
    (void)__shfl_xor_sync(0xffffffffu, 1.0f, 1);
  };
  CHECK_THROWS_WITH(sim::launch(dim3(1), dim3(32), body), Catch::Contains("lanes have exited"));
}

TEST_CASE("kernels: simulator exposes a missing barrier through the reverse schedule",
          "[cuda-kernels][sim]") {
  // Thread 0 reads what thread 1 wrote, with no barrier in between: right in one order only.
  std::vector<int> seen;
  auto body = [&] {
    __shared__ int slot;
    if (threadIdx.x == 1) slot = 42;
    if (threadIdx.x == 0) seen.push_back(slot);
  };
  for (sim::Order o : {sim::Order::Forward, sim::Order::Reverse}) {
    OrderGuard g(o);
    sim::launch(dim3(1), dim3(32), body);
  }
  REQUIRE(seen.size() == 2);
  CHECK(seen[0] != seen[1]);  // the race shows up as two different answers
}

TEST_CASE("kernels: simulator clusters: blocks see each other's writes after the cluster barrier",
          "[cuda-kernels][sim]") {
  OrderGuard g(pick_order());
  // Every block of a cluster of 4 writes its rank, waits at the barrier, then sums all four slots.
  std::vector<int> slots(8, -100), sums(8, -1);
  auto body = [&] {
    const unsigned rank = blockIdx.x % 4, base = blockIdx.x - rank;
    if (threadIdx.x == 0) slots[blockIdx.x] = static_cast<int>(rank) + 1;
    k::cluster_sync();
    if (threadIdx.x == 0)
      sums[blockIdx.x] = slots[base] + slots[base + 1] + slots[base + 2] + slots[base + 3];
  };
  sim::launch_cluster(dim3(8), dim3(64), 4, body);
  CHECK(sums == std::vector<int>(8, 10));
  CHECK(sim::last_launch_stats().cluster_barriers == 2);  // one per cluster
  // A thread that leaves while the cluster waits is reported, and so is a cluster that does not divide
  // the grid.
  auto leaves = [] {
    if (blockIdx.x == 1 && threadIdx.x == 3) return;
    k::cluster_sync();
  };
  CHECK_THROWS_WITH(sim::launch_cluster(dim3(2), dim3(32), 2, leaves), Catch::Contains("cluster barrier"));
  CHECK_THROWS_WITH(sim::launch_cluster(dim3(6), dim3(32), 4, body), Catch::Contains("dividing grid.x"));
}

TEST_CASE("kernels: block reductions sum across warps and blocks", "[cuda-kernels][sim]") {
  OrderGuard g(pick_order());
  for (int threads : {32, 64, 256, 1024}) {
    std::vector<double> out(2, -1.0);
    auto body = [&] {
      double v[2] = {static_cast<double>(threadIdx.x), 1.0};
      k::block_sum<2>(v);
      if (threadIdx.x == static_cast<unsigned>(threads - 1)) {
        out[0] = v[0];
        out[1] = v[1];
      }
    };
    sim::launch(dim3(1), dim3(static_cast<unsigned>(threads)), body);
    CHECK(out[0] == threads * (threads - 1) / 2.0);
    CHECK(out[1] == threads);
    CHECK(sim::last_launch_stats().block_barriers >= 2);
    CHECK(sim::last_launch_stats().warp_barriers > 0);
  }
}

TEST_CASE("kernels: Welford merges agree with a two-pass computation", "[cuda-kernels]") {
  std::vector<float> x = randv<float>(4096, 3, 100.0, 1.0);
  k::Welford<float> w{0, 0, 0};
  for (size_t i = 0; i < x.size(); i += 4) {
    float v[4] = {x[i], x[i + 1], x[i + 2], x[i + 3]};
    w = k::welford_merge(w, k::welford_of(v));
  }
  double mean = 0, m2 = 0;
  for (float v : x) mean += v;
  mean /= static_cast<double>(x.size());
  for (float v : x) m2 += (v - mean) * (v - mean);
  CHECK(w.n == 4096.f);
  CHECK(std::abs(w.mean - mean) / mean < 1e-6);
  CHECK(std::abs(w.m2 - m2) / m2 < 1e-4);
}

// ---------------------------------------------------------------- elementwise

template <typename T>
void check_elementwise(size_t n, size_t offset) {
  using R = ref_t<T>;
  const double tol = tolerance<T>();
  auto env = env_with<T>(2);
  std::vector<T> a0 = randv<T>(n + offset, 1), b0 = randv<T>(n + offset, 2), y0 = randv<T>(n + offset, 3);
  const T* a = a0.data() + offset;
  const T* b = b0.data() + offset;
  std::vector<R> ra = convert<R>(std::vector<T>(a, a + n)), rb = convert<R>(std::vector<T>(b, b + n)),
                 ry = convert<R>(std::vector<T>(y0.begin() + static_cast<long>(offset), y0.end()));
  Shape s{static_cast<int64_t>(n)};
  auto run = [&](const char* what, auto&& kernel_call, auto&& cpu_call, bool reads_y) {
    INFO(what << " n=" << n << " offset=" << offset);
    std::vector<T> out0 = reads_y ? y0 : filled<T>(n + offset);
    T* out = out0.data() + offset;
    kernel_call(out);
    Tensor<R> ref = reads_y ? tensor(ry, s) : Tensor<R>::full(s, R(kSentinel));
    cpu_call(ref);
    CHECK(relative_error(convert<double>(std::vector<T>(out, out + n)), convert<double>(ref.to_vector())) <
          tol);
  };
  run(
      "add", [&](T* y) { k::add(a, b, y, n, env); },
      [&](Tensor<R>& y) { cpu::add(tensor(ra, s), tensor(rb, s), y); }, false);
  run(
      "add_inplace", [&](T* y) { k::add_inplace(y, a, n, 1.0, env); },
      [&](Tensor<R>& y) { cpu::add_inplace(y, tensor(ra, s), 1.0); }, true);
  run(
      "add_inplace alpha", [&](T* y) { k::add_inplace(y, a, n, -0.5, env); },
      [&](Tensor<R>& y) { cpu::add_inplace(y, tensor(ra, s), -0.5); }, true);
  run(
      "scale", [&](T* y) { k::scale(a, 0.25, y, n, env); },
      [&](Tensor<R>& y) { cpu::scale(tensor(ra, s), 0.25, y); }, false);
  run(
      "mul", [&](T* y) { k::mul(a, b, y, n, false, env); },
      [&](Tensor<R>& y) { cpu::mul(tensor(ra, s), tensor(rb, s), y, false); }, false);
  run(
      "mul acc", [&](T* y) { k::mul(a, b, y, n, true, env); },
      [&](Tensor<R>& y) { cpu::mul(tensor(ra, s), tensor(rb, s), y, true); }, true);
  run(
      "relu", [&](T* y) { k::relu_forward(a, y, n, env); },
      [&](Tensor<R>& y) { cpu::relu_forward(tensor(ra, s), y); }, false);
  run(
      "relu_backward", [&](T* y) { k::relu_backward(a, b, y, n, false, env); },
      [&](Tensor<R>& y) { cpu::relu_backward(tensor(ra, s), tensor(rb, s), y, false); }, false);
  run(
      "relu_backward acc", [&](T* y) { k::relu_backward(a, b, y, n, true, env); },
      [&](Tensor<R>& y) { cpu::relu_backward(tensor(ra, s), tensor(rb, s), y, true); }, true);
  run(
      "fill", [&](T* y) { k::fill(y, n, 0.75, env); }, [&](Tensor<R>& y) { cpu::fill(y, 0.75); }, false);
  run(
      "broadcast_scalar", [&](T* y) { k::broadcast_scalar(a, 3.0, y, n, false, env); },
      [&](Tensor<R>& y) { cpu::broadcast_scalar(tensor(std::vector<R>{ra[0]}, {1}), 3.0, y, false); }, false);
  run(
      "broadcast_scalar acc", [&](T* y) { k::broadcast_scalar(a, 3.0, y, n, true, env); },
      [&](Tensor<R>& y) { cpu::broadcast_scalar(tensor(std::vector<R>{ra[0]}, {1}), 3.0, y, true); }, true);
}

// Every elementwise op at every size and dtype is an entry of the op registry (tests/ops); what stays here
// is what the registry's fresh, aligned tensors cannot reach: inputs one element off a vector boundary.
TEST_CASE(
    "kernels: elementwise ops match the CPU backend on unaligned inputs (scalar head, vector body, tail)",
    "[cuda-kernels]") {
  OrderGuard g(pick_order());
  for (size_t n : {1, 7, 64, 1000, 4099})
    for (size_t offset : {1}) {
      check_elementwise<float>(n, offset);
      check_elementwise<double>(n, offset);
      check_elementwise<half_t>(n, offset);
      check_elementwise<bf16_t>(n, offset);
    }
}

template <typename S, typename D>
void check_cast(size_t n) {
  std::vector<S> x = randv<S>(n, 11, 0.0, 100.0);
  std::vector<D> y = filled<D>(n);
  k::cast(x.data(), y.data(), static_cast<int64_t>(n), env_with<S>(3));
  for (size_t i = 0; i < n; ++i) {
    const D expect = static_cast<D>(static_cast<float>(x[i]));
    REQUIRE(std::memcmp(&expect, &y[i], sizeof(D)) == 0);
  }
}

TEST_CASE("kernels: casts between every pair of float types round exactly as the CPU", "[cuda-kernels]") {
  for (size_t n : {5, 333}) {
    check_cast<float, half_t>(n);
    check_cast<half_t, float>(n);
    check_cast<float, bf16_t>(n);
    check_cast<bf16_t, float>(n);
    check_cast<double, float>(n);
    check_cast<float, double>(n);
    check_cast<half_t, bf16_t>(n);
    check_cast<double, half_t>(n);
  }
  std::vector<double> x = randv<double>(100, 4), y = filled<double>(100);
  k::cast(x.data(), y.data(), 100, env_with<double>(1));
  CHECK(x == y);  // double to double copies
}

// The channels-last convolutions' filter transposition: OIHW -> OHWI is exactly the channels-last layout of
// an [O, C, KH, KW] tensor, so the tensor's own strided copy is the reference; back again, accumulating.
TEMPLATE_TEST_CASE("kernels: batched transpose makes OHWI filters and brings gradients back",
                   "[cuda-kernels]", float, double, half_t, bf16_t) {
  using T = TestType;
  OrderGuard order(pick_order());
  for (const Shape& s : {Shape{4, 3, 3, 3}, Shape{5, 7, 1, 1}, Shape{2, 3, 7, 7}, Shape{1, 1, 2, 3}}) {
    INFO("weight " << s);
    const size_t n = static_cast<size_t>(s.numel());
    const std::vector<T> w = convert<T>(randv<double>(n, 11));
    const Tensor<T> cl_ref = tensor(w, s).contiguous(MemoryFormat::ChannelsLast);
    std::vector<T> ohwi = filled<T>(n);
    k::batched_transpose(w.data(), ohwi.data(), s[0], s[1], s[2] * s[3], false, env_with<T>(2));
    for (size_t i = 0; i < n; ++i) {
      INFO("element " << i);
      REQUIRE(static_cast<double>(k::to_cmp(ohwi[i])) == static_cast<double>(k::to_cmp(cl_ref.data()[i])));
    }
    // Back: OHWI [O, KH * KW, C] -> OIHW, added into what is there.
    std::vector<T> back = convert<T>(randv<double>(n, 12));
    const std::vector<T> before = back;
    k::batched_transpose(ohwi.data(), back.data(), s[0], s[2] * s[3], s[1], true, env_with<T>(3));
    std::vector<double> got(n), expect(n);
    for (size_t i = 0; i < n; ++i) {
      got[i] = static_cast<double>(k::to_cmp(back[i]));
      expect[i] = static_cast<double>(k::to_cmp(k::from_cmp<T>(k::to_cmp(before[i]) + k::to_cmp(w[i]))));
    }
    CHECK(relative_error(got, expect) == 0.0);
  }
}

TEST_CASE("kernels: sum_all and the non-finite flag", "[cuda-kernels]") {
  OrderGuard g(pick_order());
  for (int64_t n : {1, 100, 100000}) {
    std::vector<float> x = randv<float>(static_cast<size_t>(n), 5);
    std::vector<float> y{static_cast<float>(kSentinel)};
    std::vector<double> ws(k::sum_all_workspace_bytes() / sizeof(double));
    k::sum_all(x.data(), n, y.data(), ws.data(), env_with<float>(4));
    double expect = 0;
    for (float v : x) expect += v;
    CHECK(std::abs(y[0] - expect) <= 1e-5 * (1.0 + std::abs(expect)));
    int flag = 0;
    k::find_non_finite(x.data(), n, &flag, env_with<float>(4));
    CHECK(flag == 0);
    x[static_cast<size_t>(n - 1)] = std::numeric_limits<float>::infinity();
    k::find_non_finite(x.data(), n, &flag, env_with<float>(4));
    CHECK(flag == 1);
  }
  std::vector<half_t> h = randv<half_t>(50, 6);
  h[17].bits = 0x7e00;  // NaN
  int flag = 0;
  k::find_non_finite(h.data(), 50, &flag, env_with<half_t>(1));
  CHECK(flag == 1);
}

// ---------------------------------------------------------------- batch norm

struct BnCase {
  int64_t N, C, H, W;
  int sm;  // multiprocessors the plan assumes: more gives more splits per channel
};
// Packs of the multi-pass kernels: HW = 16 and 64 take whole vectors for every type, 12 half vectors of
// the 16-bit types, 10 pairs of float, 49 and 15 single values. Every case fits the single pass (double:
// all but the last); the last one (4410 values a channel) takes its 32-values-a-thread kernel.
const std::vector<BnCase> kBnCases{{2, 3, 4, 4, 1},  {3, 4, 7, 7, 1},     {4, 2, 8, 8, 64},
                                   {2, 5, 5, 3, 16}, {16, 2, 16, 16, 32}, {1, 3, 2, 2, 1},
                                   {3, 2, 3, 4, 4},  {2, 3, 2, 5, 4},     {90, 2, 7, 7, 8}};
// The ways a BatchNorm can run: the library's default (the multi-pass kernels), the single pass in one
// block wherever a channel fits, and clusters of up to 8 blocks of at most 32 threads (on a simulated
// compute capability 9), so that channels of more than 1024 float values (256 double) spread over
// several blocks.
struct BnMode {
  const char* name;
  k::BnOptions opt;
  int cc_major;
};
const BnMode kBnModes[] = {{"multi-pass (default)", k::BnOptions{}, 0},
                           {"single pass", k::BnOptions{true, 1, k::kSingleBlock}, 0},
                           {"clusters", k::BnOptions{true, 8, 32}, 9},
                           {"multi-pass, half packs", k::BnOptions{false, 1, k::kSingleBlock, true}, 0}};

// The plan of a case in a mode; REQUIREs what each mode promises.
template <typename T>
k::BnPlan checked_plan(const k::BatchNormShape& shape, const BnMode& mode, const k::LaunchEnv& env) {
  const k::BnPlan p = k::bn_plan<T>(shape, mode.opt, env);
  INFO("plan: " << k::bn_path_name(p.path) << " K=" << p.K << " threads=" << p.threads
                << " blocks=" << p.blocks);
  const bool fits_one = std::is_same<T, double>::value ? shape.N * shape.HW <= 4096 : true;
  if (!mode.opt.single_pass)
    REQUIRE(p.path == (mode.opt.half_packs && k::bn_wants_half_packs<T>(shape.HW) ? k::BnPath::HalfPacks
                                                                                  : k::BnPath::MultiPass));
  if (mode.cc_major == 0) REQUIRE(p.blocks == 1);
  if (mode.opt.single_pass && mode.cc_major == 0) REQUIRE((p.path == k::BnPath::SinglePass) == fits_one);
  // Clusters: more than one block exactly when one block of block_threads cannot hold the channel.
  const int64_t one_block =
      static_cast<int64_t>(mode.opt.block_threads) * (std::is_same<T, double>::value ? 8 : 32);
  if (mode.cc_major >= 9 && p.path != k::BnPath::MultiPass)
    REQUIRE((p.path == k::BnPath::Cluster) == (shape.N * shape.HW > one_block));
  if (p.path == k::BnPath::Cluster) REQUIRE(p.blocks > 1);
  return p;
}

TEST_CASE("kernels: BatchNorm takes the single pass exactly where a channel fits a block or a cluster",
          "[cuda-kernels][bn]") {
  // 7x7 at batch 256 (12544 values a channel) fits one block in float and the 16-bit types, not in double;
  // 14x14 at batch 256 (50176) fits none; 56x56 at batch 1 (3136) fits all.
  const k::BatchNormShape b256_7{256, 512, 49}, b256_14{256, 256, 196}, b1_56{1, 64, 3136},
      b128_28{128, 512, 784}, b256_28{256, 512, 784};
  k::LaunchEnv ampere, hopper;
  ampere.cc_major = 8;
  hopper.cc_major = 9;
  const k::BnOptions dflt, single{true, 1, k::kSingleBlock}, clusters{true, 8, k::kSingleBlock};
  // What never ran on a GPU is never the default: the library's options plan the multi-pass kernels for
  // every shape, and the policy table has exactly one row on by default.
  CHECK_FALSE(dflt.single_pass);
  CHECK(dflt.max_cluster == 1);
  CHECK_FALSE(dflt.half_packs);
  for (const k::BatchNormShape& sh : {b256_7, b256_14, b1_56, b128_28})
    CHECK(k::bn_plan<float>(sh, dflt, hopper).path == k::BnPath::MultiPass);
  int defaults_on = 0;
  for (const k::BnPolicyRow& row : k::kBnPolicy) defaults_on += row.default_on;
  CHECK(defaults_on == 1);
  CHECK(k::kBnPolicy[sizeof(k::kBnPolicy) / sizeof(k::kBnPolicy[0]) - 1].path == k::BnPath::MultiPass);
  // Clusters need the single pass on too.
  CHECK(k::bn_plan<float>(b256_14, k::BnOptions{false, 8, k::kSingleBlock}, hopper).path ==
        k::BnPath::MultiPass);
  const k::BnPlan p7 = k::bn_plan<float>(b256_7, single, hopper);
  CHECK(p7.path == k::BnPath::SinglePass);
  CHECK(p7.K == 32);
  CHECK(p7.blocks == 1);
  CHECK(p7.threads == 416);  // 392 values' worth of threads, rounded up to warps
  CHECK(k::bn_plan<half_t>(b256_7, single, ampere).K == 32);
  CHECK(k::bn_plan<double>(b256_7, single, hopper).path == k::BnPath::MultiPass);
  CHECK(k::bn_plan<float>(b256_14, single, hopper).path == k::BnPath::MultiPass);
  CHECK(k::bn_plan<double>(b1_56, single, ampere).K == 8);
  CHECK(k::bn_single_threads(3, 8) == 32);
  // Clusters, where asked for and only from compute capability 9: 14x14 at batch 256 in 4 blocks, 28x28
  // at batch 128 (100352 values) in 8; 28x28 at batch 256 fits no cluster.
  CHECK(k::bn_plan<float>(b256_14, clusters, ampere).path == k::BnPath::MultiPass);
  const k::BnPlan p14 = k::bn_plan<float>(b256_14, clusters, hopper);
  CHECK(p14.path == k::BnPath::Cluster);
  CHECK(p14.K == 32);
  CHECK(p14.blocks == 4);
  CHECK(p14.threads == 416);  // 50176 / (4 * 32) = 392 threads' worth
  CHECK(k::bn_plan<float>(b128_28, clusters, hopper).blocks == 8);
  CHECK(k::bn_plan<float>(b256_28, clusters, hopper).path == k::BnPath::MultiPass);
  const k::BnPlan p7c = k::bn_plan<float>(b256_7, clusters, hopper);  // one block when one will do
  CHECK(p7c.path == k::BnPath::SinglePass);
  CHECK(p7c.blocks == 1);
  // Pack widths of the multi-pass kernels: whole vectors, half vectors where asked for, single values.
  CHECK(k::pack_width_for(196, 8, true) == 4);
  CHECK(k::pack_width_for(196, 8) == 1);  // the default: what ran on the GPU
  CHECK(k::pack_width_for(784, 8) == 8);
  CHECK(k::pack_width_for(49, 4, true) == 1);
  CHECK(k::pack_width_for(10, 4, true) == 2);
  CHECK(k::pack_width_for(10, 4) == 1);
  CHECK(k::pack_width_for(196, 1, true) == 1);
  CHECK(k::plan_channels(256, 256, 196, 8, 132).V == 1);
  CHECK(k::plan_channels(256, 256, 196, 8, 132, true).V == 4);
  // The half-pack row of the policy: 16-bit types at 14x14 when switched on; float takes whole packs there.
  k::BnOptions half;
  half.half_packs = true;
  CHECK(k::bn_plan<half_t>(b256_14, half, hopper).path == k::BnPath::HalfPacks);
  CHECK(k::bn_plan<bf16_t>(b256_14, dflt, hopper).path == k::BnPath::MultiPass);
  CHECK(k::bn_plan<float>(b256_14, half, hopper).path == k::BnPath::MultiPass);
  CHECK(k::bn_plan<half_t>(b128_28, half, hopper).path == k::BnPath::MultiPass);  // 784 = 8 * 98
  CHECK(k::bn_plan<half_t>(b256_7, half, hopper).path == k::BnPath::MultiPass);   // 49: single values
  // The single pass still comes first where it is on and fits.
  half.single_pass = true;
  CHECK(k::bn_plan<half_t>(b256_7, half, hopper).path == k::BnPath::SinglePass);
}

TEST_CASE("kernels: BatchNorm statistics keep the variance of data with a large mean", "[cuda-kernels][bn]") {
  // 1e4 + N(0, 1e-2) in float: a sum of squares minus a squared sum would lose every digit of the variance.
  const int64_t N = 4, C = 3, HW = 256;
  const Shape s{N, C, HW, 1}, cs{C};
  std::vector<float> x = randv<float>(static_cast<size_t>(N * C * HW), 5, 1e4, 1e-2), y(x.size());
  std::vector<float> gamma(3, 1.f), beta(3, 0.f), rm(3, 0.f), rv(3, 1.f), sm(3), si(3);
  k::BatchNormShape shape{N, C, HW};
  const BnMode& mode = kBnModes[GENERATE(0, 1, 2, 3)];
  INFO(mode.name);
  k::LaunchEnv env = env_with<float>(8);
  env.cc_major = mode.cc_major;
  std::vector<char> ws(k::bn_forward_workspace_bytes<float>(shape, 8));
  const k::BnPath path = k::bn_forward_training(x.data(), static_cast<const float*>(nullptr), gamma.data(),
                                                beta.data(), rm.data(), rv.data(), sm.data(), si.data(),
                                                y.data(), shape, 1e-8, 0.1, false, ws.data(), env, mode.opt);
  CHECK(path == k::bn_plan<float>(shape, mode.opt, env).path);
  Tensor<float> yr = Tensor<float>::empty(s), rmt = Tensor<float>::zeros(cs), rvt = Tensor<float>::ones(cs),
                smt = Tensor<float>::empty(cs), sit = Tensor<float>::empty(cs);
  cpu::batchnorm_forward_training(tensor(x, s), static_cast<const Tensor<float>*>(nullptr), tensor(gamma, cs),
                                  tensor(beta, cs), rmt, rvt, smt, sit, yr, BatchNormParams{1e-8, 0.1},
                                  Activation::None);
  CHECK(relative_error(si, sit.to_vector()) < 1e-4);
  CHECK(relative_error(sm, smt.to_vector()) < 1e-7);
  // y against a double-precision reference: (x - pivot) is exact, so y keeps float accuracy.
  std::vector<double> xd(x.begin(), x.end()), g1(3, 1.0), b0(3, 0.0);
  Tensor<double> yd = Tensor<double>::empty(s), rmd = Tensor<double>::zeros(cs),
                 rvd = Tensor<double>::ones(cs), smd = Tensor<double>::empty(cs),
                 sid = Tensor<double>::empty(cs);
  cpu::batchnorm_forward_training(tensor(xd, s), static_cast<const Tensor<double>*>(nullptr), tensor(g1, cs),
                                  tensor(b0, cs), rmd, rvd, smd, sid, yd, BatchNormParams{1e-8, 0.1},
                                  Activation::None);
  CHECK(relative_error(y, yd.to_vector()) < 1e-4);
}

TEST_CASE("kernels: BatchNorm statistics, running statistics and output equal closed forms on every path",
          "[cuda-kernels][bn]") {
  const int64_t N = 3, C = 2, HW = 100, M = N * HW;
  const double a[2] = {1.0, -2.0}, b[2] = {0.5, 7.0}, gamma[2] = {2.0, 0.5}, beta[2] = {1.0, -1.0};
  const double momentum = 0.25, eps = 1e-5;
  std::vector<double> x(static_cast<size_t>(N * C * HW));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t e = 0; e < M; ++e)
      x[static_cast<size_t>(((e / HW) * C + c) * HW + e % HW)] = a[c] * e + b[c];
  const BnMode& mode = kBnModes[GENERATE(0, 1, 2, 3)];
  INFO(mode.name);
  k::LaunchEnv env = env_with<double>(4);
  env.cc_major = mode.cc_major;
  const k::BatchNormShape shape{N, C, HW};
  const k::BnPlan plan = checked_plan<double>(shape, mode, env);
  if (mode.cc_major >= 9) CHECK(plan.blocks == 2);
  std::vector<double> g(gamma, gamma + 2), bt(beta, beta + 2), rm{0.0, 1.0}, rv{1.0, 2.0}, sm(2, kSentinel),
      si(2, kSentinel), y(x.size(), kSentinel);
  std::vector<char> ws(k::bn_forward_workspace_bytes<double>(shape, 4));
  CHECK(k::bn_forward_training(x.data(), static_cast<const double*>(nullptr), g.data(), bt.data(), rm.data(),
                               rv.data(), sm.data(), si.data(), y.data(), shape, eps, momentum, false,
                               ws.data(), env, mode.opt) == plan.path);
  for (int64_t c = 0; c < C; ++c) {
    INFO("channel " << c);
    const double mean = a[c] * 149.5 + b[c], var = a[c] * a[c] * (300.0 * 300.0 - 1.0) / 12.0,
                 unbiased = a[c] * a[c] * 300.0 * 301.0 / 12.0, inv = 1.0 / std::sqrt(var + eps);
    const double rm0 = c == 0 ? 0.0 : 1.0, rv0 = c == 0 ? 1.0 : 2.0;
    CHECK(sm[c] == Approx(mean).epsilon(1e-12));
    CHECK(si[c] == Approx(inv).epsilon(1e-12));
    CHECK(rm[c] == Approx((1 - momentum) * rm0 + momentum * mean).epsilon(1e-12));
    CHECK(rv[c] == Approx((1 - momentum) * rv0 + momentum * unbiased).epsilon(1e-12));
    double worst = 0;
    for (int64_t e = 0; e < M; ++e) {
      const double want = gamma[c] * (a[c] * e + b[c] - mean) * inv + beta[c];
      worst = std::max(worst, std::abs(y[static_cast<size_t>(((e / HW) * C + c) * HW + e % HW)] - want));
    }
    CHECK(worst < 1e-11);
  }
}

// L = sum(w * y) through the kernels' training forward; the kernels' backward must give its directional
// derivatives along random directions of x, gamma, beta and the residual.
TEST_CASE("kernels: BatchNorm backward equals central differences of the forward on every path",
          "[cuda-kernels][bn]") {
  const int64_t N = 3, C = 2, HW = 100;
  const size_t n = static_cast<size_t>(N * C * HW), uc = static_cast<size_t>(C);
  const BnMode& mode = kBnModes[GENERATE(0, 1, 2, 3)];
  const bool relu = GENERATE(false, true);
  INFO(mode.name << " relu=" << relu);
  k::LaunchEnv env = env_with<double>(4);
  env.cc_major = mode.cc_major;
  const k::BatchNormShape shape{N, C, HW};
  const k::BnPlan plan = checked_plan<double>(shape, mode, env);
  std::vector<double> x = randv<double>(n, 61, 0.3, 1.2), r = randv<double>(n, 62), w = randv<double>(n, 63);
  std::vector<double> gamma = randv<double>(uc, 64, 1.0, 0.3), beta = randv<double>(uc, 65);
  std::vector<char> ws(std::max(k::bn_forward_workspace_bytes<double>(shape, 4),
                                k::bn_backward_workspace_bytes<double>(shape, 4)));
  std::vector<double> sm(uc), si(uc), y(n);
  auto loss = [&](const std::vector<double>& xx, const std::vector<double>& rr, const std::vector<double>& gg,
                  const std::vector<double>& bb) {
    std::vector<double> rm(uc, 0.0), rv(uc, 1.0);
    CHECK(k::bn_forward_training(xx.data(), rr.data(), gg.data(), bb.data(), rm.data(), rv.data(), sm.data(),
                                 si.data(), y.data(), shape, 1e-5, 0.1, relu, ws.data(), env,
                                 mode.opt) == plan.path);
    double l = 0;
    for (size_t i = 0; i < n; ++i) l += w[i] * y[i];
    return l;
  };
  loss(x, r, gamma, beta);  // y, mean and invstd at the point
  const std::vector<double> y0 = y, mean = sm, invstd = si;
  std::vector<double> dx(n, kSentinel), dr(n, kSentinel), dg(uc, kSentinel), db(uc, kSentinel);
  CHECK(k::bn_backward(x.data(), y0.data(), w.data(), gamma.data(), mean.data(), invstd.data(), true, relu,
                       dx.data(), false, dr.data(), false, dg.data(), db.data(), false, shape, ws.data(), env,
                       mode.opt) == plan.path);
  auto dot = [](const std::vector<double>& p, const std::vector<double>& q) {
    double s = 0;
    for (size_t i = 0; i < p.size(); ++i) s += p[i] * q[i];
    return s;
  };
  const std::vector<double> vx = randv<double>(n, 66), vr = randv<double>(n, 67), vg = randv<double>(uc, 68),
                            vb = randv<double>(uc, 69);
  std::vector<double> xx = x, rr = r, gg = gamma, bb = beta;
  // (L(p + h v) - L(p - h v)) / 2h, moving one of xx, rr, gg, bb.
  const double h = 1e-6;
  auto along = [&](std::vector<double>& which, const std::vector<double>& v) {
    const std::vector<double> at = which;
    for (size_t i = 0; i < v.size(); ++i) which[i] = at[i] + h * v[i];
    const double up = loss(xx, rr, gg, bb);
    for (size_t i = 0; i < v.size(); ++i) which[i] = at[i] - h * v[i];
    const double down = loss(xx, rr, gg, bb);
    which = at;
    return (up - down) / (2 * h);
  };
  auto close = [](const char* what, double analytic, double numeric) {
    INFO(what << ": analytic " << analytic << " numeric " << numeric);
    CHECK(std::abs(analytic - numeric) < 1e-6 * (1.0 + std::abs(numeric)));
  };
  close("dx", dot(dx, vx), along(xx, vx));
  close("dresidual", dot(dr, vr), along(rr, vr));
  close("dgamma", dot(dg, vg), along(gg, vg));
  close("dbeta", dot(db, vb), along(bb, vb));
}

TEST_CASE("kernels: a label out of range sets the error flag and a NaN loss", "[cuda-kernels]") {
  std::vector<float> x = randv<float>(12, 91), loss{0.f}, probs(12);
  std::vector<int32_t> labels{0, 5, 1};  // 5 is outside [0, 4)
  std::vector<double> ws(3);
  k::KernelErrorReport flag{0, 0, 0};
  k::cross_entropy_forward(x.data(), labels.data(), 3, 4, 0.0, loss.data(), probs.data(), ws.data(),
                           env_with<float>(1, &flag));
  CHECK(flag.code == k::kLabelOutOfRange);
  CHECK(flag.extent == 4);
  CHECK((flag.where >> 32) == 1);
  CHECK(static_cast<int32_t>(flag.where & 0xffffffff) == 5);
  CHECK(std::isnan(loss[0]));
}
