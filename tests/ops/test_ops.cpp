// Runs every entry of the op registry (registry.hpp) in every mode it declares. Each mode is one test case
// tagged [grad], [fast], [sim] or [gpu]; a failure names the entry, the run (backend, dtype, simulated
// device, thread order, accumulate) and the output, with the first element that failed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>

#include "ops/entry.hpp"
#include "test_util.hpp"

namespace opreg {

std::vector<Entry>& registry() {
  static std::vector<Entry> r;
  return r;
}

namespace {

constexpr double kSentinel = 7777.0;

// The inputs of an entry, drawn in double from its own seed.
using Drawn = std::vector<std::vector<double>>;
Drawn draw(const Entry& e) {
  Drawn d;
  for (const Input& in : e.inputs) {
    resnet::Generator g(seed_of(e.title() + "/" + in.name));
    std::vector<double> v(static_cast<size_t>(in.shape.numel()));
    for (size_t i = 0; i < v.size(); ++i) {
      if (in.kind == Input::Labels) {
        v[i] = static_cast<double>((i * 7 + 3) % static_cast<size_t>(in.classes));
      } else if (in.positive) {
        v[i] = std::abs(g.normal(0.0, in.sd)) + in.mean;
      } else {
        v[i] = g.normal(in.mean, in.sd);
      }
    }
    d.push_back(std::move(v));
  }
  return d;
}

// v rounded to U (through float for the 16-bit types, as the library converts).
template <typename U>
U round_to(double v) {
  if constexpr (std::is_same<U, double>::value) {
    return v;
  } else {
    return static_cast<U>(static_cast<float>(v));
  }
}
template <typename U>
Tensor<U> tensor_of(const std::vector<double>& v, const Shape& s) {
  Tensor<U> t = Tensor<U>::empty(s);
  for (size_t i = 0; i < v.size(); ++i) t.data()[i] = round_to<U>(v[i]);
  return t;
}
// The values a run in T sees, held in double for the reference.
template <typename U>
Tensor<double> rounded_double(const std::vector<double>& v, const Shape& s) {
  Tensor<double> t = Tensor<double>::empty(s);
  for (size_t i = 0; i < v.size(); ++i) t.data()[i] = to_double(round_to<U>(v[i]));
  return t;
}
Tensor<int32_t> labels_of(const std::vector<double>& v, const Shape& s) {
  Tensor<int32_t> t = Tensor<int32_t>::empty(s);
  for (size_t i = 0; i < v.size(); ++i) t.data()[i] = static_cast<int32_t>(v[i]);
  return t;
}

template <typename T>
Args<T> args_for(const Entry& e, const Drawn& d, Device dev, bool acc, double sentinel,
                 resnet::MemoryFormat format = resnet::MemoryFormat::Contiguous) {
  Args<T> a(dev, acc, sentinel, format);
  for (size_t i = 0; i < e.inputs.size(); ++i) {
    const Input& in = e.inputs[i];
    if (in.kind == Input::Act) a.xs_.push_back(a.laid_out(tensor_of<T>(d[i], in.shape)).to(dev));
    if (in.kind == Input::Param) a.ps_.push_back(tensor_of<acc_t<T>>(d[i], in.shape).to(dev));
    if (in.kind == Input::Labels) a.ls_.push_back(labels_of(d[i], in.shape).to(dev));
  }
  return a;
}
// The reference for a run in T: the CPU backend in double on the values that run sees.
template <typename T>
Args<double> reference_for(const Entry& e, const Drawn& d, bool acc) {
  Args<double> a(Device::cpu(), acc, -kSentinel);
  for (size_t i = 0; i < e.inputs.size(); ++i) {
    const Input& in = e.inputs[i];
    if (in.kind == Input::Act) a.xs_.push_back(rounded_double<T>(d[i], in.shape));
    if (in.kind == Input::Param) a.ps_.push_back(rounded_double<acc_t<T>>(d[i], in.shape));
    if (in.kind == Input::Labels) a.ls_.push_back(labels_of(d[i], in.shape));
  }
  return a;
}

template <typename B>
void check_backend_state(B&) {}
void check_backend_state(Sim& s) {
  INFO("kernel error report: code " << s.error.code << " where " << s.error.where);
  CHECK(s.error.code == k::kNoError);
}

// One comparison: entry e run by f on backend `be` in T, against the CPU backend in double.
// `format`: the memory format of the run under test's rank-4 tensors (the reference is always NCHW).
template <typename T, typename B>
void compare(const Entry& e, const std::function<void(B&, Args<T>&)>& f, B& be, Device dev, bool gpu,
             const std::string& where, resnet::MemoryFormat format = resnet::MemoryFormat::Contiguous) {
  if (!f) return;
  const Drawn d = draw(e);
  const DType dt = resnet::dtype_of<T>::value;
  for (int acc = e.in_place ? 1 : 0; acc <= (e.accumulates || e.in_place ? 1 : 0); ++acc) {
    INFO(e.title() << " on " << where << " in " << resnet::dtype_name(dt) << (acc ? ", accumulating" : ""));
    Args<double> ref = reference_for<T>(e, d, acc != 0);
    Cpu cpu;
    e.cpu_f64(cpu, ref);
    Args<T> got = args_for<T>(e, d, dev, acc != 0, kSentinel, format);
    f(be, got);
    check_backend_state(be);
    const auto want = ref.collect(), have = got.collect();
    REQUIRE(want.size() == have.size());
    REQUIRE(!want.empty());
    for (size_t i = 0; i < want.size(); ++i) {
      INFO("output " << want[i].first);
      // The reference itself must be finite: an op broken the same way on every backend fails here.
      const auto bad = std::find_if(want[i].second.begin(), want[i].second.end(),
                                    [](double v) { return !std::isfinite(v); });
      if (bad != want[i].second.end())
        FAIL_CHECK("reference element " << (bad - want[i].second.begin()) << " is " << *bad);
      testing::check_close(want[i].first, have[i].second, want[i].second, e.tol.of(dt, gpu));
    }
  }
}

// Central differences cost two evaluations per element: entries with more inputs than this are checked
// against the reference (fast, sim, gpu) but not by finite differences (a smaller entry of the op is).
constexpr int64_t kGradMaxElements = 1200;
bool grad_sized(const Entry& e) {
  int64_t n = 0;
  for (const Input& in : e.inputs)
    if (in.differentiable && in.kind != Input::Labels) n += in.shape.numel();
  return (e.modes & kGrad) && n <= kGradMaxElements;
}

}  // namespace
}  // namespace opreg

