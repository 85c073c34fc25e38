// Per-step values kept where the kernels read them: the
// optimizers' learning rate, step number and skip flag in their step-state tensor, the Trainer's loss
// statistics, BatchNorm's counter as a device-side buffer, eval-mode BatchNorm's statistics without a host
// read. On the CPU these run the same functions the CUDA kernels run; the results must be bit-identical to
// the updates as they were written when lr and the step were arguments (the reference copies below).
#include <cmath>
#include <cstring>
#include <unistd.h>
#include <filesystem>
#include <vector>

#include "resnet/resnet.hpp"
#include "test_util.hpp"

using namespace resnet;
namespace fs = std::filesystem;

namespace {

// cpu::sgd_step and cpu::adamw_step as they were before the step state (lr, first step and step number as
// arguments), kept as the reference: the same expressions, loops shaped as the library's so that the
// compiler's floating-point contraction (FMA) is the same.
template <typename P>
void old_sgd(P* p, const P* g, P* b, int64_t n, double lr_d, double wd_d, double mom_d, double dampening,
             bool nesterov, bool first) {
  const P lr = static_cast<P>(lr_d), wd = static_cast<P>(wd_d), mom = static_cast<P>(mom_d);
  const P damp = static_cast<P>(1.0 - dampening);
  if (!b) {  // a loop of its own, as the library writes it (so the compiler contracts it the same way)
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) p[i] -= lr * (g[i] + wd * p[i]);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    if (first) {
      const P d = g[i] + wd * p[i];
      b[i] = d;
      p[i] -= lr * (nesterov ? d + mom * d : d);
    } else if (nesterov) {
      const P d = g[i] + wd * p[i];
      b[i] = mom * b[i] + damp * d;
      p[i] -= lr * (d + mom * b[i]);
    } else {
      const P d = g[i] + wd * p[i];
      b[i] = mom * b[i] + damp * d;
      p[i] -= lr * b[i];
    }
  }
}
template <typename P>
void old_adamw(P* p, const P* g, P* pm, P* pv, int64_t n, double lr, double beta1, double beta2, double eps_d,
               double weight_decay, int64_t step) {
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const P decay = static_cast<P>(1.0 - lr * weight_decay);
  const P b1 = static_cast<P>(beta1), b2 = static_cast<P>(beta2);
  const P step_size = static_cast<P>(lr / bc1);
  const P inv_sqrt_bc2 = static_cast<P>(1.0 / std::sqrt(bc2));
  const P eps = static_cast<P>(eps_d);
  for (int64_t i = 0; i < n; ++i) {
    p[i] *= decay;
    pm[i] = b1 * pm[i] + (P(1) - b1) * g[i];
    pv[i] = b2 * pv[i] + (P(1) - b2) * g[i] * g[i];
    p[i] -= step_size * pm[i] / (std::sqrt(pv[i]) * inv_sqrt_bc2 + eps);
  }
}

std::vector<float> randoms(size_t n, uint64_t seed, double scale) {
  Generator gen(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(gen.normal(0.0, scale));
  return v;
}
bool same_bits(const std::vector<float>& a, const float* b) {
  return std::memcmp(a.data(), b, a.size() * sizeof(float)) == 0;
}
const double kLrs[] = {0.1, 0.1, 0.05, 0.0125, 0.3};

}  // namespace

TEST_CASE("sgd: lr and the first step read from the step state are bit-identical to lr as an argument",
          "[optim][step_state]") {
  const size_t n = 1003;
  for (int variant = 0; variant < 4; ++variant) {
    INFO("variant " << variant);
    auto o = optim::SGDOptions()
                 .lr(kLrs[0])
                 .momentum(variant == 0 ? 0.0 : 0.9)
                 .dampening(variant == 3 ? 0.1 : 0.0)
                 .weight_decay(variant >= 2 ? 5e-4 : 0.0)
                 .nesterov(variant == 2);
    std::vector<float> w = randoms(n, 1, 1.0), buf(n, 0.0f);
    auto p = Tensor<float>::from_vector(w, {static_cast<int64_t>(n)});
    p.requires_grad_();
    optim::SGD<float> opt({{"w", p}}, o);
    for (int t = 0; t < 5; ++t) {
      const std::vector<float> g = randoms(n, 10 + t, 0.1);
      p.set_grad_base(Tensor<float>::from_vector(g, p.shape()));
      opt.set_lr(kLrs[t]);  // a schedule: the device copy changes between steps
      opt.step();
      old_sgd(w.data(), g.data(), o.momentum() != 0 ? buf.data() : nullptr, static_cast<int64_t>(n), kLrs[t],
              o.weight_decay(), o.momentum(), o.dampening(), o.nesterov(), t == 0);
      REQUIRE(same_bits(w, p.data()));
      CHECK(opt.step_state().data()[optim_state::kStep] == t + 1);
      CHECK(opt.step_state().data()[optim_state::kLr] == kLrs[t]);
    }
    if (o.momentum() != 0) CHECK(same_bits(buf, Tensor<float>(opt.state()[0].second).data()));
  }
}

