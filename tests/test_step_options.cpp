// The training step's options (gradient accumulation, clipping by the global norm) and the Trainer's EMA
// and mixup parts, on values: accumulated micro-batches give the large batch's step, clipping gives the
// stated norm, a resumed run's EMA is the uninterrupted run's bit for bit.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "resnet/train/trainer.hpp"
#include "test_util.hpp"
#include "trainer_fixtures.hpp"

using namespace resnet;
namespace fs = std::filesystem;
using trainer_fixtures::Halves;

namespace {

// No BatchNorm: a micro-batch's forward does not depend on the other rows, so N pieces of the batch have
// the whole batch's gradient (BatchNorm normalises each piece by its own statistics instead, a different
// function of the batch: its accumulated step is not the large one).
std::shared_ptr<nn::Sequential<float>> bn_free(uint64_t seed) {
  Generator gen(seed);
  auto m = std::make_shared<nn::Sequential<float>>();
  m->push_back(std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(1, 6, 3).padding(1).bias(true), gen));
  m->push_back(std::make_shared<nn::ReLU<float>>());
  m->push_back(std::make_shared<nn::GlobalAvgPool2d<float>>());
  m->push_back(std::make_shared<nn::Linear<float>>(6, 3, true, gen));
  return m;
}

struct Stepper {
  std::shared_ptr<nn::Sequential<float>> model;
  std::shared_ptr<optim::SGD<float>> opt;
  Tensor<double> stats = Tensor<double>::zeros({loss_stats::kSize});
  Tensor<float> targets;
  train::StepParts<float> parts;
  explicit Stepper(uint64_t seed, bool soft = false) : model(bn_free(seed)) {
    opt = std::make_shared<optim::SGD<float>>(model->named_parameters(),
                                              optim::SGDOptions().lr(0.3).momentum(0.9).weight_decay(1e-3));
    parts.net = model.get();
    parts.optimizer = opt.get();
    parts.loss = train::cross_entropy_loss<float>(0.1);
    if (soft) {
      parts.soft_targets = &targets;
      parts.loss = [this](const Tensor<float>& logits, const Tensor<int32_t>&) {
        return soft_cross_entropy(logits, targets);
      };
    }
    parts.stats = &stats;
    parts.device = Device::cpu();
  }
  std::vector<float> flat() const {
    std::vector<float> v;
    for (auto& kv : model->named_parameters())
      for (float f : kv.second.to_vector()) v.push_back(f);
    return v;
  }
};

}  // namespace

TEST_CASE("accumulate: N micro-batches make the large batch's step", "[step]") {
  for (int64_t pieces : {2, 3, 4}) {
    INFO(pieces << " micro-batches of a batch of 10");
    for (bool soft : {false, true}) {
      INFO((soft ? "soft targets (mixup's)" : "labels"));
      Stepper big(5, soft), small(5, soft);
      const train::StepOptions acc = train::StepOptions().accumulate(pieces);
      Generator g(8);
      for (int step = 0; step < 3; ++step) {
        const Tensor<float> x = Tensor<float>::randn({10, 1, 6, 6}, g);
        std::vector<int32_t> labels;
        for (int i = 0; i < 10; ++i) labels.push_back((i * 5 + step) % 3);
        const auto y = Tensor<int32_t>::from_vector(labels, {10});
        if (soft) big.targets = small.targets = train::Mixup(train::MixupOptions(), 3).targets(labels, 0.7);
        const float l1 = train::train_step(big.parts, x, y, 10, 10).item();
        const float l2 = train::train_step(small.parts, acc, x, y, 10, 10).item();
        // The loss scaling: the weighted pieces sum to the batch's mean loss.
        CHECK(std::abs(l1 - l2) < 2e-6f * std::abs(l1));
      }
      // Float rounding of the sums in another order: a few ulps of the weights after three steps.
      const auto c = testing::compare_values(small.flat(), big.flat());
      INFO(c.why);
      CHECK(c.within(2e-6));
      CHECK(small.stats.data()[loss_stats::kEpochSum] ==
            Approx(big.stats.data()[loss_stats::kEpochSum]).epsilon(1e-6));
      if (soft) CHECK(small.targets.dim(0) == 10);  // the whole batch's targets are put back
    }
  }
}

