// Test-time flips and image-size schedules, on values: with flip_tta the Classifier's probabilities are
// the mean of the softmax of the image's and its mirror's logits exactly, and evaluate() reports the loss
// and accuracy of that mean; off, both give today's numbers. The Trainer's batches follow the size schedule
// epoch by epoch, the test set runs at the test size, and a run stopped mid-schedule resumes at the same
// sizes as an uninterrupted one.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "catch.hpp"
#include "resnet/resnet.hpp"
#include "resnet/train/train.hpp"
#include "trainer_fixtures.hpp"

using namespace resnet;

namespace {

// Convolution weights are random, so a model and its input's mirror image give different logits.
std::shared_ptr<nn::Sequential<float>> asymmetric_model(uint64_t seed, int64_t channels, int64_t classes) {
  Generator gen(seed);
  auto m = std::make_shared<nn::Sequential<float>>();
  m->push_back(std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(channels, 4, 3), gen));
  m->push_back(std::make_shared<nn::ReLU<float>>());
  m->push_back(std::make_shared<nn::GlobalAvgPool2d<float>>());
  m->push_back(std::make_shared<nn::Linear<float>>(4, classes, true, gen));
  return m;
}

Tensor<float> random_images(int64_t n, int64_t c, int64_t s, uint64_t seed) {
  data::SampleRng rng(seed);
  std::vector<float> v(static_cast<size_t>(n * c * s * s));
  for (float& x : v) x = static_cast<float>(rng.uniform(-2, 2));
  return Tensor<float>::from_vector(v, {n, c, s, s});
}

// Images of any size: [1, S, S] noise from the sample's generator; records the sizes it was asked for.
class AnySize : public data::Dataset {
 public:
  explicit AnySize(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  Shape sample_shape() const override { return Shape{1, 8, 8}; }
  int32_t label(int64_t i) const override { return static_cast<int32_t>(i % 2); }
  std::string name(int64_t i) const override { return "any#" + std::to_string(i); }
  void load(int64_t i, data::SampleRng& rng, float* out) const override { load_resized(i, 8, rng, out); }
  void load_resized(int64_t i, int size, data::SampleRng& rng, float* out) const override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      sizes_.insert(size);
    }
    for (int k = 0; k < size * size; ++k) out[k] = static_cast<float>(label(i) + rng.uniform(-1, 1));
  }
  std::set<int> sizes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return sizes_;
  }

 private:
  int64_t n_;
  mutable std::mutex mu_;
  mutable std::set<int> sizes_;
};

// The eager step, recording each batch's image size.
class SizeLog : public train::EagerStep<float> {
 public:
  explicit SizeLog(std::vector<int64_t>* sizes) : sizes_(sizes) {}
  void run(const Tensor<float>& x, const Tensor<int32_t>& y, double n, double N) override {
    sizes_->push_back(x.dim(2));
    train::EagerStep<float>::run(x, y, n, N);
  }

 private:
  std::vector<int64_t>* sizes_;
};

class StopAt : public train::Callback {
 public:
  explicit StopAt(int64_t step) : step_(step) {}
  std::string name() const override { return "stop_at"; }
  train::Control on_step_end(const train::StepInfo& s) override {
    return s.step == step_ ? train::Control::Stop : train::Control::Continue;
  }

 private:
  int64_t step_;
};

}  // namespace

TEST_CASE("flip TTA: the Classifier's probabilities are the mean of the two passes exactly", "[tta]") {
  auto model = asymmetric_model(4, 3, 3);
  const Tensor<float> x = random_images(5, 3, 8, 9);
  const std::vector<std::string> names{"a", "b", "c"};
  const Tensor<float> l1 = model->forward(x), l2 = model->forward(infer::flip_images(x));
  float asym = 0;
  for (size_t i = 0; i < 15; ++i) asym = std::max(asym, std::abs(l1.to_vector()[i] - l2.to_vector()[i]));
  REQUIRE(asym > 1e-3f);  // the mirror image gives other logits
  const std::vector<float> p1 = softmax(l1).to_vector(), p2 = softmax(l2).to_vector();

  infer::Classifier tta(model, names, data::eval_transform(8), infer::ClassifierOptions().flip_tta(true));
  const std::vector<float> p = tta.probabilities(x).to_vector(), l = tta.logits(x).to_vector();
  REQUIRE(p.size() == 15);
  for (size_t i = 0; i < p.size(); ++i) {
    CHECK(p[i] == (p1[i] + p2[i]) * 0.5f);
    CHECK(l[i] == std::log(p[i]));
  }
  // Off: today's numbers, the softmax of the model's logits.
  infer::Classifier plain(model, names, data::eval_transform(8));
  CHECK(plain.probabilities(x).to_vector() == p1);
  CHECK(plain.logits(x).to_vector() == l1.to_vector());
}

