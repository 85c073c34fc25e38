// Soft-target cross-entropy, Mixup / CutMix on a batch and the weights' moving average, on values.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "resnet/train/ema.hpp"
#include "resnet/train/mixup.hpp"
#include "test_util.hpp"
#include "trainer_fixtures.hpp"

using namespace resnet;
namespace fs = std::filesystem;

namespace {

Tensor<double> one_hot(const std::vector<int32_t>& y, int64_t K) {
  Tensor<double> t = Tensor<double>::zeros({static_cast<int64_t>(y.size()), K});
  for (size_t i = 0; i < y.size(); ++i) t.data()[static_cast<int64_t>(i) * K + y[i]] = 1.0;
  return t;
}

// The loss and the logits' gradient.
template <typename F>
std::pair<double, std::vector<double>> loss_and_grad(const Tensor<double>& x0, F f) {
  Tensor<double> x = x0.clone();
  x.requires_grad_(true);
  Tensor<double> l = f(x);
  l.backward();
  return {l.item(), x.grad().to_vector()};
}

}  // namespace

TEST_CASE("soft_cross_entropy equals cross_entropy on one-hot targets, smoothing folded in", "[mix][loss]") {
  Generator g(11);
  const std::vector<int32_t> y = {2, 0, 4, 4, 1};
  const Tensor<double> x = Tensor<double>::randn({5, 5}, g, 0.0, 3.0);
  for (double ls : {0.0, 0.1, 0.3}) {
    INFO("label smoothing " << ls);
    auto hard = loss_and_grad(x, [&](const Tensor<double>& v) { return cross_entropy(v, y, ls); });
    auto soft =
        loss_and_grad(x, [&](const Tensor<double>& v) { return soft_cross_entropy(v, one_hot(y, 5), ls); });
    CHECK(std::abs(hard.first - soft.first) < 1e-12 * std::max(1.0, std::abs(hard.first)));
    CHECK(testing::compare_values(soft.second, hard.second).within(1e-12));
  }
  // Mixed targets: the loss is the same mix of the two hard losses (a property of any convex combination).
  const std::vector<int32_t> z = {1, 1, 3, 0, 2};
  const double lam = 0.37;
  Tensor<double> t = one_hot(y, 5);
  const Tensor<double> u = one_hot(z, 5);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = lam * t.data()[i] + (1 - lam) * u.data()[i];
  const double mixed = soft_cross_entropy(x, t).item();
  CHECK(std::abs(mixed - (lam * cross_entropy(x, y).item() + (1 - lam) * cross_entropy(x, z).item())) <
        1e-12);
  // Float gives the double's value to float rounding.
  Tensor<float> xf = cast<float>(x), tf = cast<float>(t);
  CHECK(std::abs(soft_cross_entropy(xf, tf).item() - mixed) < 1e-5 * std::abs(mixed));
}

TEST_CASE("soft_cross_entropy refuses targets that are not distributions", "[mix][loss]") {
  const Tensor<float> x = Tensor<float>::zeros({2, 3});
  Tensor<float> t = Tensor<float>::full({2, 3}, 0.5f);
  CHECK_THROWS_WITH(soft_cross_entropy(x, t), Catch::Contains("row 0 sums to 1.5"));
  CHECK_THROWS_WITH(soft_cross_entropy(x, Tensor<float>::zeros({3, 3})), Catch::Contains("targets [3, 3]"));
}

TEST_CASE("mixup: images and targets are the stated convex combinations", "[mix]") {
  const int64_t n = 5, K = 4, H = 6, W = 7;
  Generator g(3);
  const Tensor<float> x0 = Tensor<float>::randn({n, 2, H, W}, g);
  const std::vector<int32_t> y = {0, 3, 1, 2, 3};
  train::Mixup mix(train::MixupOptions().mixup_alpha(0.4).label_smoothing(0.1).seed(9), K);
  Tensor<float> x = x0.clone();
  const Tensor<float> t = mix.apply(x, y, 17);
  const train::MixDraw d = mix.draw(17, H, W);
  REQUIRE(!d.cutmix);
  REQUIRE(d.lam > 0.0);
  REQUIRE(d.lam < 1.0);
  const float lam = static_cast<float>(d.lam);
  double worst = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) {
          const float want = lam * x0.at({i, c, h, w}) + (1 - lam) * x0.at({n - 1 - i, c, h, w});
          worst = std::max(worst, static_cast<double>(std::abs(x.at({i, c, h, w}) - want)));
        }
  CHECK(worst < 1e-6);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < K; ++k) {
      const double a = (k == y[i] ? 0.9 : 0.0) + 0.025, b = (k == y[n - 1 - i] ? 0.9 : 0.0) + 0.025;
      CHECK(std::abs(t.at({i, k}) - (d.lam * a + (1 - d.lam) * b)) < 1e-6);
    }
  // The middle sample of an odd batch meets itself.
  CHECK(x.at({2, 1, 3, 3}) == x0.at({2, 1, 3, 3}));
}