TEST_CASE("adamw: lr and the step number read from the step state are bit-identical to arguments",
          "[optim][step_state]") {
  const size_t n = 1003;
  auto o = optim::AdamWOptions().lr(kLrs[0]).weight_decay(0.05);
  std::vector<float> w = randoms(n, 2, 1.0), m(n, 0.0f), v(n, 0.0f);
  auto p = Tensor<float>::from_vector(w, {static_cast<int64_t>(n)});
  p.requires_grad_();
  optim::AdamW<float> opt({{"w", p}}, o);
  opt.set_step_count(2);  // a resumed run: the bias correction continues at step 3
  for (int t = 0; t < 5; ++t) {
    const std::vector<float> g = randoms(n, 20 + t, 0.1);
    p.set_grad_base(Tensor<float>::from_vector(g, p.shape()));
    opt.set_lr(kLrs[t]);
    opt.step();
    old_adamw(w.data(), g.data(), m.data(), v.data(), static_cast<int64_t>(n), kLrs[t], o.beta1(), o.beta2(),
              o.eps(), o.weight_decay(), 3 + t);
    REQUIRE(same_bits(w, p.data()));
  }
  CHECK(opt.step_count() == 7);
  CHECK(opt.step_state().data()[optim_state::kStep] == 7);
  CHECK(same_bits(m, Tensor<float>(opt.state()[0].second).data()));
  CHECK(same_bits(v, Tensor<float>(opt.state()[1].second).data()));
}

TEST_CASE("optimizers: the skip flag leaves weights, state and the step number as they are",
          "[optim][step_state]") {
  auto p = Tensor<float>::from_vector({1.0f, -2.0f}, {2});
  p.requires_grad_();
  optim::AdamW<float> opt({{"w", p}}, optim::AdamWOptions());
  p.set_grad_base(Tensor<float>::from_vector({0.5f, 0.25f}, {2}));
  opt.step();
  const std::vector<float> after1 = p.to_vector();
  const std::vector<float> m1 = Tensor<float>(opt.state()[0].second).to_vector();
  opt.step_state().data()[optim_state::kSkip] = 1;  // what record_step_loss writes for a non-finite loss
  opt.step();
  CHECK(p.to_vector() == after1);
  CHECK(Tensor<float>(opt.state()[0].second).to_vector() == m1);
  CHECK(opt.step_state().data()[optim_state::kStep] == 1);  // not advanced by the skipped step
  opt.step_state().data()[optim_state::kSkip] = 0;
  opt.step();
  CHECK(opt.step_state().data()[optim_state::kStep] == 2);
  CHECK(p.to_vector() != after1);

  auto q = Tensor<double>::from_vector({1.0}, {1});
  q.requires_grad_();
  optim::SGD<double> sgd({{"q", q}}, optim::SGDOptions().lr(0.1).momentum(0.9));
  q.set_grad_base(Tensor<double>::from_vector({1.0}, {1}));
  sgd.step_state().data()[optim_state::kSkip] = 1;
  sgd.step();
  CHECK(q.at({0}) == 1.0);
  sgd.step_state().data()[optim_state::kSkip] = 0;
  sgd.step();  // still the first update: the momentum buffer takes the gradient as it is
  CHECK(q.at({0}) == Approx(0.9).epsilon(1e-15));
  CHECK(Tensor<double>(sgd.state()[0].second).at({0}) == 1.0);
}

TEST_CASE("optimizers: set_lr checks the value and set_step_count writes the step state",
          "[optim][step_state]") {
  auto p = Tensor<float>::from_vector({1.0f}, {1});
  p.requires_grad_();
  optim::SGD<float> opt({{"w", p}}, optim::SGDOptions().lr(0.25));
  CHECK(opt.step_state().data()[optim_state::kLr] == 0.25);
  CHECK(opt.step_state().data()[optim_state::kStep] == 0);
  testing::require_error_mentions([&] { opt.set_lr(-1); }, {"learning rate must be finite and >= 0"});
  testing::require_error_mentions([&] { opt.set_lr(std::nan("")); },
                                  {"learning rate must be finite and >= 0"});
  opt.set_step_count(41);
  CHECK(opt.step_state().data()[optim_state::kStep] == 41);
  opt.set_hyper_parameters({{"lr", 0.5}});
  CHECK(opt.step_state().data()[optim_state::kLr] == 0.5);
}