using namespace opreg;

TEST_CASE("ops: the registry declares every op with its modes", "[ops][registry]") {
  const auto& reg = registry();
  REQUIRE(reg.size() >= 30);
  std::map<std::string, unsigned> modes_of_op;
  std::map<std::string, int> graphs, grad_checked;
  for (const Entry& e : reg) {
    if (e.modes & kGrad) ++graphs[e.op];
    if (grad_sized(e)) ++grad_checked[e.op];
  }
  for (const auto& [op, n] : graphs) {
    INFO(op << " has a differentiable form but no entry small enough for central differences");
    CHECK(grad_checked[op] > 0);
  }
  for (const Entry& e : reg) {
    INFO(e.title());
    CHECK(e.cpu_f64);                    // the reference always runs
    CHECK((e.modes & (kGrad | kFast)));  // every op is checked on the CPU
    CHECK(!e.inputs.empty());
    modes_of_op[e.op] |= e.modes;
  }
  // Every op that has a CUDA kernel of ours runs on the simulator; cuDNN and cuBLAS ops say why not.
  for (const Entry& e : reg) {
    INFO(e.title());
    if (!(e.modes & kSim)) CHECK(!e.note.empty());
  }
  std::printf("op registry: %zu entries of %zu ops\n", reg.size(), modes_of_op.size());
  for (const auto& [op, m] : modes_of_op)
    std::printf("  %-28s %s%s%s%s\n", op.c_str(), (m & kGrad) ? "grad " : "", (m & kFast) ? "fast " : "",
                (m & kSim) ? "sim " : "", (m & kGpu) ? "gpu" : "");
}

