// Optimizers against their formulas written out by hand, and the learning-rate schedules.
#include "test_util.hpp"

using namespace resnet;

namespace {
Tensor<double> param(std::vector<double> v) {
  auto t = Tensor<double>::from_vector(v, {static_cast<int64_t>(v.size())});
  t.requires_grad_();
  return t;
}
void set_grad(Tensor<double>& p, std::vector<double> g) {
  p.set_grad_base(Tensor<double>::from_vector(g, p.shape()));
}
}  // namespace

TEST_CASE("sgd: momentum, dampening, weight decay and nesterov follow torch.optim.SGD", "[optim]") {
  for (bool nesterov : {false, true}) {
    INFO("nesterov " << nesterov);
    auto p = param({1.0, -2.0});
    auto o = optim::SGDOptions().lr(0.1).momentum(0.9).weight_decay(0.01).nesterov(nesterov);
    optim::SGD<double> opt({{"p", p}}, o);
    double w = 1.0, buf = 0.0;
    const std::vector<double> grads{0.5, -0.25, 1.0};
    for (size_t t = 0; t < grads.size(); ++t) {
      set_grad(p, {grads[t], 0.0});
      opt.step();
      double d = grads[t] + 0.01 * w;
      buf = t == 0 ? d : 0.9 * buf + d;
      w -= 0.1 * (nesterov ? d + 0.9 * buf : buf);
      CHECK(p.at({0}) == Approx(w).epsilon(1e-12));
    }
    CHECK(opt.step_count() == 3);
  }
}

TEST_CASE("sgd: decay_1d=false leaves vectors undecayed", "[optim]") {
  auto p = param({1.0});
  auto o = optim::SGDOptions().lr(0.1).weight_decay(0.5).decay_1d(false);
  optim::SGD<double> opt({{"bias", p}}, o);
  set_grad(p, {0.0});
  opt.step();
  CHECK(p.at({0}) == 1.0);
}

TEST_CASE("adamw: decoupled decay and bias correction follow torch.optim.AdamW", "[optim]") {
  auto p = param({0.5});
  auto o = optim::AdamWOptions().lr(0.01).weight_decay(0.1);
  optim::AdamW<double> opt({{"p", p}}, o);
  double w = 0.5, m = 0, v = 0;
  const std::vector<double> grads{0.3, -0.1, 0.2, 0.05};
  for (size_t t = 1; t <= grads.size(); ++t) {
    set_grad(p, {grads[t - 1]});
    opt.step();
    double g = grads[t - 1];
    w *= 1 - 0.01 * 0.1;
    m = 0.9 * m + 0.1 * g;
    v = 0.999 * v + 0.001 * g * g;
    double mh = m / (1 - std::pow(0.9, t)), vh = v / (1 - std::pow(0.999, t));
    w -= 0.01 * mh / (std::sqrt(vh) + 1e-8);
    CHECK(p.at({0}) == Approx(w).epsilon(1e-9));
  }
  CHECK(opt.state().size() == 2);
}

TEST_CASE("optimizer: zero_grad zeroes in place and skips parameters without gradients", "[optim]") {
  auto a = param({1.0}), b = param({2.0});
  optim::SGD<double> opt({{"a", a}, {"b", b}}, optim::SGDOptions());
  set_grad(a, {3.0});
  TensorBase before = a.grad_base();
  opt.zero_grad();
  CHECK(a.grad().item() == 0.0);
  CHECK(a.grad_base().same_storage(before));
  opt.step();
  CHECK(b.at({0}) == 2.0);
}

