// The Trainer as parts: a loss and metrics passed in change what is reported, a callback sees every epoch
// and stops the run by returning Control::Stop, the default outputs can be dropped, and a step strategy a
// test installs makes a loss non-finite (the seam fault injection goes through).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "resnet/resnet.hpp"
#include "resnet/train/train.hpp"
#include "test_util.hpp"
#include "trainer_fixtures.hpp"

using namespace resnet;
namespace fs = std::filesystem;
using trainer_fixtures::Halves;
using trainer_fixtures::small_model;

namespace {

fs::path fresh_dir(const std::string& name) {
  return trainer_fixtures::fresh_dir("resnet_test_parts_", name);
}

// Records what the Trainer tells its callbacks; asks to stop at a given step or epoch end.
class Recorder : public train::Callback {
 public:
  std::string name() const override { return "recorder"; }
  bool wants_step_loss() const override { return true; }
  train::Control on_step_end(const train::StepInfo& s) override {
    steps.push_back(s);
    return s.step == stop_at_step ? train::Control::Stop : train::Control::Continue;
  }
  train::Control on_epoch_end(const train::EpochEnd& e) override {
    epochs.push_back(e);
    history_sizes.push_back(e.history ? e.history->size() : 0);  // the pointer lives only during the call
    return e.row.epoch == stop_at_epoch ? train::Control::Stop : train::Control::Continue;
  }
  void on_log_line(const std::string& l) override { lines.push_back(l); }
  void on_halt(const train::Halt& h) override { halts.push_back(h); }
  std::vector<train::StepInfo> steps;
  std::vector<train::EpochEnd> epochs;
  std::vector<size_t> history_sizes;
  std::vector<std::string> lines;
  std::vector<train::Halt> halts;
  int64_t stop_at_step = -1, stop_at_epoch = -1;
};

// A user's own metric: the share of samples predicted as class 1.
class PredictedOne : public train::Metric {
 public:
  std::string name() const override { return "predicted_one"; }
  size_t size(int64_t) const override { return 2; }
  void add(const float* logits, const int32_t*, int64_t n, int64_t classes, double* c) const override {
    for (int64_t i = 0; i < n; ++i) {
      c[0] += logits[i * classes + 1] > logits[i * classes] ? 1 : 0;
      c[1] += 1;
    }
  }
  std::vector<double> values(const std::vector<double>& c, int64_t) const override { return {c[0] / c[1]}; }
};

struct Parts {
  std::shared_ptr<nn::Sequential<float>> model = small_model(3);
  std::shared_ptr<optim::SGD<float>> opt = std::make_shared<optim::SGD<float>>(
      model->named_parameters(), optim::SGDOptions().lr(0.1).momentum(0.9));
  train::TrainerOptions o;
  std::shared_ptr<Recorder> rec = std::make_shared<Recorder>();

  explicit Parts(const fs::path& out, int64_t epochs = 2) : o(trainer_fixtures::quiet_options(out, epochs)) {}
  std::unique_ptr<train::Trainer<float>> trainer() {
    auto t = std::make_unique<train::Trainer<float>>(model, opt, std::make_shared<Halves>(40),
                                                     std::make_shared<Halves>(12), o);
    t->remove_callback("log");  // the lines go to the recorder alone
    t->add_callback(rec);
    return t;
  }
};

// The test seam for a non-finite loss as a step strategy: the eager step, its loss made NaN at step k.
class NanAtStep : public train::EagerStep<float> {
 public:
  explicit NanAtStep(int64_t k) : k_(k) {}
  void bind(const train::StepParts<float>& parts) override {
    train::StepParts<float> p = parts;
    p.loss = [this, inner = parts.loss](const Tensor<float>& logits, const Tensor<int32_t>& labels) {
      Tensor<float> l = inner(logits, labels);
      return ++calls_ == k_ ? scale(l, std::nan("")) : l;
    };
    train::EagerStep<float>::bind(p);
  }

 private:
  int64_t k_, calls_ = 0;
};

// Everything written to stderr while it lives goes to a file (the Trainer's stop messages).
class StderrToFile {
 public:
  explicit StderrToFile(const fs::path& file) : file_(file) {
    std::fflush(stderr);
    saved_ = ::dup(2);
    FILE* f = std::fopen(file.c_str(), "w");
    ::dup2(::fileno(f), 2);
    std::fclose(f);
  }
  ~StderrToFile() { restore(); }
  std::string text() {
    restore();
    std::ifstream in(file_);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }
  fs::path file_;
  int saved_ = -1;
};

}  // namespace