TEST_CASE("cutmix: the box comes from the partner and lambda is its corrected area", "[mix]") {
  const int64_t n = 4, H = 9, W = 13;
  train::Mixup mix(train::MixupOptions().mixup_alpha(0).cutmix_alpha(1.0).label_smoothing(0).seed(5), 3);
  int boxes = 0;
  for (int64_t step = 0; step < 40; ++step) {
    Generator g(static_cast<uint64_t>(step));
    const Tensor<float> x0 = Tensor<float>::randn({n, 1, H, W}, g);
    Tensor<float> x = x0.clone();
    const Tensor<float> t = mix.apply(x, {0, 1, 2, 2}, step);
    const train::MixDraw d = mix.draw(step, H, W);
    REQUIRE(d.cutmix);
    int64_t taken = 0;
    bool exact = true;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) {
          const bool in = h >= d.y0 && h < d.y1 && w >= d.x0 && w < d.x1;
          const float want = in ? x0.at({n - 1 - i, 0, h, w}) : x0.at({i, 0, h, w});
          exact = exact && x.at({i, 0, h, w}) == want;
          taken += in && i == 0 ? 1 : 0;
        }
    CHECK(exact);
    CHECK(std::abs(d.lam - (1.0 - static_cast<double>(taken) / static_cast<double>(H * W))) < 1e-12);
    CHECK(std::abs(t.at({0, 0}) - d.lam) < 1e-6);  // sample 0 (class 0) meets sample 3 (class 2)
    CHECK(std::abs(t.at({0, 2}) - (1 - d.lam)) < 1e-6);
    boxes += taken > 0 ? 1 : 0;
  }
  CHECK(boxes > 30);
}

TEST_CASE("mixup draws: seeded per step, Beta(alpha, alpha), prob and switch_prob", "[mix]") {
  train::Mixup both(train::MixupOptions().mixup_alpha(1.0).cutmix_alpha(1.0).prob(0.8).switch_prob(0.25), 10);
  int mixed = 0, cut = 0, same = 0;
  double sum = 0, sum2 = 0;
  int plain = 0;
  for (int64_t s = 0; s < 4000; ++s) {
    const train::MixDraw d = both.draw(s, 1000, 1000);
    const train::MixDraw again = both.draw(s, 1000, 1000);
    same += d.lam == again.lam && d.x0 == again.x0 ? 1 : 0;
    if (d.lam == 1.0) continue;
    ++mixed;
    cut += d.cutmix ? 1 : 0;
    if (!d.cutmix) {
      sum += d.lam;
      sum2 += d.lam * d.lam;
      ++plain;
    }
  }
  CHECK(same == 4000);
  CHECK(std::abs(mixed / 4000.0 - 0.8) < 0.03);
  CHECK(std::abs(static_cast<double>(cut) / mixed - 0.25) < 0.03);
  const double mean = sum / plain, var = sum2 / plain - mean * mean;
  CHECK(std::abs(mean - 0.5) < 0.02);
  CHECK(std::abs(var - 1.0 / 12.0) < 0.01);  // Beta(1, 1) is uniform
  CHECK(both.draw(1, 8, 8).lam != both.draw(2, 8, 8).lam);
  train::Mixup off(train::MixupOptions().prob(0), 3);
  CHECK(off.draw(4, 8, 8).lam == 1.0);
  CHECK_THROWS_WITH(train::Mixup(train::MixupOptions().mixup_alpha(0), 3), Catch::Contains("both are 0"));
  CHECK_THROWS_WITH(train::Mixup(train::MixupOptions().prob(1.5), 3), Catch::Contains("prob"));
}

