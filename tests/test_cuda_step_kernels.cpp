// The kernels a default training step on the GPU launches that the other simulator tests do not reach, run
// on the CPU by the simulator (tests/cuda/sim.hpp): the one-thread step bookkeeping (BatchNorm's batch
// counter, the optimizer's step advance, the loss statistics with the skip flag), eval-mode BatchNorm's
// inverse standard deviation, and the multi-pass BatchNorm kernels with half-vector packs against the same
// kernels with single values (the pack width only changes how values are loaded, so both must agree).
#include "test_util.hpp"

// clang-format off
#include "cuda/sim.hpp"
#include "cuda/sim_test_util.hpp"
#include "kernels/batchnorm.cuh"
#include "kernels/optim.cuh"
#include "kernels/step_state.cuh"
// clang-format on

#include <cmath>
#include <limits>
#include <vector>

using namespace resnet;
namespace k = resnet::kernels;
using sim_test::OrderGuard;
using sim_test::pick_order;
using sim_test::randv;
using testing::relative_error;

namespace {

k::LaunchEnv env_with(int sm_count) {
  k::LaunchEnv e;
  e.sm_count = sm_count;
  return e;
}

template <typename T>
std::vector<double> as_double(const std::vector<T>& v) {
  std::vector<double> d(v.size());
  for (size_t i = 0; i < v.size(); ++i) d[i] = static_cast<double>(static_cast<float>(v[i]));
  return d;
}

}  // namespace

TEST_CASE("step kernels: count_up adds one to every counter", "[cuda-kernels][step]") {
  std::vector<int64_t> c{0, 41, -1};
  k::count_up(c.data(), 3, env_with(4));
  CHECK(c == std::vector<int64_t>{1, 42, 0});
  k::count_up(c.data(), 0, env_with(4));  // nothing to count: nothing launched
  CHECK(c == std::vector<int64_t>{1, 42, 0});
}

TEST_CASE("step kernels: optim_begin_step advances the step count unless the step is skipped",
          "[cuda-kernels][step]") {
  std::vector<double> st(optim_state::kSize, 0.0);
  st[optim_state::kLr] = 0.1;
  st[optim_state::kStep] = 4;
  k::optim_begin_step(st.data(), env_with(1));
  CHECK(st[optim_state::kStep] == 5);
  st[optim_state::kSkip] = 1;
  k::optim_begin_step(st.data(), env_with(1));
  CHECK(st[optim_state::kStep] == 5);
  CHECK(st[optim_state::kLr] == 0.1);
}

TEST_CASE("step kernels: record_step_loss sums finite losses and sets the skip flag at the first bad one",
          "[cuda-kernels][step]") {
  std::vector<double> stats(loss_stats::kSize, 0.0), optim(optim_state::kSize, 0.0);
  const float losses[] = {2.0f, 4.0f, std::numeric_limits<float>::infinity(), 1.0f};
  for (float l : losses) k::record_step_loss(&l, stats.data(), optim.data(), 8.0, 16.0, env_with(1));
  CHECK(stats[loss_stats::kStep] == 4);
  CHECK(stats[loss_stats::kWindowSum] == 3.0);  // (2 + 4) * 8 / 16; nothing after the bad step
  CHECK(stats[loss_stats::kEpochSum] == 3.0);
  CHECK(stats[loss_stats::kBadStep] == 3);
  CHECK(stats[loss_stats::kBadKind] == 2);  // +infinity
  CHECK(optim[optim_state::kSkip] == 1);
}

TEMPLATE_TEST_CASE("step kernels: eval-mode BatchNorm's invstd is 1 / sqrt(running_var + eps) everywhere",
                   "[cuda-kernels][step]", float, double) {
  OrderGuard order(pick_order());
  // More channels than one grid covers with one SM (grid_for caps the blocks): the grid-stride loop must
  // reach every element, and no other.
  const int64_t C = 5000;
  std::vector<TestType> var = randv<TestType>(static_cast<size_t>(C) + 1, 3, 2.0, 0.5);
  for (auto& v : var) v = std::abs(v);
  std::vector<TestType> inv(static_cast<size_t>(C) + 1, TestType(-7));
  const double eps = 1e-5;
  k::bn_running_invstd(var.data(), eps, inv.data(), C, env_with(1));
  double worst = 0;
  for (int64_t c = 0; c < C; ++c) {
    const double want = 1.0 / std::sqrt(static_cast<double>(var[static_cast<size_t>(c)]) + eps);
    worst = std::max(worst, std::abs(static_cast<double>(inv[static_cast<size_t>(c)]) - want) / want);
  }
  CHECK(worst < (std::is_same<TestType, float>::value ? 1e-7 : 1e-15));
  CHECK(inv[static_cast<size_t>(C)] == TestType(-7));  // one past the end: untouched
}

