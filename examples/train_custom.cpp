// train_custom: the library's training loop (resnet/train) around a user's own parts: a model (an
// nn::Module), a dataset, an evaluation metric and a callback. Everything above main() is what a user
// writes once; main() is the training code: a model, an optimizer, a Trainer given the parts, fit().
//
//   train_custom [OUT_DIR]           trains until the test accuracy reaches 0.99 (at most 8 epochs)
//   train_custom OUT_DIR --check     the same, then exits 1 unless it learned and the files are there
//
// Under `mpirun -np N` (built with resnet::dist) the same program trains over N ranks.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "resnet/dist/init.hpp"  // dist::init: one process, or a rank under mpirun / srun
#include "resnet/resnet.hpp"

using namespace resnet;

// A dataset: 16x16 images of horizontal (class 0) or vertical (class 1) stripes under noise drawn from the
// loader's per-sample generator (so every epoch sees fresh noise, reproducibly).
class Stripes : public data::Dataset {
 public:
  explicit Stripes(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  Shape sample_shape() const override { return Shape{3, 16, 16}; }
  int32_t label(int64_t i) const override { return static_cast<int32_t>(i % 2); }
  std::string name(int64_t i) const override { return "stripes#" + std::to_string(i); }
  void load(int64_t i, data::SampleRng& rng, float* out) const override {
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 16; ++y)
        for (int x = 0; x < 16; ++x)
          *out++ = static_cast<float>((((label(i) == 0 ? y : x) / 2) % 2 ? 0.5 : -0.5) + rng.uniform(-1, 1));
  }

 private:
  int64_t n_;
};

// A model: layers registered by name (checkpoints call them "conv1.weight", ...), forward() composes them.
class TinyNet : public nn::Module<float> {
 public:
  TinyNet() {
    conv1_ =
        register_module("conv1", std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(3, 8, 3).padding(1)));
    bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d<float>>(8));
    conv2_ = register_module(
        "conv2", std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(8, 16, 3).stride(2).padding(1)));
    bn2_ = register_module("bn2", std::make_shared<nn::BatchNorm2d<float>>(16));
    fc_ = register_module("fc", std::make_shared<nn::Linear<float>>(16, 2));
  }
  Tensor<float> forward(const Tensor<float>& x) override {
    Tensor<float> h = relu(bn1_->forward(conv1_->forward(x)));
    h = relu(bn2_->forward(conv2_->forward(h)));
    return fc_->forward(global_avg_pool(h));
  }
  std::string type_name() const override { return "TinyNet"; }

 private:
  std::shared_ptr<nn::Conv2d<float>> conv1_, conv2_;
  std::shared_ptr<nn::BatchNorm2d<float>> bn1_, bn2_;
  std::shared_ptr<nn::Linear<float>> fc_;
};

// A metric: the mean softmax probability of the true class (how sure the right answers are). Metrics keep
// sums of counts, which the Trainer adds over every rank before values() (train/metrics.hpp).
class TrueClassProbability : public train::Metric {
 public:
  std::string name() const override { return "true_class_prob"; }
  size_t size(int64_t) const override { return 2; }  // sum of probabilities, samples
  void add(const float* logits, const int32_t* labels, int64_t n, int64_t classes,
           double* counts) const override {
    for (int64_t i = 0; i < n; ++i) {
      const float* row = logits + i * classes;
      double top = row[0], sum = 0;
      for (int64_t c = 1; c < classes; ++c) top = std::max(top, static_cast<double>(row[c]));
      for (int64_t c = 0; c < classes; ++c) sum += std::exp(row[c] - top);
      counts[0] += std::exp(row[labels[i]] - top) / sum;
      counts[1] += 1;
    }
  }
  std::vector<double> values(const std::vector<double>& c, int64_t) const override { return {c[0] / c[1]}; }
};

// A callback: stops the run once the test accuracy reaches a target, and keeps the metric's values.
class StopAtAccuracy : public train::Callback {
 public:
  explicit StopAtAccuracy(double target) : target_(target) {}
  std::string name() const override { return "stop_at_accuracy"; }
  train::Control on_epoch_end(const train::EpochEnd& e) override {
    probabilities.push_back(e.eval.metrics.at("true_class_prob").at(0));
    return e.eval.acc >= target_ ? train::Control::Stop : train::Control::Continue;
  }
  std::vector<double> probabilities;  // per epoch

 private:
  double target_;
};

int main(int argc, char** argv) try {
  const std::string out = argc > 1 ? argv[1] : "runs/custom";
  auto group = dist::init();  // one process, or this rank's place under mpirun / srun
  manual_seed(1);
  auto model = std::make_shared<TinyNet>();
  auto optimizer = std::make_shared<optim::SGD<float>>(model->named_parameters(),
                                                       optim::SGDOptions().lr(0.05).momentum(0.9));
  train::TrainerOptions o;
  o.epochs(8);
  o.batch(32);  // global: 32 / N a rank
  o.schedule(train::schedule("cosine", 0.05));
  o.log_every(4);
  o.out_dir(out);
  o.class_names({"horizontal", "vertical"});
  train::Trainer<float> trainer(model, optimizer, std::make_shared<Stripes>(256),
                                std::make_shared<Stripes>(64), o, {}, group);
  trainer.add_metric(std::make_shared<TrueClassProbability>());
  auto stop = std::make_shared<StopAtAccuracy>(0.99);
  trainer.add_callback(stop);
  train::FitResult r = trainer.fit();

  if (argc > 2 && std::string(argv[2]) == "--check") {
    namespace fs = std::filesystem;
    // Chance is a loss of ln 2 = 0.69 and an accuracy of 0.5.
    const bool learned = !r.history.empty() && r.history.back().train_loss < 0.5 && r.best_acc >= 0.9;
    const bool files = fs::exists(out + "/last.safetensors") && fs::exists(out + "/metrics.csv") &&
                       fs::exists(out + "/curves.svg");
    const bool metric = !stop->probabilities.empty() && stop->probabilities.size() == r.history.size() &&
                        stop->probabilities.back() > 0.5 && stop->probabilities.back() <= 1.0;
    if (group->rank() == 0)
      std::printf(
          "check: %s after %zu epochs, train loss %.3f, best test accuracy %.3f, true-class "
          "probability %.3f, files %s\n",
          r.status == train::FitStatus::Stopped ? "stopped" : "ran", r.history.size(),
          r.history.empty() ? 0.0 : r.history.back().train_loss, r.best_acc,
          stop->probabilities.empty() ? 0.0 : stop->probabilities.back(), files ? "written" : "MISSING");
    if (!learned || !files || !metric) return 1;
  }
  return r.exit_code();
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_custom: error: %s\n", e.what());
  return 1;
}