TEST_CASE("a loss passed in is what the steps report", "[trainer][parts]") {
  set_num_threads(1);
  const fs::path a = fresh_dir("ce"), b = fresh_dir("double");
  Parts plain(a), doubled(b);
  REQUIRE(plain.trainer()->fit().status == train::FitStatus::Completed);
  auto t = doubled.trainer();
  t->set_loss([](const Tensor<float>& logits, const Tensor<int32_t>& labels) {
    return scale(cross_entropy(logits, labels), 2.0);
  });
  REQUIRE(t->fit().status == train::FitStatus::Completed);
  REQUIRE(plain.rec->steps.size() == 10);
  REQUIRE(doubled.rec->steps.size() == 10);
  // The same weights and batch at step 1: twice the loss (the updates differ from there on).
  CHECK(doubled.rec->steps[0].loss == Approx(2 * plain.rec->steps[0].loss).epsilon(1e-6));
  // The epoch's av_train_loss is the mean of the custom loss over its steps.
  double sum = 0;
  for (int i = 0; i < 5; ++i) sum += doubled.rec->steps[static_cast<size_t>(i)].loss;
  CHECK(doubled.rec->epochs[0].row.train_loss == Approx(sum / 5).epsilon(1e-9));
  CHECK(doubled.rec->epochs[0].row.train_loss != Approx(plain.rec->epochs[0].row.train_loss));
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST_CASE("metrics passed in: top-k, per-class accuracy, a confusion matrix and a user's own",
          "[trainer][parts]") {
  set_num_threads(1);
  const fs::path d = fresh_dir("metrics");
  Parts p(d);
  auto t = p.trainer();
  t->add_metric(std::make_shared<train::TopKAccuracy>(1));
  t->add_metric(std::make_shared<train::TopKAccuracy>(2));  // k = the number of classes
  t->add_metric(std::make_shared<train::PerClassAccuracy>());
  t->add_metric(std::make_shared<train::ConfusionMatrix>());
  t->add_metric(std::make_shared<PredictedOne>());
  REQUIRE(t->fit().status == train::FitStatus::Completed);
  REQUIRE(p.rec->epochs.size() == 2);
  for (const train::EpochEnd& e : p.rec->epochs) {
    const auto& m = e.eval.metrics;
    REQUIRE(m.size() == 5);
    CHECK(e.eval.classes == 2);
    CHECK(m.at("top2_acc") == std::vector<double>{1.0});
    CHECK(m.at("top1_acc")[0] == Approx(e.eval.acc));
    const std::vector<double>& cm = m.at("confusion");
    REQUIRE(cm.size() == 4);
    CHECK(cm[0] + cm[1] + cm[2] + cm[3] == 12);  // every evaluated image once
    CHECK(e.eval.images == 12);
    const std::vector<double>& per_class = m.at("per_class_acc");
    REQUIRE(per_class.size() == 2);
    CHECK(per_class[0] == Approx(cm[0] / (cm[0] + cm[1])));
    CHECK(per_class[1] == Approx(cm[3] / (cm[2] + cm[3])));
    CHECK((cm[0] + cm[3]) / 12 == Approx(e.eval.acc));
    CHECK(m.at("predicted_one")[0] == Approx((cm[1] + cm[3]) / 12));
  }
  // One-number metrics get a log line of their own after the accuracy.
  const std::vector<std::string>& l = p.rec->lines;
  auto at = std::find(l.begin(), l.end(), "epoch 1 top2_acc: 1.000");
  REQUIRE(at != l.end());
  CHECK(std::find(l.begin(), l.end(), "epoch 1 per_class_acc: 1.000") == l.end());
  fs::remove_all(d);
}

TEST_CASE("a callback sees every epoch and stops the run by returning Stop", "[trainer][parts]") {
  set_num_threads(1);
  const fs::path d = fresh_dir("stop_epoch"), e = fresh_dir("stop_step");
  Parts p(d, 4);
  p.rec->stop_at_epoch = 2;
  const train::FitResult r = p.trainer()->fit();
  CHECK(r.status == train::FitStatus::Stopped);
  CHECK(r.epochs_done == 2);
  CHECK(r.steps == 10);
  REQUIRE(p.rec->epochs.size() == 2);
  CHECK(p.rec->epochs[0].row.epoch == 1);
  CHECK(p.rec->epochs[1].row.epoch == 2);
  CHECK(p.rec->history_sizes == std::vector<size_t>{1, 2});
  REQUIRE(p.rec->halts.size() == 1);
  CHECK(p.rec->halts[0].status == train::FitStatus::Stopped);
  CHECK(io::read_training_state((d / "last.safetensors").string()).epoch == 2);

  Parts q(e, 4);  // a stop at step 3 ends the run after that step, mid-epoch
  q.rec->stop_at_step = 3;
  const train::FitResult s = q.trainer()->fit();
  CHECK(s.status == train::FitStatus::Stopped);
  CHECK(s.steps == 3);
  CHECK(s.epochs_done == 0);
  CHECK(q.rec->steps.size() == 3);
  CHECK(q.rec->epochs.empty());
  const io::TrainingState st = io::read_training_state((e / "last.safetensors").string());
  CHECK(st.step == 3);
  CHECK(st.extra.at("samples_in_epoch") == "24");
  fs::remove_all(d);
  fs::remove_all(e);
}

TEST_CASE("dropping the default callbacks writes no files; dropping one drops its file", "[trainer][parts]") {
  set_num_threads(1);
  const fs::path d = fresh_dir("silent"), e = fresh_dir("no_csv");
  Parts p(d);
  auto t = p.trainer();
  t->clear_callbacks();
  t->add_callback(p.rec);
  REQUIRE(t->fit().status == train::FitStatus::Completed);
  CHECK(p.rec->epochs.size() == 2);
  CHECK_FALSE(fs::exists(d));

  Parts q(e);
  auto u = q.trainer();
  u->remove_callback("csv");
  REQUIRE(u->fit().status == train::FitStatus::Completed);
  CHECK_FALSE(fs::exists(e / "metrics.csv"));
  CHECK(fs::exists(e / "curves.svg"));
  CHECK(fs::exists(e / "last.safetensors"));
  testing::require_error_mentions([&] { u->replace_callback("nothing", q.rec); }, {"no callback named"});
  fs::remove_all(e);
}

TEST_CASE("a step strategy installed by a test makes a loss NaN: the run stops before the update",
          "[trainer][parts]") {
  set_num_threads(1);
  const fs::path d = fresh_dir("nan_step");
  Parts p(d);
  auto t = p.trainer();
  t->set_step(std::make_unique<NanAtStep>(7));  // epoch 2, batch 2
  const fs::path err = fs::temp_directory_path() / ("resnet_test_parts_err_" + std::to_string(::getpid()));
  StderrToFile capture(err);
  const train::FitResult r = t->fit();
  const std::string message = capture.text();
  fs::remove(err);
  CHECK(message.find("train: error: the loss is NaN at epoch 2, batch 2 (step 7); stopped without saving: "
                     "the last good checkpoint is " +
                     (d / "last.safetensors").string() + " (epoch 1)") != std::string::npos);
  CHECK(r.status == train::FitStatus::NonFinite);
  CHECK(r.exit_code() == 3);
  CHECK(r.steps == 6);
  CHECK(r.epochs_done == 1);
  REQUIRE(p.rec->halts.size() == 1);
  CHECK(p.rec->halts[0].status == train::FitStatus::NonFinite);
  const io::TrainingState st = io::read_training_state((d / "last.safetensors").string());
  CHECK(st.epoch == 1);  // epoch 1's last, untouched
  CHECK(st.step == 5);
  CHECK(p.opt->step_state().data()[optim_state::kSkip] == 1);
  // metrics.csv holds epoch 1 only, and last's weights give epoch 1's test accuracy again.
  REQUIRE(tools::read_metrics_csv((d / "metrics.csv").string()).size() == 1);
  auto again = small_model(3);
  io::load(*again, (d / "last.safetensors").string());
  auto eo = train::EvalOptions().batch(8).workers(0);
  dist::SingleProcessGroup one(Device::cpu());
  CHECK(train::evaluate(*again, std::make_shared<Halves>(12), eo, one).acc == p.rec->epochs[0].eval.acc);
  fs::remove_all(d);
}