TEST_CASE("EMA: timm's decay and warm-ups, parameters and running statistics averaged", "[ema]") {
  auto model = trainer_fixtures::small_model(1);
  using train::EmaOptions;
  using train::EmaWarmup;
  train::ModelEma<float> plain(*model, EmaOptions().decay(0.9));
  CHECK(plain.decay_at(1) == 0.0);
  CHECK(plain.decay_at(2) == 0.9);
  train::ModelEma<float> power(*model, EmaOptions().decay(0.999).warmup(EmaWarmup::Power));
  CHECK(std::abs(power.decay_at(2) - (1 - std::pow(2.0, -2.0 / 3.0))) < 1e-15);
  CHECK(power.decay_at(1000000) == 0.999);
  train::ModelEma<float> count(*model,
                               EmaOptions().decay(0.99).warmup(EmaWarmup::Count).update_after_step(2));
  CHECK(count.decay_at(3) == 0.0);
  CHECK(std::abs(count.decay_at(4) - 2.0 / 11.0) < 1e-15);

  // Three updates towards changing weights: e1 = w1, e_u = d e_{u-1} + (1 - d) w_u, in the model's float.
  train::ModelEma<float> ema(*model, EmaOptions().decay(0.75));
  train::ModelEma<float> copies(*model, EmaOptions().decay(0.75).average_buffers(false));
  std::vector<std::vector<double>> want;
  for (int u = 1; u <= 3; ++u) {
    auto sd = model->state_dict();
    for (auto& kv : sd)
      if (kv.second.dtype() == DType::F32) {
        Tensor<float> t(kv.second);
        for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(u * 0.5 + i * 0.01);
      }
    if (want.empty()) want.resize(sd.size());
    for (size_t j = 0; j < sd.size(); ++j) {
      if (sd[j].second.dtype() != DType::F32) continue;
      const std::vector<float> w = Tensor<float>(sd[j].second).to_vector();
      if (u == 1) want[j].assign(w.begin(), w.end());
      for (size_t i = 0; u > 1 && i < w.size(); ++i) want[j][i] = 0.75 * want[j][i] + 0.25 * w[i];
    }
    ema.update(*model);
    copies.update(*model);
  }
  CHECK(ema.updates() == 3);
  auto sd = model->state_dict();
  int averaged = 0, copied = 0;
  for (size_t j = 0; j < sd.size(); ++j) {
    INFO(sd[j].first);
    if (sd[j].second.dtype() != DType::F32) continue;
    const auto got = Tensor<float>(ema.state()[j].second).to_vector();
    CHECK(testing::compare_values(got, want[j]).within(1e-6));
    ++averaged;
    if (sd[j].first.find("running_") != std::string::npos) {  // exclude_buffers: the model's own
      CHECK(Tensor<float>(copies.state()[j].second).to_vector() == Tensor<float>(sd[j].second).to_vector());
      ++copied;
    }
  }
  CHECK(averaged >= 8);
  CHECK(copied == 2);
}

TEST_CASE("EMA: evaluated in the model's place, saved and restored exactly", "[ema]") {
  auto model = trainer_fixtures::small_model(2);
  train::ModelEma<float> ema(*model, train::EmaOptions().decay(0.5));
  ema.update(*model);
  auto before = model->state_dict();
  const std::vector<float> w0 = Tensor<float>(before[0].second).to_vector();
  Tensor<float>(before[0].second).fill_(2.0f);
  ema.update(*model);  // the average of w0 and 2
  const std::vector<float> raw = Tensor<float>(before[0].second).to_vector();
  const std::vector<float> seen =
      ema.with_weights(*model, [&] { return Tensor<float>(model->state_dict()[0].second).to_vector(); });
  for (size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == 0.5f * w0[i] + 0.5f * 2.0f);
  CHECK(Tensor<float>(model->state_dict()[0].second).to_vector() == raw);  // put back

  const fs::path dir = trainer_fixtures::fresh_dir("resnet_test_ema_", "save");
  fs::create_directories(dir);
  const std::string file = train::ema_path_for((dir / "last.safetensors").string());
  CHECK(file == (dir / "last.ema.safetensors").string());
  io::TrainingState s;
  s.step = 2;
  ema.save(file, s);
  train::ModelEma<float> back(*trainer_fixtures::small_model(7));
  CHECK(back.load(file).step == 2);
  CHECK(back.updates() == 2);
  for (size_t j = 0; j < ema.state().size(); ++j) {
    const TensorBase& a = ema.state()[j].second;
    const TensorBase& b = back.state()[j].second;
    CHECK(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
  }
  auto other = trainer_fixtures::small_model(8);  // a weights file any loader reads
  io::load(*other, file);
  CHECK(Tensor<float>(other->state_dict()[0].second).to_vector() == seen);
  fs::remove_all(dir);
}