TEST_CASE("clip_grad_norm: the global norm becomes max_norm, the direction stays", "[step]") {
  Stepper s(2);
  Generator g(4);
  const Tensor<float> x = Tensor<float>::randn({6, 1, 6, 6}, g, 0.0, 4.0);
  const auto y = Tensor<int32_t>::from_vector({0, 1, 2, 0, 1, 2}, {6});
  s.opt->zero_grad();
  cross_entropy(s.model->forward(x), y).backward();
  std::vector<float> before;
  double sq = 0;
  for (auto& kv : s.model->named_parameters())
    for (float v : kv.second.grad().to_vector()) {
      before.push_back(v);
      sq += static_cast<double>(v) * v;
    }
  const double norm = std::sqrt(sq);
  REQUIRE(norm > 0.01);
  CHECK(train::clip_grad_norm(s.opt->parameters(), 10 * norm) == Approx(norm).epsilon(1e-5));
  std::vector<float> same;
  for (auto& kv : s.model->named_parameters())
    for (float v : kv.second.grad().to_vector()) same.push_back(v);
  CHECK(same == before);  // under the limit: untouched
  const double max_norm = norm / 4;
  CHECK(train::clip_grad_norm(s.opt->parameters(), max_norm) == Approx(norm).epsilon(1e-5));
  double after = 0;
  size_t i = 0;
  double worst = 0;
  const double coef = max_norm / (norm + 1e-6);
  for (auto& kv : s.model->named_parameters())
    for (float v : kv.second.grad().to_vector()) {
      after += static_cast<double>(v) * v;
      worst = std::max(worst, std::abs(v - coef * before[i++]) / norm);
    }
  CHECK(std::sqrt(after) == Approx(max_norm).epsilon(1e-5));
  CHECK(worst < 1e-6);
  CHECK_THROWS_WITH(train::EagerStep<float>(train::StepOptions().accumulate(0)),
                    Catch::Contains("accumulate"));
  CHECK_THROWS_WITH(train::EagerStep<float>(train::StepOptions().clip_grad_norm(-1)),
                    Catch::Contains("clip"));
}

namespace {

struct Run {
  std::shared_ptr<nn::Sequential<float>> model = trainer_fixtures::small_model(3);
  std::shared_ptr<optim::SGD<float>> opt = std::make_shared<optim::SGD<float>>(
      model->named_parameters(), optim::SGDOptions().lr(0.1).momentum(0.9));
  train::TrainerOptions o;
  explicit Run(const fs::path& out) {
    o.epochs(3);
    o.batch(8);
    o.out_dir(out.string());
    o.seed(5);
    o.workers(0);
    o.progress(false);
    o.handle_signals(false);
    o.step_options(train::StepOptions().accumulate(2).clip_grad_norm(5.0));
  }
  train::FitResult fit(std::vector<std::string>* lines = nullptr) {
    train::Callbacks cb;
    cb.on_log_line = [lines](const std::string& l) {
      if (lines) lines->push_back(l);
    };
    train::Trainer<float> t(model, opt, std::make_shared<Halves>(40), std::make_shared<Halves>(12), o, cb);
    t.set_ema(train::EmaOptions().decay(0.9).warmup(train::EmaWarmup::Power));
    t.set_mixup(train::MixupOptions().mixup_alpha(0.4).cutmix_alpha(1.0).seed(2), 2);
    return t.fit();
  }
};

}  // namespace

TEST_CASE("Trainer: EMA, mixup and step options; a resumed run's EMA is the uninterrupted one's",
          "[step][ema]") {
  const fs::path a = trainer_fixtures::fresh_dir("resnet_test_step_", "full"),
                 b = trainer_fixtures::fresh_dir("resnet_test_step_", "resumed");
  std::vector<std::string> lines;
  Run full(a);
  REQUIRE(full.fit(&lines).status == train::FitStatus::Completed);
  int ema_lines = 0;
  for (auto& l : lines) ema_lines += l.find(" ema_acc: ") != std::string::npos ? 1 : 0;
  CHECK(ema_lines == 3);
  Run first(b);
  first.o.stop_after_epoch(1);
  REQUIRE(first.fit().status == train::FitStatus::StoppedAfterEpoch);
  Run second(b);
  second.o.resume((b / "last.safetensors").string());
  REQUIRE(second.fit().status == train::FitStatus::Completed);
  // The same tensors bit for bit and the same update count (the metadata also holds wall times).
  const auto ra = io::SafetensorsReader::open((a / "last.ema.safetensors").string()),
             rb = io::SafetensorsReader::open((b / "last.ema.safetensors").string());
  CHECK(ra.metadata().at("ema_updates") == "15");
  CHECK(rb.metadata().at("ema_updates") == "15");
  REQUIRE(ra.tensors().size() == rb.tensors().size());
  for (const auto& t : ra.tensors()) {
    INFO(t.name);
    const TensorBase x = ra.read(t.name), y = rb.read(t.name);
    REQUIRE(x.nbytes() == y.nbytes());
    CHECK(std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0);
  }
  // The average differs from the raw weights and loads as a model.
  auto m = trainer_fixtures::small_model(9);
  io::load(*m, (a / "last.ema.safetensors").string());
  CHECK(m->state_dict()[0].second.raw_data() != nullptr);
  CHECK(Tensor<float>(m->state_dict()[0].second).to_vector() !=
        Tensor<float>(full.model->state_dict()[0].second).to_vector());
  // Without the file beside it, the resume says what is missing.
  fs::remove(b / "last.ema.safetensors");
  Run third(b);
  third.o.resume((b / "last.safetensors").string());
  third.o.epochs(4);
  CHECK_THROWS_WITH(third.fit(), Catch::Contains("last.ema.safetensors"));
  fs::remove_all(a);
  fs::remove_all(b);
}