TEST_CASE("ops: gradients match central differences (CPU, double)", "[ops][grad]") {
  int ran = 0;
  for (const Entry& e : registry()) {
    if (!grad_sized(e)) continue;
    INFO(e.title());
    const Drawn d = draw(e);
    std::vector<Tensor<double>> xs, ps;
    std::vector<Tensor<int32_t>> ls;
    std::vector<std::pair<std::string, Tensor<double>>> wrt;
    for (size_t i = 0; i < e.inputs.size(); ++i) {
      const Input& in = e.inputs[i];
      if (in.kind == Input::Labels) {
        ls.push_back(labels_of(d[i], in.shape));
        continue;
      }
      Tensor<double> t = tensor_of<double>(d[i], in.shape);
      if (in.differentiable) {
        t.requires_grad_(true);
        wrt.emplace_back(in.name, t);
      }
      (in.kind == Input::Act ? xs : ps).push_back(t);
    }
    auto loss = [&] { return testing::project(e.graph(xs, ps, ls)); };
    const auto t0 = std::chrono::steady_clock::now();
    testing::require_gradients_match(testing::gradcheck(loss, wrt), e.tol.grad);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 1.0) std::printf("grad: %s took %.1f s\n", e.title().c_str(), s);
    ++ran;
  }
  CHECK(ran >= 10);
}

TEST_CASE("ops: the CPU fast paths in float match the reference in double", "[ops][fast]") {
  int ran = 0;
  for (const Entry& e : registry()) {
    if (!(e.modes & kFast)) continue;
    Cpu cpu;
    compare<float>(e, e.cpu_f32, cpu, Device::cpu(), false, "cpu");
    ++ran;
  }
  CHECK(ran >= 20);
}

// Entries whose bodies slice row-major views of their inputs (SyncBatchNorm's simulated ranks) have no
// channels-last form yet.
bool row_major_only(const Entry& e) { return e.op.rfind("sync_", 0) == 0; }

// Channels-last: every op with rank-4 tensors, its inputs and outputs in NHWC, against the
// reference in NCHW: in double (the same arithmetic, so to rounding) and through the float fast paths.
TEST_CASE("ops: every CPU op in channels-last matches NCHW", "[ops][nhwc]") {
  int ran = 0;
  for (const Entry& e : registry()) {
    bool four_d = false;
    for (const Input& in : e.inputs) four_d = four_d || in.shape.rank() == 4;
    if (!four_d || row_major_only(e)) continue;
    Cpu cpu;
    compare<double>(e, e.cpu_f64, cpu, Device::cpu(), false, "cpu nhwc", resnet::MemoryFormat::ChannelsLast);
    if (e.modes & kFast)
      compare<float>(e, e.cpu_f32, cpu, Device::cpu(), false, "cpu nhwc", resnet::MemoryFormat::ChannelsLast);
    ++ran;
  }
  CHECK(ran >= 20);
}

// bfloat16 on the CPU: every op that takes 16-bit storage, NCHW and NHWC, against the reference
// in double on the same (rounded) inputs, with the entry's bfloat16 tolerance.
TEST_CASE("ops: the CPU in bfloat16 matches the reference in double", "[ops][bf16]") {
  int ran = 0;
  for (const Entry& e : registry()) {
    if (!e.cpu_bf16) continue;
    Cpu cpu;
    compare<bf16_t>(e, e.cpu_bf16, cpu, Device::cpu(), false, "cpu");
    if (!row_major_only(e))
      compare<bf16_t>(e, e.cpu_bf16, cpu, Device::cpu(), false, "cpu nhwc",
                      resnet::MemoryFormat::ChannelsLast);
    ++ran;
  }
  CHECK(ran >= 15);
}