TEST_CASE("schedules: warmup, step, cosine and one-cycle", "[optim]") {
  using optim::ScheduleKind;
  auto o = optim::ScheduleOptions().base_lr(1.0).total_steps(100).warmup_steps(10);
  auto cosine = optim::make_schedule(optim::ScheduleOptions(o).kind(ScheduleKind::Cosine));
  CHECK(cosine->name() == "cosine");
  CHECK(cosine->lr(0) == Approx(0.1));
  CHECK(cosine->lr(9) == Approx(1.0));
  CHECK(cosine->lr(10) == Approx(1.0));
  CHECK(cosine->lr(99) == Approx(0.0).margin(1e-12));
  CHECK(cosine->lr(10 + 45) < 0.55);
  CHECK(cosine->lr(10 + 45) > 0.45);
  CHECK(cosine->lr(150) == cosine->lr(99));  // past its end a schedule keeps its last rate
  o.warmup_steps(0).step_size(30);
  auto step = optim::make_schedule(optim::ScheduleOptions(o).kind(ScheduleKind::Step));
  CHECK(step->lr(29) == Approx(1.0));
  CHECK(step->lr(30) == Approx(0.1));
  CHECK(step->lr(95) == Approx(1e-3));
  auto one = optim::make_schedule(optim::ScheduleOptions(o).kind(ScheduleKind::OneCycle));
  CHECK(one->lr(0) == Approx(1.0 / 25));
  double peak = 0;
  int64_t at = 0;
  for (int64_t s = 0; s < 100; ++s)
    if (one->lr(s) > peak) peak = one->lr(s), at = s;
  CHECK(peak == Approx(1.0));
  CHECK(at == 29);
  CHECK(one->lr(99) == Approx(1.0 / 25 / 1e4));
  CHECK(optim::make_schedule(o)->name() == "constant");  // the default kind
  CHECK(optim::make_schedule(o)->lr(99) == 1.0);
  // The name form (a program's flag) is the same schedule.
  auto named = optim::make_schedule("onecycle", o);
  for (int64_t s : {0, 29, 64, 99}) CHECK(named->lr(s) == one->lr(s));
  CHECK(optim::schedule_name(optim::schedule_kind("step")) == "step");
  testing::require_error_mentions([&] { optim::make_schedule("linear", o); },
                                  {"unknown schedule 'linear'", "constant, step, cosine or onecycle"});
}

// One check per hyper-parameter, the same wherever it is set: a learning rate that is negative, NaN or
// infinite is refused at construction, by set_lr, from a checkpoint's values and by a schedule, in the same
// words; the other hyper-parameters refuse non-finite values too.
TEST_CASE("optimizer: one validation of the learning rate, wherever it is set", "[optim]") {
  auto w = Tensor<float>::randn({3}).requires_grad_();
  optim::NamedParameters<float> params{{"w", w}};
  const std::string words = "learning rate must be finite and >= 0";
  for (double bad :
       {-0.1, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    INFO(bad);
    auto so = optim::SGDOptions().lr(bad);
    testing::require_error_mentions([&] { optim::SGD<float> o(params, so); }, {words});
    auto ao = optim::AdamWOptions().lr(bad);
    testing::require_error_mentions([&] { optim::AdamW<float> o(params, ao); }, {words});
    optim::SGD<float> ok(params, optim::SGDOptions().lr(0.1).momentum(0.9));
    testing::require_error_mentions([&] { ok.set_lr(bad); }, {words});
    testing::require_error_mentions([&] { ok.set_hyper_parameters({{"lr", bad}}); }, {words});
    CHECK(ok.lr() == 0.1);  // a refused value changes nothing
    auto sc = optim::ScheduleOptions().kind(optim::ScheduleKind::Cosine).total_steps(10).base_lr(bad);
    testing::require_error_mentions([&] { optim::make_schedule(sc); }, {words});
  }
  auto inf_decay = optim::SGDOptions().weight_decay(std::numeric_limits<double>::infinity());
  testing::require_error_mentions([&] { optim::SGD<float> o(params, inf_decay); },
                                  {"weight_decay", "finite"});
  auto inf_eps = optim::AdamWOptions().eps(std::numeric_limits<double>::infinity());
  testing::require_error_mentions([&] { optim::AdamW<float> o(params, inf_eps); }, {"eps", "finite"});
}

// The note about frozen parameters goes through the notice sink: a program can take it or silence it.
TEST_CASE("optimizer: the frozen-parameter note goes to the notice handler", "[optim]") {
  auto a = Tensor<float>::randn({2}).requires_grad_();
  auto b = Tensor<float>::randn({2});  // frozen
  std::vector<std::string> lines;
  NoticeHandler previous = set_notice_handler([&](const std::string& l) { lines.push_back(l); });
  optim::SGD<float> opt(optim::NamedParameters<float>{{"a", a}, {"frozen.b", b}},
                        optim::SGDOptions().lr(0.1));
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "optimizer: skipping 1 frozen parameters (requires_grad off), e.g. 'frozen.b'");
  set_notice_handler(nullptr);  // silenced
  optim::SGD<float> quiet(optim::NamedParameters<float>{{"a", a}, {"frozen.b", b}},
                          optim::SGDOptions().lr(0.1));
  CHECK(lines.size() == 1);
  set_notice_handler(previous);
}
