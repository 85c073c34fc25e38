// The Trainer's own logic (resnet/train): exact resume, the global batch split, rank-0-only output,
// sharded data and evaluation, the decisions all ranks take together, the NaN stop. Multi-rank behaviour
// is exercised in one process with groups that stand in for peers: a mirror world (every rank holds what
// this one holds), a recording world (the reductions are this rank's share alone) and a world with one
// scripted peer.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
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

std::vector<float> flat_state(const nn::Module<float>& m) {
  std::vector<float> out;
  for (auto& kv : m.state_dict()) {
    if (kv.second.dtype() != DType::F32) continue;
    std::vector<float> v = Tensor<float>(kv.second).contiguous().to_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

fs::path fresh_dir(const std::string& name) {
  return trainer_fixtures::fresh_dir("resnet_test_trainer_", name);
}

// A world of `size` ranks that all hold exactly what this one holds: Sum multiplies by size, Average and
// broadcast are the identity.
class MirrorGroup : public dist::ProcessGroup {
 public:
  MirrorGroup(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend_name() const override { return "mirror"; }
  Device device() const override { return Device::cpu(); }
  int barriers = 0;

 protected:
  void do_all_reduce(TensorBase& t, dist::ReduceOp op) override {
    if (op == dist::ReduceOp::Average) return;
    if (t.dtype() == DType::F64) {
      Tensor<double> d(t);
      for (int64_t i = 0; i < d.numel(); ++i) d.data()[i] *= size_;
    } else {
      Tensor<float> f(t);
      for (int64_t i = 0; i < f.numel(); ++i) f.data()[i] *= static_cast<float>(size_);
    }
  }
  void do_broadcast(TensorBase&, int) override {}
  void do_all_gather(const TensorBase&, TensorBase&) override { FAIL("all_gather is not used"); }
  void do_barrier() override { ++barriers; }

 private:
  int rank_, size_;
};

// Rank `rank` of `size` whose reductions see only this rank's values (the peers contribute zeros), and
// which records every host reduction.
class RecordingGroup : public MirrorGroup {
 public:
  using MirrorGroup::MirrorGroup;
  std::vector<std::vector<double>> seen;

 protected:
  void do_all_reduce(TensorBase& t, dist::ReduceOp) override {
    if (t.dtype() == DType::F64) seen.push_back(Tensor<double>(t).to_vector());
  }
};

// Rank 0 of 2 whose peer adds `peer` to every host reduction of the same length.
class PeerGroup : public MirrorGroup {
 public:
  explicit PeerGroup(std::vector<double> peer) : MirrorGroup(0, 2), peer_(std::move(peer)) {}

 protected:
  void do_all_reduce(TensorBase& t, dist::ReduceOp) override {
    Tensor<double> d(t);
    if (static_cast<size_t>(d.numel()) != peer_.size()) return;
    for (int64_t i = 0; i < d.numel(); ++i) d.data()[i] += peer_[static_cast<size_t>(i)];
  }

 private:
  std::vector<double> peer_;
};

// What one rank contributes to agree_step for `v` (its encoding, as a peer would send it).
std::vector<double> encoded(const train::StepVote& v) {
  RecordingGroup rec(1, 2);
  try {
    train::agree_step(rec, v);
  } catch (const Error&) {  // alone, a rank with a batch looks out of step with its silent peer
  }
  REQUIRE(rec.seen.size() == 1);
  return rec.seen[0];
}

struct Run {
  std::shared_ptr<nn::Sequential<float>> model;
  std::shared_ptr<optim::SGD<float>> opt;
  train::TrainerOptions o;
  std::vector<std::string> lines;
  std::vector<train::StepInfo> steps;
  train::Callbacks cb;
  std::function<void(train::Trainer<float>&)> parts;  // installs parts (loss, metrics, callbacks) before fit

  Run(const fs::path& out, uint64_t model_seed) {
    model = small_model(model_seed);
    opt = std::make_shared<optim::SGD<float>>(model->named_parameters(),
                                              optim::SGDOptions().lr(0.1).momentum(0.9));
    o = trainer_fixtures::quiet_options(out)
            .schedule(train::schedule("onecycle", 0.1))
            .schedule_name("onecycle")
            .class_names({"a", "b"});
    cb.on_log_line = [this](const std::string& l) { lines.push_back(l); };
    cb.on_step_end = [this](const train::StepInfo& s) { steps.push_back(s); };
  }
  train::FitResult fit(std::shared_ptr<dist::ProcessGroup> pg = nullptr, int64_t n_train = 40) {
    train::Trainer<float> t(model, opt, std::make_shared<Halves>(n_train), std::make_shared<Halves>(12), o,
                            cb, std::move(pg));
    if (parts) parts(t);
    return t.fit();
  }
};

// The test seam for a non-finite loss: cross-entropy, NaN at the k-th training step (one rank, eager: the
// loss is called once a step).
train::LossFn<float> nan_at_step(int64_t k) {
  auto calls = std::make_shared<int64_t>(0);
  return [calls, k](const Tensor<float>& logits, const Tensor<int32_t>& labels) {
    Tensor<float> l = cross_entropy(logits, labels);
    return ++*calls == k ? scale(l, std::nan("")) : l;
  };
}

}  // namespace

TEST_CASE("a run stopped mid-epoch and resumed ends exactly where an uninterrupted one does", "[trainer]") {
  set_num_threads(1);
  const fs::path a = fresh_dir("full"), b = fresh_dir("resumed");
  Run full(a, 11);
  train::FitResult ra = full.fit();
  REQUIRE(ra.status == train::FitStatus::Completed);
  REQUIRE(ra.steps == 10);  // 40 samples, batch 8: 5 steps an epoch
  CHECK(fs::exists(a / "last.safetensors"));
  CHECK(fs::exists(a / "metrics.csv"));
  CHECK(fs::exists(a / "curves.svg"));
  CHECK(ra.best_epoch >= 1);

  Run first(b, 11);
  first.cb.should_stop = [&first] {
    return first.steps.size() == 6;
  };  // true during step 7 (epoch 2, batch index 1)
  train::FitResult r1 = first.fit();
  REQUIRE(r1.status == train::FitStatus::Stopped);
  CHECK(r1.steps == 7);
  CHECK(r1.exit_code() == 0);

  Run second(b, 999);  // other initial weights: everything must come from the checkpoint
  second.o.resume((b / "last.safetensors").string());
  train::FitResult r2 = second.fit();
  REQUIRE(r2.status == train::FitStatus::Completed);
  CHECK(r2.steps == 10);
  REQUIRE(!second.steps.empty());
  CHECK(second.steps.front().epoch == 1);
  CHECK(second.steps.front().batch == 2);
  testing::Comparison c = testing::compare_values(flat_state(*second.model), flat_state(*full.model), 0);
  INFO("resumed vs uninterrupted parameters: " << c.why);
  CHECK(c.error == 0);
  // The seed's lines after the resume are the uninterrupted run's.
  std::vector<std::string> tail(full.lines.end() - static_cast<long>(second.lines.size() - 1),
                                full.lines.end());
  std::vector<std::string> got(second.lines.begin() + 1, second.lines.end());  // skip "resuming ..."
  for (size_t i = 0; i + 1 < got.size(); ++i) CHECK(got[i] == tail[i]);        // the last line has a time
  REQUIRE(r2.history.size() == 2);
  CHECK(r2.history[1].train_loss == ra.history[1].train_loss);
  CHECK(r2.history[1].test_acc == ra.history[1].test_acc);
  fs::remove_all(a);
  fs::remove_all(b);
}

// A finished run resumed as it is reports its epochs; resumed longer, its schedule must say how it goes on:
// without schedule_epochs the rate would jump under the resumed step, and a finished cosine would hold 0.
TEST_CASE("a finished run: its epochs when resumed as is, and the rules for making it longer", "[trainer]") {
  set_num_threads(1);
  const fs::path d = fresh_dir("lengthen"), e = fresh_dir("lengthen_onecycle");
  auto cosine = [](Run& r) {
    r.o.schedule(train::schedule(optim::ScheduleOptions().kind(optim::ScheduleKind::Cosine).base_lr(0.1)));
    r.o.schedule_name("cosine");
  };
  Run first(d, 11);
  cosine(first);
  REQUIRE(first.fit().status == train::FitStatus::Completed);
  const std::string last = (d / "last.safetensors").string();

  Run again(d, 11);
  cosine(again);
  again.o.resume(last);
  const train::FitResult done = again.fit();
  CHECK(done.status == train::FitStatus::AlreadyComplete);
  CHECK(done.epochs_done == 2);
  CHECK(done.history.size() == 2);
  CHECK(done.steps == 10);

  Run longer(d, 11);
  cosine(longer);
  longer.o.epochs(3);
  longer.o.resume(last);
  testing::require_error_mentions([&] { longer.fit(); },
                                  {last, "is a run of 2 epochs", "ask for 3", "set schedule_epochs to 2"});
  longer.o.schedule_epochs(2);
  testing::require_error_mentions(
      [&] { longer.fit(); },
      {last, "finished its cosine schedule, whose last learning rate is 0", "io::load"});
  CHECK(longer.steps.empty());

  // One-cycle ends above 0: the added epoch holds its last rate.
  Run oc(e, 11);
  REQUIRE(oc.fit().status == train::FitStatus::Completed);
  Run more(e, 11);
  more.o.epochs(3);
  more.o.schedule_epochs(2);
  more.o.resume((e / "last.safetensors").string());
  const train::FitResult r3 = more.fit();
  CHECK(r3.status == train::FitStatus::Completed);
  CHECK(r3.epochs_done == 3);
  CHECK(r3.history.size() == 3);
  const double held =
      optim::make_schedule(
          optim::ScheduleOptions().kind(optim::ScheduleKind::OneCycle).base_lr(0.1).total_steps(10))
          ->lr(9);
  REQUIRE(more.steps.size() == 5);
  CHECK(held == Approx(0.1 / 25 / 1e4));
  for (const auto& s : more.steps) CHECK(s.lr == held);
  fs::remove_all(d);
  fs::remove_all(e);
}

TEST_CASE("eval_every tests after every Nth epoch and after the last; the others have no test values",
          "[trainer]") {
  Run r(fresh_dir("eval_every"), 11);
  r.o.epochs(3).eval_every(2);
  const train::FitResult res = r.fit();
  REQUIRE(res.history.size() == 3);
  CHECK(std::isnan(res.history[0].test_acc));
  CHECK(std::isnan(res.history[0].test_loss));
  CHECK(std::isfinite(res.history[1].test_acc));
  CHECK(std::isfinite(res.history[2].test_acc));
  CHECK((res.best_epoch == 2 || res.best_epoch == 3));
  auto has = [&](const std::string& text) {
    for (const auto& l : r.lines)
      if (l.find(text) != std::string::npos) return true;
    return false;
  };
  CHECK_FALSE(has("epoch 1 av_test_acc"));
  CHECK(has("epoch 2 av_test_acc"));
  CHECK(has("epoch 3 av_test_acc"));
  Run bad(fresh_dir("eval_every_0"), 11);
  bad.o.eval_every(0);
  CHECK_THROWS_WITH(bad.fit(), Catch::Contains("eval_every must be at least 1, got 0"));
}

TEST_CASE("the global batch must split evenly over the ranks", "[trainer]") {
  const fs::path d = fresh_dir("split");
  Run r(d, 1);
  r.o.batch(9);
  testing::require_error_mentions([&] { r.fit(std::make_shared<MirrorGroup>(0, 2)); },
                                  {"global batch 9", "2 ranks"});
  r.o.batch(3);
  testing::require_error_mentions([&] { r.fit(std::make_shared<MirrorGroup>(0, 4)); },
                                  {"global batch 3", "4 ranks"});
  CHECK_FALSE(fs::exists(d));
}

TEST_CASE("only rank 0 prints and writes; every rank trains the same and meets at the end", "[trainer]") {
  set_num_threads(1);
  const fs::path d0 = fresh_dir("rank0"), d1 = fresh_dir("rank1");
  Run r0(d0, 3), r1(d1, 3);
  auto g0 = std::make_shared<MirrorGroup>(0, 2), g1 = std::make_shared<MirrorGroup>(1, 2);
  train::FitResult a = r0.fit(g0), b = r1.fit(g1);
  CHECK(a.status == train::FitStatus::Completed);
  CHECK(b.status == train::FitStatus::Completed);
  CHECK_FALSE(fs::exists(d1));  // rank 1 wrote nothing, not even the folder
  CHECK(r1.lines.empty());
  CHECK(fs::exists(d0 / "last.safetensors"));
  CHECK(fs::exists(d0 / "metrics.csv"));
  CHECK(r0.lines.size() >= 6);
  CHECK(g1->barriers >= 1);
  // Each rank trained on a different half of each global batch, so the runs differ; steps and epochs agree.
  CHECK(a.steps == b.steps);
  CHECK(b.history.size() == 2);         // every rank keeps the metrics it does not write
  CHECK(r0.steps.front().images == 8);  // the global batch (4 a rank, mirrored)
  fs::remove_all(d0);
}

TEST_CASE("a run saved by 2 ranks resumes on 1 at the same global sample", "[trainer]") {
  set_num_threads(1);
  const fs::path d = fresh_dir("n_to_m");
  Run two(d, 4);
  two.cb.should_stop = [&two] { return two.steps.size() == 2; };  // true during step 3
  REQUIRE(two.fit(std::make_shared<MirrorGroup>(0, 2)).status == train::FitStatus::Stopped);
  const io::TrainingState st = io::read_training_state((d / "last.safetensors").string());
  CHECK(st.step == 3);
  CHECK(st.extra.at("samples_in_epoch") == "24");
  CHECK(st.extra.at("world_size") == "2");
  Run one(d, 77);
  one.o.resume((d / "last.safetensors").string());
  train::FitResult r = one.fit();
  CHECK(r.status == train::FitStatus::Completed);
  REQUIRE(!one.steps.empty());
  CHECK(one.steps.front().batch == 3);
  CHECK(one.steps.front().step == 4);
  CHECK(r.steps == 10);
  // Another global batch is another recipe.
  Run other(d, 77);
  other.o.resume((d / "last.safetensors").string());
  other.o.batch(4);
  testing::require_error_mentions([&] { other.fit(); }, {"global batch 8, not 4"});
  fs::remove_all(d);
}

TEST_CASE("shards cover every global batch exactly once at any world size", "[trainer]") {
  for (int64_t n : {10, 17, 33})
    for (int w = 1; w <= 5; ++w) {
      const int64_t batch = 2 * w;
      for (bool drop : {true, false}) {
        const int64_t g = train::global_batches(n, batch, w, drop);
        std::vector<int64_t> order = data::epoch_permutation(n, 3, 1);
        std::multiset<int64_t> all;
        std::vector<std::vector<int64_t>> shards;
        for (int r = 0; r < w; ++r) shards.push_back(train::shard_of(order, batch, 0, g, r, w));
        for (int64_t j = 0; j < g; ++j) {
          std::multiset<int64_t> got,
              want(order.begin() + j * batch, order.begin() + std::min(n, (j + 1) * batch));
          for (int r = 0; r < w; ++r) {
            const auto& s = shards[static_cast<size_t>(r)];
            for (int64_t k = j * (batch / w); k < std::min<int64_t>(s.size(), (j + 1) * (batch / w)); ++k)
              got.insert(s[static_cast<size_t>(k)]);
          }
          INFO("n " << n << " world " << w << " batch " << j);
          CHECK(got == want);
          all.insert(want.begin(), want.end());
        }
        CHECK(static_cast<int64_t>(all.size()) == (drop ? (n / batch) * batch : std::min(n, g * batch)));
        CHECK(std::set<int64_t>(all.begin(), all.end()).size() == all.size());  // nothing twice
      }
    }
}

TEST_CASE("sharded evaluation counts every test sample exactly once", "[trainer]") {
  set_num_threads(1);
  auto model = small_model(9);
  auto set = std::make_shared<Halves>(11);
  auto eo = train::EvalOptions().batch(4).workers(0);
  dist::SingleProcessGroup one;
  const train::EvalResult all = train::evaluate(*model, set, eo, one);
  CHECK(all.images == 11);
  RecordingGroup g0(0, 2), g1(1, 2);
  const train::EvalResult e0 = train::evaluate(*model, set, eo, g0),
                          e1 = train::evaluate(*model, set, eo, g1);
  CHECK(e0.images == 6);
  CHECK(e1.images == 5);
  CHECK(e0.correct + e1.correct == all.correct);
  const double merged = (e0.loss * 6 + e1.loss * 5) / 11;
  CHECK(testing::check_close("sharded eval loss", std::vector<double>{merged}, std::vector<double>{all.loss},
                             1e-6));
  // A world larger than the set: the ranks without samples still take part, and the mirror sums hold.
  RecordingGroup g11(11, 12);  // holds position 11 of 11: nothing
  CHECK_THROWS_WITH(train::evaluate(*model, set, eo, g11), Catch::Contains("no readable images"));
  CHECK(g11.seen.size() == 1);
  MirrorGroup m(0, 2);
  const train::EvalResult em = train::evaluate(*model, set, eo, m);
  CHECK(em.images == 12);  // 6 mirrored
}

TEST_CASE("ranks agree on the end of an epoch, a NaN and a stop, and refuse to drift apart", "[trainer]") {
  train::StepVote mine;
  mine.has_batch = true;
  mine.batch_index = 2;
  mine.loss = 1.0;
  mine.samples = 4;
  train::StepVote peer = mine;
  peer.loss = 3.0;
  peer.stop = true;
  PeerGroup same(encoded(peer));
  train::StepAgreement a = train::agree_step(same, mine);
  CHECK(a.any_batch);
  CHECK(a.loss == 2.0);
  CHECK(a.samples == 8);
  CHECK(a.stop);
  CHECK_FALSE(a.interrupt);

  peer.loss = std::nan("");
  PeerGroup nan_peer(encoded(peer));
  CHECK(std::isnan(train::agree_step(nan_peer, mine).loss));

  peer = mine;
  peer.batch_index = 3;
  PeerGroup ahead(encoded(peer));
  testing::require_error_mentions([&] { train::agree_step(ahead, mine); }, {"out of step", "rank 0"});
  peer.has_batch = false;
  PeerGroup done(encoded(peer));
  testing::require_error_mentions([&] { train::agree_step(done, mine); }, {"1 of 2 ranks have a batch"});
  mine.has_batch = false;
  CHECK_FALSE(train::agree_step(done, mine).any_batch);

  // Before a communicating forward (SyncBatchNorm): the same batch everywhere, or none anywhere.
  PeerGroup peer_same({1, 2, 4}), peer_ahead({1, 3, 9}), peer_none({0, -1, 1});
  CHECK(train::agree_batch(peer_same, true, 2));
  testing::require_error_mentions([&] { train::agree_batch(peer_ahead, true, 2); }, {"out of step"});
  testing::require_error_mentions([&] { train::agree_batch(peer_none, true, 2); },
                                  {"1 of 2 ranks have a batch"});
  CHECK_FALSE(train::agree_batch(peer_none, false, 0));
}

TEST_CASE("a non-finite loss stops every rank before the update, keeping the last good checkpoint",
          "[trainer]") {
  set_num_threads(1);
  const fs::path d = fresh_dir("nan");
  Run r(d, 2);
  r.parts = [](train::Trainer<float>& t) { t.set_loss(nan_at_step(7)); };
  train::FitResult res = r.fit();
  CHECK(res.status == train::FitStatus::NonFinite);
  CHECK(res.exit_code() == 3);
  CHECK(res.steps == 6);
  const io::TrainingState st = io::read_training_state((d / "last.safetensors").string());
  CHECK(st.epoch == 1);  // epoch 1's last, untouched
  CHECK(st.step == 5);
  fs::remove_all(d);
}

TEST_CASE("the loss stays on the device: a NaN is found at the next read and no update after it lands",
          "[trainer]") {
  // No per-step callback and no log line before the epoch's end: the loss is read once, at the end of
  // epoch 2. Step 7's loss is NaN (the loss the test installs); steps 8-10 have finite losses but must be
  // skipped too, so the weights are exactly those after step 6.
  set_num_threads(1);
  const fs::path d = fresh_dir("nan_deferred"), e = fresh_dir("six_steps");
  Run r(d, 2);
  r.cb.on_step_end = nullptr;
  r.o.log_every(100);
  r.parts = [](train::Trainer<float>& t) { t.set_loss(nan_at_step(7)); };
  train::FitResult res = r.fit();
  CHECK(res.status == train::FitStatus::NonFinite);
  CHECK(res.exit_code() == 3);
  CHECK(res.steps == 6);
  const io::TrainingState st = io::read_training_state((d / "last.safetensors").string());
  CHECK(st.epoch == 1);
  CHECK(st.step == 5);
  CHECK(r.opt->step_state().data()[optim_state::kSkip] == 1);  // set on the device by the NaN step

  Run six(e, 2);  // the same run stopped after step 6
  six.o.log_every(100);
  six.cb.should_stop = [&six] { return six.steps.size() == 5; };  // true during step 6
  REQUIRE(six.fit().status == train::FitStatus::Stopped);
  auto pa = r.model->named_parameters(), pb = six.model->named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].first);
    CHECK(pa[i].second.to_vector() == pb[i].second.to_vector());  // bit for bit
  }
  fs::remove_all(d);
  fs::remove_all(e);
}

TEST_CASE("the loss read at log lines gives the same lines and epoch losses as reading every step",
          "[trainer]") {
  set_num_threads(1);
  const fs::path a = fresh_dir("every_step"), b = fresh_dir("log_lines");
  Run every(a, 3);  // on_step_end set: the loss is read every step
  REQUIRE(every.fit().status == train::FitStatus::Completed);
  Run lines(b, 3);
  lines.cb.on_step_end = nullptr;  // read only at log lines and epoch ends
  REQUIRE(lines.fit().status == train::FitStatus::Completed);
  REQUIRE(lines.lines.size() == every.lines.size());
  REQUIRE(!lines.lines.empty());
  // Every line but the last, which names the output folder.
  for (size_t i = 0; i + 1 < lines.lines.size(); ++i) CHECK(lines.lines[i] == every.lines[i]);
  REQUIRE(every.steps.size() == 10);
  double epoch1 = 0;
  for (int i = 0; i < 5; ++i) epoch1 += every.steps[static_cast<size_t>(i)].loss;
  const auto rows = tools::read_metrics_csv((b / "metrics.csv").string());
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].train_loss == Approx(epoch1 / 5).epsilon(1e-6));
  fs::remove_all(a);
  fs::remove_all(b);
}