TEST_CASE("flip TTA: evaluate() reports the loss and accuracy of the mean probabilities", "[tta]") {
  auto model = asymmetric_model(6, 1, 2);
  auto set = std::make_shared<AnySize>(24);
  auto pg = dist::single_process_group();
  // The whole set as one batch, as evaluate() (batch 64, one rank) runs it.
  Tensor<float> x = Tensor<float>::empty({24, 1, 8, 8});
  for (int64_t i = 0; i < 24; ++i) {
    data::SampleRng rng(data::sample_seed(0, 0, i));
    set->load(i, rng, x.data() + i * 64);
  }
  const std::vector<float> a = model->forward(x).to_vector(),
                           b = model->forward(infer::flip_images(x)).to_vector();
  double loss = 0, plain_loss = 0;
  int correct = 0, plain_correct = 0;
  for (int64_t i = 0; i < 24; ++i) {
    const int y = set->label(i);
    double pa[2], pb[2], p[2];
    for (int k = 0; k < 2; ++k) {
      pa[k] = std::exp(static_cast<double>(a[i * 2 + k])) /
              (std::exp(static_cast<double>(a[i * 2])) + std::exp(static_cast<double>(a[i * 2 + 1])));
      pb[k] = std::exp(static_cast<double>(b[i * 2 + k])) /
              (std::exp(static_cast<double>(b[i * 2])) + std::exp(static_cast<double>(b[i * 2 + 1])));
      p[k] = 0.5 * (pa[k] + pb[k]);
    }
    loss -= std::log(p[y]);
    correct += (p[1] > p[0] ? 1 : 0) == y ? 1 : 0;
    plain_loss -= std::log(pa[y]);
    plain_correct += (a[i * 2 + 1] > a[i * 2] ? 1 : 0) == y ? 1 : 0;
  }
  auto eo = train::EvalOptions().workers(0);
  const train::EvalResult off = train::evaluate(*model, set, eo, *pg);
  const train::EvalResult on = train::evaluate(*model, set, eo.flip_tta(true), *pg);
  CHECK(on.correct == correct);
  CHECK(on.loss == Approx(loss / 24).epsilon(1e-9));
  CHECK(off.correct == plain_correct);
  CHECK(off.loss == Approx(plain_loss / 24).epsilon(1e-6));  // float cross-entropy
  CHECK(std::abs(on.loss - off.loss) > 1e-4);                // the flip changed the numbers
}

TEST_CASE("image sizes: the schedule's text, phases and refusals", "[resize]") {
  const auto s = train::ImageSizeSchedule::parse("96@0-9,112@10-19,128@20-");
  CHECK(s.size_at(0) == 96);
  CHECK(s.size_at(9) == 96);
  CHECK(s.size_at(10) == 112);
  CHECK(s.size_at(19) == 112);
  CHECK(s.size_at(20) == 128);
  CHECK(s.size_at(1000) == 128);
  CHECK(s.to_string() == "96@0-9,112@10-19,128@20-");
  CHECK(train::ImageSizeSchedule().phase(3, 64).size_at(2) == 0);  // before the first phase: the set's own
  CHECK(train::ImageSizeSchedule::parse("").empty());
  CHECK_THROWS_WITH(train::ImageSizeSchedule::parse("96@0-9,112@11-"),
                    Catch::Contains("begins at epoch 11, not at 10"));
  CHECK_THROWS_WITH(train::ImageSizeSchedule::parse("96@0-,112@5-"), Catch::Contains("no phase may follow"));
  CHECK_THROWS_WITH(train::ImageSizeSchedule::parse("big@0-"),
                    Catch::Contains("not a non-negative whole number"));
  CHECK_THROWS_WITH(train::ImageSizeSchedule().phase(5, 64).phase(5, 96),
                    Catch::Contains("does not come after"));
  // A dataset of fixed size refuses to resize, by name.
  trainer_fixtures::Halves fixed(4);
  data::SampleRng rng(0);
  std::vector<float> out(16 * 16);
  CHECK_THROWS_WITH(fixed.load_resized(0, 16, rng, out.data()),
                    Catch::Contains("cannot give its samples at another size"));
}

TEST_CASE("image sizes: the Trainer's batches follow the schedule, also across a resume", "[resize]") {
  auto run = [](const std::filesystem::path& out, int64_t stop_at, const std::string& resume,
                std::vector<int64_t>* sizes, std::set<int>* test_sizes) {
    auto model = trainer_fixtures::small_model(3);
    auto opt = std::make_shared<optim::SGD<float>>(model->named_parameters(), optim::SGDOptions().lr(0.05));
    auto test = std::make_shared<AnySize>(6);
    train::TrainerOptions o;
    o.epochs(4);
    o.batch(8);
    o.out_dir(out.string());
    o.seed(2);
    o.workers(0);
    o.progress(false);
    o.handle_signals(false);
    o.resume(resume);
    o.image_sizes(train::ImageSizeSchedule().phase(1, 12).phase(3, 16).test_size(20));
    train::Trainer<float> t(model, opt, std::make_shared<AnySize>(40), test, o);
    t.remove_callback("log");
    t.set_step(std::make_unique<SizeLog>(sizes));
    if (stop_at > 0) t.add_callback(std::make_shared<StopAt>(stop_at));
    const train::FitResult r = t.fit();
    if (test_sizes) *test_sizes = test->sizes();
    return r;
  };
  const auto whole = trainer_fixtures::fresh_dir("resnet_test_resize_", "whole");
  std::vector<int64_t> all;
  std::set<int> test_sizes;
  REQUIRE(run(whole, 0, "", &all, &test_sizes).status == train::FitStatus::Completed);
  std::vector<int64_t> want;
  for (int64_t size : {8, 12, 12, 16}) want.insert(want.end(), 5, size);  // 40 samples, batch 8: 5 steps
  CHECK(all == want);
  CHECK(test_sizes == std::set<int>{20});

  // Stopped at step 8 (epoch 2 of 4, batch 3), resumed: the same sizes from there on.
  const auto parts = trainer_fixtures::fresh_dir("resnet_test_resize_", "parts");
  std::vector<int64_t> first, rest;
  REQUIRE(run(parts, 8, "", &first, nullptr).status == train::FitStatus::Stopped);
  REQUIRE(run(parts, 0, (parts / "last.safetensors").string(), &rest, nullptr).status ==
          train::FitStatus::Completed);
  first.insert(first.end(), rest.begin(), rest.end());
  CHECK(first == want);
  std::filesystem::remove_all(whole);
  std::filesystem::remove_all(parts);
}