TEST_CASE("record_step_loss: weighted sums, a sticky first non-finite step and the optimizer's skip flag",
          "[step_state]") {
  auto stats = Tensor<double>::zeros({loss_stats::kSize});
  auto optim = Tensor<double>::zeros({optim_state::kSize});
  stats.data()[loss_stats::kStep] = 10;  // the run stands after step 10
  auto loss = [](float v) { return Tensor<float>::from_vector({v}, Shape{}); };
  cpu::record_step_loss(loss(0.75f), stats, &optim, 4, 8);
  CHECK(stats.data()[loss_stats::kStep] == 11);
  CHECK(stats.data()[loss_stats::kWindowSum] == 0.75 * 4 / 8);
  CHECK(stats.data()[loss_stats::kEpochSum] == 0.75 * 4 / 8);
  CHECK(stats.data()[loss_stats::kLastLoss] == 0.75 * 4 / 8);
  CHECK(optim.data()[optim_state::kSkip] == 0);
  cpu::record_step_loss(loss(0.3f), stats, &optim, 8, 8);
  CHECK(stats.data()[loss_stats::kWindowSum] == 0.75 * 4 / 8 + static_cast<double>(0.3f) * 8 / 8);
  cpu::record_step_loss(loss(INFINITY), stats, &optim, 8, 8);
  CHECK(stats.data()[loss_stats::kBadStep] == 13);
  CHECK(stats.data()[loss_stats::kBadKind] == 2);
  CHECK(optim.data()[optim_state::kSkip] == 1);
  const double window = stats.data()[loss_stats::kWindowSum];
  cpu::record_step_loss(loss(0.5f), stats, &optim, 8, 8);  // finite again: still skipped, not summed
  CHECK(optim.data()[optim_state::kSkip] == 1);
  CHECK(stats.data()[loss_stats::kBadStep] == 13);
  CHECK(stats.data()[loss_stats::kWindowSum] == window);
  // A NaN loss at step 3, no optimizer state to flag.
  auto s2 = Tensor<double>::zeros({loss_stats::kSize});
  s2.data()[loss_stats::kStep] = 2;
  cpu::record_step_loss(loss(NAN), s2, nullptr, 1, 1);
  CHECK(s2.data()[loss_stats::kBadStep] == 3);
  CHECK(s2.data()[loss_stats::kBadKind] == 1);
  CHECK(s2.data()[loss_stats::kWindowSum] == 0);
}

TEST_CASE("batchnorm: num_batches_tracked counts training forwards and round-trips a checkpoint as int64",
          "[step_state]") {
  const fs::path dir = fs::temp_directory_path() / ("resnet_step_state_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto make = [] {
    auto m = std::make_shared<nn::Sequential<float>>();
    m->push_back(std::make_shared<nn::BatchNorm2d<float>>(3));
    return m;
  };
  auto m = make();
  auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d<float>>(m->named_children()[0].second);
  REQUIRE(bn);
  Generator gen(3);
  auto x = Tensor<float>::randn({2, 3, 4, 4}, gen);
  m->train();
  for (int i = 0; i < 3; ++i) m->forward(x);
  m->eval();
  m->forward(x);  // eval does not count
  CHECK(bn->num_batches_tracked.item() == 3);
  const std::string path = (dir / "bn.safetensors").string();
  io::save(*m, path);
  auto r = io::SafetensorsReader::open(path);
  REQUIRE(r.find("0.num_batches_tracked") != nullptr);
  CHECK(r.at("0.num_batches_tracked").dtype == DType::I64);
  CHECK(r.at("0.num_batches_tracked").shape == Shape{});
  auto m2 = make();
  io::load(*m2, path);
  auto bn2 = std::dynamic_pointer_cast<nn::BatchNorm2d<float>>(m2->named_children()[0].second);
  CHECK(bn2->num_batches_tracked.item() == 3);
  fs::remove_all(dir);
}

TEST_CASE("eval-mode BatchNorm's backward takes invstd from the running variance on its device",
          "[step_state]") {
  auto var = Tensor<float>::from_vector({0.5f, 2.0f, 1e-3f}, {3});
  auto invstd = Tensor<float>::empty({3});
  cpu::bn_running_invstd(var, 1e-5, invstd);
  for (int c = 0; c < 3; ++c) {
    const float want = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var.data()[c]) + 1e-5));
    CHECK(invstd.data()[c] == want);  // the formula the host computed before, to the bit
  }
  // Through the op: eval-mode BN with a trainable input, dx = dy * gamma * invstd.
  nn::BatchNorm2d<float> bn(3);
  bn.running_var.data()[0] = 0.5f;
  bn.running_var.data()[1] = 2.0f;
  bn.running_var.data()[2] = 1e-3f;
  bn.eval();
  Generator gen(4);
  auto x = Tensor<float>::randn({1, 3, 2, 2}, gen);
  x.requires_grad_();
  sum(bn.forward(x)).backward();
  const Tensor<float> dx = x.grad();
  for (int c = 0; c < 3; ++c) CHECK(dx.at({0, c, 0, 0}) == invstd.data()[c]);  // gamma = 1, dy = 1
}