TEMPLATE_TEST_CASE("step kernels: BatchNorm's multi-pass kernels give the same with half packs as without",
                   "[cuda-kernels][bn]", half_t, bf16_t) {
  using T = TestType;
  using P = float;
  OrderGuard order(pick_order());
  // 12 and 196 values a channel: whole 8-value packs do not divide them, half ones do (14x14 is the case
  // that matters in ResNet). The reductions split differently by pack, so sums may differ in their last
  // bits; outputs are compared in float to the type's rounding.
  const int64_t HW = GENERATE(12, 196);
  const int64_t N = 3, C = 4, n = N * C * HW;
  INFO("HW " << HW);
  const k::BatchNormShape shape{N, C, HW};
  const std::vector<T> x = randv<T>(static_cast<size_t>(n), 11, 0.5, 1.5),
                       dy = randv<T>(static_cast<size_t>(n), 12);
  const std::vector<P> gamma = randv<P>(static_cast<size_t>(C), 13, 1.0, 0.2),
                       beta = randv<P>(static_cast<size_t>(C), 14);
  const k::LaunchEnv env = env_with(2);
  struct Out {
    std::vector<T> y, dx;
    std::vector<P> rm, rv, sm, si, dg, db;
    k::BnPath fwd, bwd;
  };
  auto run = [&](bool half) {
    k::BnOptions o;
    o.half_packs = half;
    Out r;
    r.y.assign(static_cast<size_t>(n), T(9));
    r.dx.assign(static_cast<size_t>(n), T(9));
    r.rm.assign(static_cast<size_t>(C), 0.f);
    r.rv.assign(static_cast<size_t>(C), 1.f);
    r.sm.assign(static_cast<size_t>(C), 9.f);
    r.si = r.sm;
    r.dg = r.sm;
    r.db = r.sm;
    std::vector<char> ws(
        std::max(k::bn_forward_workspace_bytes<T>(shape, 2), k::bn_backward_workspace_bytes<T>(shape, 2)));
    r.fwd = k::bn_forward_training(x.data(), static_cast<const T*>(nullptr), gamma.data(), beta.data(),
                                   r.rm.data(), r.rv.data(), r.sm.data(), r.si.data(), r.y.data(), shape,
                                   1e-5, 0.1, true, ws.data(), env, o);
    r.bwd = k::bn_backward(x.data(), r.y.data(), dy.data(), gamma.data(), r.sm.data(), r.si.data(), true,
                           true, r.dx.data(), false, static_cast<T*>(nullptr), false, r.dg.data(),
                           r.db.data(), false, shape, ws.data(), env, o);
    // Eval mode: the inference forward through the same apply kernel.
    std::vector<T> yi(static_cast<size_t>(n), T(9));
    std::vector<char> wi(k::bn_inference_workspace_bytes<T>(shape));
    k::bn_forward_inference(x.data(), static_cast<const T*>(nullptr), gamma.data(), beta.data(), r.rm.data(),
                            r.rv.data(), yi.data(), shape, 1e-5, false, wi.data(), env, half);
    r.y.insert(r.y.end(), yi.begin(), yi.end());
    return r;
  };
  const Out single = run(false), half = run(true);
  CHECK(single.fwd == k::BnPath::MultiPass);
  CHECK(single.bwd == k::BnPath::MultiPass);
  CHECK(half.fwd == k::BnPath::HalfPacks);
  CHECK(half.bwd == k::BnPath::HalfPacks);
  const double t = std::is_same<T, half_t>::value ? 4e-3 : 3e-2;
  CHECK(relative_error(as_double(half.y), as_double(single.y)) < t);
  CHECK(relative_error(as_double(half.dx), as_double(single.dx)) < t);
  CHECK(relative_error(as_double(half.sm), as_double(single.sm)) < 1e-5);
  CHECK(relative_error(as_double(half.si), as_double(single.si)) < 1e-5);
  CHECK(relative_error(as_double(half.rv), as_double(single.rv)) < 1e-5);
  CHECK(relative_error(as_double(half.dg), as_double(single.dg)) < 1e-4);
  CHECK(relative_error(as_double(half.db), as_double(single.db)) < 1e-4);
  // Nothing left at its sentinel: every element was written on both paths.
  for (const T& v : half.y) REQUIRE(static_cast<float>(v) != 9.f);
  for (const T& v : half.dx) REQUIRE(static_cast<float>(v) != 9.f);
}