TEST_CASE("ops: the CUDA kernels on the simulator match the CPU backend", "[ops][sim]") {
  int ran = 0;
  for (const Entry& e : registry()) {
    if (!(e.modes & kSim)) continue;
    // Every simulated device in double and float, the threads of a block forward on one device and in
    // reverse on the next (a read that lacks a barrier shows in one of the two orders); the 16-bit types
    // once, on the last device (their kernels share the float ones' indexing, only loads and stores differ).
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < e.sim_devices.size(); ++i) {
      const SimDevice& dev = e.sim_devices[i];
      const sim::Order order = i % 2 == 0 ? sim::Order::Forward : sim::Order::Reverse;
      sim::set_order(order);
      const std::string where =
          "sim (" + dev.name + ", " + (order == sim::Order::Forward ? "forward" : "reverse") + " order)";
      Sim s(dev);
      compare<double>(e, e.sim_f64, s, Device::cpu(), false, where);
      compare<float>(e, e.sim_f32, s, Device::cpu(), false, where);
      if (i + 1 == e.sim_devices.size()) {
        compare<half_t>(e, e.sim_f16, s, Device::cpu(), false, where);
        compare<bf16_t>(e, e.sim_bf16, s, Device::cpu(), false, where);
      }
    }
    sim::set_order(sim::Order::Forward);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (secs > 1.0) std::printf("sim: %s took %.1f s\n", e.title().c_str(), secs);
    ++ran;
  }
  // Each BatchNorm configuration ran the kernels it exists for: multi-pass only by default, the single
  // pass when asked, clusters (on a simulated compute capability 9) for channels larger than one block.
  const auto& r = Sim::bn_ran;
  INFO("BatchNorm paths (multi, single, cluster): default "
       << r[kBnDefault][0] << "/" << r[kBnDefault][1] << "/" << r[kBnDefault][2] << ", single pass "
       << r[kBnSinglePass][0] << "/" << r[kBnSinglePass][1] << "/" << r[kBnSinglePass][2] << ", clusters "
       << r[kBnClusters][0] << "/" << r[kBnClusters][1] << "/" << r[kBnClusters][2]);
  CHECK(r[kBnDefault][0] > 0);
  CHECK(r[kBnDefault][1] + r[kBnDefault][2] == 0);
  CHECK(r[kBnSinglePass][1] > 0);
  CHECK(r[kBnSinglePass][2] == 0);
  CHECK(r[kBnClusters][2] > 0);
  CHECK(ran >= 20);
}

// Channels-last on the simulator: every op with rank-4 tensors, inputs and outputs in NHWC,
// through the Sim backend's NHWC kernels (BatchNorm, pooling, the bias gradient; elementwise kernels take
// either layout) against the CPU reference in NCHW. The entry's first two simulated devices, forward thread
// order on the first and reverse on the second; the 16-bit types once, on the second. (BatchNorm's devices
// differ in the NCHW kernel choice, which NHWC does not have: two of them suffice.)
TEST_CASE("ops: the NHWC CUDA kernels on the simulator match the CPU backend", "[ops][sim][nhwc]") {
  int ran = 0;
  const int kernels_before = Sim::nhwc_ran;
  for (const Entry& e : registry()) {
    bool four_d = false;
    for (const Input& in : e.inputs) four_d = four_d || in.shape.rank() == 4;
    if (!(e.modes & kSim) || !four_d || row_major_only(e)) continue;
    const auto t0 = std::chrono::steady_clock::now();
    const size_t devices = std::min<size_t>(2, e.sim_devices.size());
    for (size_t i = 0; i < devices; ++i) {
      const SimDevice& dev = e.sim_devices[i];
      const sim::Order order = i % 2 == 0 ? sim::Order::Forward : sim::Order::Reverse;
      sim::set_order(order);
      const std::string where =
          "sim nhwc (" + dev.name + ", " + (order == sim::Order::Forward ? "forward" : "reverse") + " order)";
      Sim s(dev);
      const auto cl = resnet::MemoryFormat::ChannelsLast;
      compare<double>(e, e.sim_f64, s, Device::cpu(), false, where, cl);
      compare<float>(e, e.sim_f32, s, Device::cpu(), false, where, cl);
      if (i + 1 == devices) {
        compare<half_t>(e, e.sim_f16, s, Device::cpu(), false, where, cl);
        compare<bf16_t>(e, e.sim_bf16, s, Device::cpu(), false, where, cl);
      }
    }
    sim::set_order(sim::Order::Forward);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (secs > 1.0) std::printf("sim nhwc: %s took %.1f s\n", e.title().c_str(), secs);
    ++ran;
  }
  CHECK(Sim::nhwc_ran > kernels_before);  // the NHWC kernels did the work, not the NCHW ones
  CHECK(ran >= 20);
}

#if RESNET_WITH_CUDA
TEST_CASE("ops: the GPU matches the CPU backend", "[ops][.gpu]") {
  REQUIRE(resnet::cuda::device_count() > 0);  // main() skips this program without a device
  const bool tf32 = resnet::cuda::tf32_enabled();
  resnet::cuda::set_tf32(false);
  int ran = 0;
  for (const Entry& e : registry()) {
    if (!(e.modes & kGpu)) continue;
    Cuda g;
    const Device dev = Device::cuda(0);
    compare<double>(e, e.gpu_f64, g, dev, true, "gpu");
    compare<float>(e, e.gpu_f32, g, dev, true, "gpu");
    compare<half_t>(e, e.gpu_f16, g, dev, true, "gpu");
    compare<bf16_t>(e, e.gpu_bf16, g, dev, true, "gpu");
    // Channels-last: the backend takes NHWC tensors whatever cuda::set_channels_last says (the
    // switch is the ops layer's): cuDNN's NHWC convolutions and our NHWC kernels, every dtype.
    bool four_d = false;
    for (const Input& in : e.inputs) four_d = four_d || in.shape.rank() == 4;
    if (four_d && !row_major_only(e)) {
      const auto cl = resnet::MemoryFormat::ChannelsLast;
      compare<double>(e, e.gpu_f64, g, dev, true, "gpu nhwc", cl);
      compare<float>(e, e.gpu_f32, g, dev, true, "gpu nhwc", cl);
      compare<half_t>(e, e.gpu_f16, g, dev, true, "gpu nhwc", cl);
      compare<bf16_t>(e, e.gpu_bf16, g, dev, true, "gpu nhwc", cl);
    }
    resnet::cuda::synchronize();
    ++ran;
  }
  resnet::cuda::set_tf32(tf32);
  CHECK(ran >= 20);
}
#endif

// Timing mode (not part of ctest): `test_ops "[.time]"` prints milliseconds per run of each entry.
TEST_CASE("ops: time every entry", "[.time]") {
  std::printf("%-60s %12s %12s\n", "entry", "cpu f32 ms", "gpu f32 ms");
  for (const Entry& e : registry()) {
    const Drawn d = draw(e);
    auto time_it = [&](auto&& run) {
      std::vector<double> ms;
      for (int r = 0; r < 7; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        run();
        ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(ms.begin(), ms.end());
      return ms[ms.size() / 2];
    };
    double cpu_ms = -1, gpu_ms = -1;
    if (e.cpu_f32) {
      Cpu cpu;
      cpu_ms = time_it([&] {
        Args<float> a = args_for<float>(e, d, Device::cpu(), false, kSentinel);
        e.cpu_f32(cpu, a);
      });
    }
#if RESNET_WITH_CUDA
    if (e.gpu_f32 && resnet::cuda::device_count() > 0) {
      Cuda g;
      gpu_ms = time_it([&] {
        Args<float> a = args_for<float>(e, d, Device::cuda(0), false, kSentinel);
        e.gpu_f32(g, a);
        resnet::cuda::synchronize();
      });
    }
#endif
    std::printf("%-60s %12.4f %12.4f\n", e.title().c_str(), cpu_ms, gpu_ms);
  }
}
