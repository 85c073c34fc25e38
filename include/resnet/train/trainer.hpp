// Trainer: the training loop as a library. Give it a model (any nn::Module, already on its device), an
// optimizer over its parameters, a training set and optionally a test set; fit() runs the epochs with a
// per-step schedule and prints the seed's log lines ("[epoch E, batch B] loss: L", "epoch E av_train_loss:
// L lr: R", "epoch E av_test_acc: A"), a progress line with rate and ETA on stderr, and writes to out_dir:
// metrics.csv and curves.svg every epoch, a weights-only checkpoint each time the test accuracy improves,
// and last.safetensors (model, optimizer, where the run stands) after every epoch and on a stop. A resumed
// run continues exactly; a non-finite loss stops it before the update (status NonFinite, exit 3); Ctrl-C
// finishes the step, writes last and stops (status Interrupted, exit 130).
//
// Several ranks (a dist::ProcessGroup of size W > 1): the batch in the options is the global batch, B / W
// samples a rank (train/shard.hpp); the model is wrapped in dist::DataParallel (gradients averaged in
// ~25 MB buckets during backward, optionally SyncBatchNorm); evaluation is sharded and summed. Only rank 0
// prints and writes files. `last` holds the global step and the global samples consumed in the epoch, so a
// run saved with N ranks resumes with M. Every decision that ends a loop (no batch left, a NaN, Ctrl-C, a
// callback's stop) is taken from one all_reduce_host a step, so no rank waits in a collective its peers left.
//
// A step does not wait for the device for its loss: the batch and the learning rate go up through
// backend/async_copy.hpp (the pinned staging ring with cuda::set_staging_ring on; off by default, a pageable
// copy the driver stages), the learning rate into the optimizer's step state, and the loss stays on the
// device, where record_step_loss adds it to sums (backend/step_math.hpp) that are read, and agreed over the
// ranks, only at a log line, an epoch's end, a stop, or every step when Callbacks::on_step_end is set. A
// non-finite loss sets the optimizer's skip flag on the device, so neither that step's update nor any later
// one reaches the weights, and the Trainer stops (NonFinite, exit 3, the step named) at the next read, before
// any save.
#pragma once

#include "resnet/core/abi.hpp"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "resnet/backend/async_copy.hpp"
#include "resnet/data/loader.hpp"
#include "resnet/dist/data_parallel.hpp"
#include "resnet/dist/process_group.hpp"
#include "resnet/io/checkpoint.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/ops/ops.hpp"
#include "resnet/optim/optimizer.hpp"
#include "resnet/tools/progress.hpp"
#include "resnet/tools/training_log.hpp"
#include "resnet/train/agreement.hpp"
#include "resnet/train/evaluate.hpp"
#include "resnet/train/graph_step.hpp"
#include "resnet/train/input.hpp"
#include "resnet/train/interrupt.hpp"
#include "resnet/train/options.hpp"
#include "resnet/train/shard.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

namespace detail {
inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}
inline std::string seed_checkpoint_name(int64_t epoch, double loss, double acc, double lr) {
  return "epoch" + std::to_string(epoch) + "+loss" + fmt("%.3f", loss) + "+acc" + fmt("%.3f", acc) + "+lr" +
         fmt("%.5f", lr) + ".safetensors";
}
inline double extra_number(const io::TrainingState& s, const std::string& key, double fallback,
                           const std::string& file) {
  auto it = s.extra.find(key);
  if (it == s.extra.end()) return fallback;
  double v = 0;
  RESNET_CHECK(io::detail::parse_double(it->second, v), "checkpoint '", file, "': metadata '", key, "' = '",
               it->second, "' is not a number");
  return v;
}
struct NonFinite {
  std::string what;
};
struct StopNow {
  FitStatus status;
};
}  // namespace detail

template <typename T>
class Trainer {
 public:
  using P = acc_t<T>;

  Trainer(std::shared_ptr<nn::Module<T>> model, std::shared_ptr<optim::Optimizer<P>> optimizer,
          std::shared_ptr<const data::Dataset> train_set, std::shared_ptr<const data::Dataset> test_set,
          TrainerOptions options, Callbacks callbacks = {},
          std::shared_ptr<dist::ProcessGroup> group = nullptr)
      : model_(std::move(model)),
        optimizer_(std::move(optimizer)),
        train_set_(std::move(train_set)),
        test_set_(std::move(test_set)),
        o_(std::move(options)),
        cb_(std::move(callbacks)) {
    RESNET_CHECK(model_ && optimizer_ && train_set_,
                 "Trainer: the model, optimizer and training set must be given");
    device_ = model_device(*model_);
    pg_ = group ? std::move(group) : dist::single_process_group(device_);
    const int w = pg_->size();
    RESNET_CHECK(o_.epochs >= 1, "Trainer: epochs must be at least 1, got ", o_.epochs);
    RESNET_CHECK(o_.batch >= 1, "Trainer: the batch must be at least 1, got ", o_.batch);
    RESNET_CHECK(o_.log_every >= 1, "Trainer: log_every must be at least 1, got ", o_.log_every);
    RESNET_CHECK(o_.batch % w == 0, "Trainer: the global batch ", o_.batch, " does not split evenly over ", w,
                 " ranks; use a multiple of ", w);
    RESNET_CHECK(!o_.cuda_graph || device_.is_cuda(), "Trainer: cuda_graph (--cuda-graph on) needs a CUDA ",
                 "device, but the model is on ", device_.to_string());
    RESNET_CHECK(!o_.cuda_graph || w == 1,
                 "Trainer: cuda_graph (--cuda-graph on) runs one rank; this run has ", w,
                 " (the gradient all-reduce is not captured)");
    RESNET_CHECK(w == 1 || pg_->device() == device_, "Trainer: the model is on ", device_.to_string(),
                 " but the ", pg_->backend_name(), " process group's tensors live on ",
                 pg_->device().to_string(), " (rank ", pg_->rank(), ")");
    n_train_ = train_set_->size();
    drop_last_ = o_.drop_last && n_train_ > o_.batch;
    steps_per_epoch_ = global_batches(n_train_, o_.batch, w, drop_last_);
    RESNET_CHECK(steps_per_epoch_ > 0, "Trainer: the training set of ", n_train_,
                 " samples cannot give each of the ", w, " ranks a sample");
    base_lr_ = optimizer_->lr();
    const int64_t planned =
        o_.schedule_epochs > 0 && o_.schedule_epochs < o_.epochs ? o_.schedule_epochs : o_.epochs;
    if (o_.schedule) schedule_ = o_.schedule(planned * steps_per_epoch_, steps_per_epoch_);
    planned_steps_ = planned * steps_per_epoch_;
    train_skips_ = std::make_shared<SkipLog>();
    test_skips_ = std::make_shared<SkipLog>();
  }

  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t total_steps() const { return o_.epochs * steps_per_epoch_; }
  // The learning rate of step `step` (0-based), a planned schedule stretched over a longer run included.
  double lr_at(int64_t step) const {
    if (!schedule_) return base_lr_;
    if (stretch_from_ < 0 || step <= stretch_from_) return schedule_->lr(step);
    if (planned_steps_ <= stretch_from_) return schedule_->lr(planned_steps_ - 1);  // it had finished: hold
    const double f =
        static_cast<double>(step - stretch_from_) / static_cast<double>(total_steps() - stretch_from_);
    const int64_t mapped =
        stretch_from_ + static_cast<int64_t>(f * static_cast<double>(planned_steps_ - stretch_from_));
    return schedule_->lr(std::min(mapped, planned_steps_ - 1));
  }
  dist::ProcessGroup& group() { return *pg_; }
  bool is_main() const { return pg_->rank() == 0; }
  const TrainerOptions& options() const { return o_; }
  const Device& device() const { return device_; }

  // A log line: stdout (or Callbacks::on_log_line) on rank 0, nothing elsewhere.
  void log(const std::string& line) {
    if (!is_main()) return;
    if (progress_) progress_->clear();
    if (cb_.on_log_line) {
      cb_.on_log_line(line);
      return;
    }
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }

  // The test set's loss and accuracy, sharded over the ranks (a collective).
  EvalResult evaluate(const std::string& tag = "eval") {
    RESNET_CHECK(test_set_ != nullptr, "Trainer::evaluate: no test set was given");
    EvalOptions eo;
    eo.batch = o_.batch;
    eo.workers = o_.workers;
    eo.prefetch = o_.prefetch;
    eo.skips = test_skips_;
    if (progress_)
      eo.progress = [this, tag](int64_t done, int64_t total) {
        progress_->update(tag + " testing " + std::to_string(done) + "/" + std::to_string(total));
      };
    return train::evaluate(*model_, test_set_, eo, *pg_);
  }

  FitResult fit() {
    progress_ = std::make_unique<tools::ProgressLine>(o_.progress_period, o_.progress && is_main());
    FitResult res;
    res.last_path = (std::filesystem::path(o_.out_dir) / "last.safetensors").string();
    last_path_ = res.last_path;
    setup_together(*pg_, "Trainer setup", [&] { prepare(); });
    if (!o_.resume.empty())
      log("resuming " + o_.resume + " at epoch " + std::to_string(start_epoch_ + 1) + ", batch " +
          std::to_string(first_batch_ + 1) + " (step " + std::to_string(step_) + ")");
    if (start_epoch_ >= o_.epochs) {
      log("the resumed run already finished its " + std::to_string(o_.epochs) + " epochs; nothing to do");
      return finish(res, FitStatus::AlreadyComplete, false);
    }
    wrap_model();  // after the resume: every rank starts from rank 0's state either way
    if (o_.handle_signals) install_interrupt_handler(!is_main());
    const char* fault_env = std::getenv("RESNET_FAULT_NAN_AT_STEP");  // test hook: step K's loss is NaN
    fault_nan_step_ = fault_env ? std::atoll(fault_env) : -1;
    run_start_ = std::chrono::steady_clock::now();
    if (stats_.defined())
      stats_.zero_();  // in place: a captured step (cuda_graph) holds its address
    else
      stats_ = Tensor<double>::zeros({loss_stats::kSize}, device_);
    model_->train();
    int64_t last_good_epoch = o_.resume.empty() ? -1 : start_epoch_;  // the epoch `last` on disk holds
    epoch_now_ = start_epoch_;
    try {
      for (int64_t epoch = start_epoch_; epoch < o_.epochs; ++epoch) {
        epoch_now_ = epoch;
        if (epoch != start_epoch_) {
          first_batch_ = 0;
          epoch_loss_sum_ = window_sum_ = 0;
          epoch_batches_ = window_count_ = 0;
        }
        run_epoch(epoch);
        end_epoch(epoch, res);
        last_good_epoch = epoch + 1;
        if (any_rank(*pg_, interrupt_requested())) throw detail::StopNow{FitStatus::Interrupted};
        if (o_.stop_after_epoch > 0 && epoch + 1 == o_.stop_after_epoch && epoch + 1 < o_.epochs) {
          log("stopping after epoch " + std::to_string(epoch + 1) + " as asked; continue with --resume " +
              last_path_);
          return finish(res, FitStatus::StoppedAfterEpoch, true);
        }
      }
    } catch (const detail::StopNow& s) {
      progress_->clear();
      save_last(epoch_now_);  // mid-epoch: `last` records the position, a resume continues at the next batch
      if (is_main()) {
        std::string how = s.status == FitStatus::Interrupted ? "interrupted" : "stopped";
        std::fprintf(stderr, "%s: %s at step %lld; wrote %s.", o_.name.c_str(), how.c_str(),
                     static_cast<long long>(step_), last_path_.c_str());
        if (!o_.resume_command.empty())
          std::fprintf(stderr, " Continue with: %s --resume %s", o_.resume_command.c_str(),
                       last_path_.c_str());
        std::fputc('\n', stderr);
      }
      return finish(res, s.status, true);
    } catch (const detail::NonFinite& e) {
      progress_->clear();
      if (is_main()) {
        const std::string keep = last_good_epoch >= 0 ? "the last good checkpoint is " + last_path_ +
                                                            " (epoch " + std::to_string(last_good_epoch) + ")"
                                                      : "no checkpoint was written yet";
        std::fprintf(stderr, "%s: error: %s; stopped without saving: %s. %s\n", o_.name.c_str(),
                     e.what.c_str(), keep.c_str(), o_.nonfinite_hint.c_str());
      }
      return finish(res, FitStatus::NonFinite, true);
    }
    progress_->clear();
    res.skipped_images = count_skipped();
    if (is_main() && res.skipped_images > 0)
      std::fprintf(stderr, "warning: %lld unreadable image files were skipped (named above)\n",
                   static_cast<long long>(res.skipped_images));
    if (test_set_)
      log("best av_test_acc: " + detail::fmt("%.3f", best_acc_) + " at epoch " + std::to_string(best_epoch_) +
          "; " + detail::fmt("%.1f", seconds_now()) + " s in all; outputs in " + o_.out_dir);
    else
      log("done: " + std::to_string(o_.epochs) + " epochs in " + detail::fmt("%.1f", seconds_now()) +
          " s; outputs in " + o_.out_dir);
    return finish(res, FitStatus::Completed, true);
  }

 private:
  // Resume (every rank reads the same checkpoint) and the output folder (rank 0).
  void prepare() {
    namespace fs = std::filesystem;
    if (!o_.resume.empty()) {
      const std::string& ck = o_.resume;
      std::error_code ec;
      RESNET_CHECK(fs::is_regular_file(ck, ec), "resume: checkpoint '", ck, "' does not exist");
      io::TrainingState st = io::read_training_state(ck);
      RESNET_CHECK(!st.optimizer.empty(), "resume: '", ck,
                   "' holds weights only; resume from the run's last.safetensors");
      const double saved_n = detail::extra_number(st, "train_images", -1, ck);
      RESNET_CHECK(saved_n < 0 || saved_n == static_cast<double>(n_train_), "resume: the run trained on ",
                   static_cast<int64_t>(saved_n), " images but this training set has ", n_train_,
                   " (a different data folder or limit?)");
      RESNET_CHECK(o_.class_names.empty() || st.class_names.empty() || st.class_names == o_.class_names,
                   "resume: the checkpoint's classes differ from the data's");
      const double saved_batch = detail::extra_number(st, "global_batch", -1, ck);
      RESNET_CHECK(saved_batch < 0 || saved_batch == static_cast<double>(o_.batch), "resume: '", ck,
                   "' was trained with global batch ", static_cast<int64_t>(saved_batch), ", not ", o_.batch,
                   " (the batch is part of the recipe)");
      st = io::load_checkpoint(ck, *model_, optimizer_.get());
      start_epoch_ = st.epoch;
      step_ = st.step;
      const double samples = detail::extra_number(st, "samples_in_epoch", -1, ck);
      if (samples >= 0) {
        RESNET_CHECK(std::fmod(samples, static_cast<double>(o_.batch)) == 0, "resume: '", ck,
                     "' stopped after ", static_cast<int64_t>(samples),
                     " samples of its epoch, not a whole number of batches of ", o_.batch);
        first_batch_ = static_cast<int64_t>(samples) / o_.batch;
      } else {
        first_batch_ = step_ - start_epoch_ * steps_per_epoch_;  // checkpoints written before the position
      }
      RESNET_CHECK(first_batch_ >= 0 && first_batch_ <= steps_per_epoch_, "resume: step ", step_,
                   " does not fall in epoch ", start_epoch_ + 1, " of ", steps_per_epoch_, " steps");
      epoch_loss_sum_ = detail::extra_number(st, "epoch_loss_sum", 0, ck);
      epoch_batches_ = static_cast<int64_t>(detail::extra_number(st, "epoch_batches", 0, ck));
      window_sum_ = detail::extra_number(st, "window_sum", 0, ck);
      window_count_ = static_cast<int64_t>(detail::extra_number(st, "window_count", 0, ck));
      seconds_before_ = detail::extra_number(st, "seconds", 0, ck);
      best_acc_ = detail::extra_number(st, "best_acc", -1, ck);
      best_epoch_ = static_cast<int64_t>(detail::extra_number(st, "best_epoch", 0, ck));
      if (o_.schedule_epochs > 0 && o_.schedule_epochs < o_.epochs) stretch_from_ = step_;
    } else if (o_.schedule_epochs > 0 && o_.schedule_epochs < o_.epochs) {
      stretch_from_ = 0;
    }
    // The epochs before the resume (every rank keeps the history; only rank 0 writes it).
    if (!o_.resume.empty())
      for (const auto& r : tools::read_metrics_csv(path("metrics.csv")))
        if (r.epoch <= start_epoch_) history_.push_back(r);
    if (!is_main()) return;
    std::error_code ec;
    fs::create_directories(o_.out_dir, ec);
    RESNET_CHECK(fs::is_directory(o_.out_dir, ec), "output folder (out_dir): cannot create '", o_.out_dir,
                 "'");
    check_writable(o_.out_dir);  // before the first epoch, not at its end
  }

  static void check_writable(const std::string& dir) {
    const std::string probe =
        (std::filesystem::path(dir) / (".write_test_" + std::to_string(::getpid()))).string();
    FILE* f = std::fopen(probe.c_str(), "wb");
    const bool ok = f && std::fputs("ok", f) >= 0 && std::fflush(f) == 0;
    const int err = errno;
    if (f) std::fclose(f);
    std::remove(probe.c_str());
    RESNET_CHECK(ok, "output folder (out_dir): cannot write in folder '", dir, "': ", std::strerror(err));
  }

  // Several ranks: DataParallel broadcasts rank 0's parameters and buffers and averages the gradients of
  // each backward pass (in buckets, overlapping it). One rank: the model itself.
  void wrap_model() {
    if (net_) return;
    if (pg_->size() == 1) {
      net_ = model_;
      if (o_.cuda_graph) {
        GraphedStepOptions go;
        go.warmup = o_.cuda_graph_warmup;
        // The standard step with the loss recorded between forward and backward, as the eager loop does
        // (one rank: this rank's samples are the global batch), so a non-finite loss sets the optimizer's
        // skip flag before the captured update reads it. stats_ is allocated once per Trainer, so the
        // pointer a graph captured stays valid.
        graphed_ = std::make_unique<GraphedStep<T>>(
            device_,
            [this](const Tensor<T>& x, const Tensor<int32_t>& y) {
              optimizer_->zero_grad();
              Tensor<T> loss = cross_entropy(net_->forward(x), y, o_.label_smoothing);
              const double n = static_cast<double>(x.dim(0));
              Tensor<double>& optim_state = optimizer_->step_state();
              RESNET_DISPATCH(device_, record_step_loss, loss, stats_, &optim_state, n, n,
                              static_cast<double>(fault_nan_step_));
              loss.backward();
              optimizer_->step();
              return loss;
            },
            go);
        graphed_->watch(*model_);
        graphed_->watch(*optimizer_);
      }
      return;
    }
    dist::DataParallelOptions d;
    d.bucket_bytes = o_.bucket_bytes;
    d.sync_batchnorm = o_.sync_batchnorm;
    net_ = std::make_shared<dist::DataParallel<T>>(model_, pg_, d);
  }

  std::string path(const std::string& file) const {
    return (std::filesystem::path(o_.out_dir) / file).string();
  }

  // This rank's loader for `epoch`: its share of every global batch, the epoch's permutation of the set.
  std::unique_ptr<data::DataLoader> epoch_loader(int64_t epoch) {
    const int w = pg_->size();
    std::vector<int64_t> order = data::epoch_permutation(n_train_, o_.seed, epoch);
    auto shard = std::make_shared<EpochShard>(train_set_,
                                              shard_of(order, o_.batch, 0, steps_per_epoch_, pg_->rank(), w),
                                              o_.seed, epoch, train_skips_);
    data::LoaderOptions lo;
    lo.batch_size = o_.batch / w;
    lo.workers = o_.workers;
    lo.prefetch = o_.prefetch;
    lo.warn = [s = train_skips_](const std::string& m) { s->warn(m); };
    auto loader = std::make_unique<data::DataLoader>(shard, lo);
    RESNET_CHECK(loader->num_batches() == steps_per_epoch_, "Trainer: rank ", pg_->rank(), " has ",
                 loader->num_batches(), " batches in epoch ", epoch + 1, ", not ", steps_per_epoch_);
    loader->start_epoch(0, first_batch_);  // the shard already is this epoch's order
    return loader;
  }

  void run_epoch(int64_t epoch) {
    const std::string tag = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(o_.epochs);
    position_ = first_batch_;
    const double start[3] = {is_main() ? window_sum_ : 0.0, is_main() ? epoch_loss_sum_ : 0.0,
                             static_cast<double>(step_)};
    write_async(stats_, loss_stats::kWindowSum, start, 3);  // the device's sums go on from the host's
    pending_.clear();
    auto loader = epoch_loader(epoch);
    progress_->reset_timer();
    const auto epoch_start = std::chrono::steady_clock::now();
    int64_t images = 0, batches_here = 0;
    data::Batch b;
    for (;;) {
      StepVote v;
      v.has_batch = loader->next(b);
      // SyncBatchNorm's forward is a collective: agree first that every rank has this batch.
      if (o_.sync_batchnorm && pg_->size() > 1 && !agree_batch(*pg_, v.has_batch, b.index)) break;
      Tensor<T> loss;
      if (v.has_batch) {
        const int64_t n = b.size();
        Tensor<T> x = to_input<T>(b.images, device_);
        Tensor<int32_t> y = to_device_async(Tensor<int32_t>::from_vector(b.labels, {n}), device_);
        optimizer_->set_lr(lr_at(step_));
        if (graphed_)
          loss = graphed_->run(x, y);  // the whole step, update included (cuda_graph)
        else
          loss = cross_entropy(net_->forward(x), y, o_.label_smoothing);
        v.loss = 0;  // stays on the device (record_step_loss below)
        v.batch_index = b.index;
        v.samples = n;
      }
      v.interrupt = interrupt_requested();
      v.stop = cb_.should_stop && cb_.should_stop();
      const StepAgreement a = agree_step(*pg_, v);
      if (!a.any_batch) break;
      // On the device: the loss into the sums, or (not finite) the optimizer's skip flag, so the weights
      // stay finite and `last` stays good; the stop comes at the next read.
      // (A graphed step recorded its loss itself, before its update.)
      if (!graphed_) {
        Tensor<double>& optim_state = optimizer_->step_state();
        RESNET_DISPATCH(device_, record_step_loss, loss, stats_, &optim_state, static_cast<double>(v.samples),
                        static_cast<double>(a.samples), static_cast<double>(fault_nan_step_));
      }
      pending_.push_back(PendingStep{step_ + 1, epoch, b.index});
      if (!graphed_) {
        optimizer_->zero_grad();
        loss.backward();  // DataParallel averages the gradients over the ranks during this pass
        optimizer_->step();
      }
      ++step_;
      position_ = b.index + 1;
      ++epoch_batches_;
      ++window_count_;
      images += a.samples;
      ++batches_here;
      const bool log_line = (b.index + 1) % o_.log_every == 0;
      if (log_line || cb_.on_step_end || a.interrupt || a.stop) read_losses();
      if (log_line) {
        log("[epoch " + std::to_string(epoch + 1) + ", batch " + std::to_string(b.index + 1) +
            "] loss: " + detail::fmt("%.3f", window_sum_ / static_cast<double>(window_count_)));
        window_sum_ = 0;
        window_count_ = 0;
        const double zero = 0;
        write_async(stats_, loss_stats::kWindowSum, &zero, 1);
      }
      if (cb_.on_step_end)
        cb_.on_step_end(StepInfo{epoch, b.index, step_, last_loss_, optimizer_->lr(), a.samples});
      if (is_main()) {
        const double el =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
        const double per_batch = el / static_cast<double>(batches_here);
        const int64_t left_here = steps_per_epoch_ - (b.index + 1);
        const double n_test = test_set_ ? static_cast<double>(test_set_->size()) : 0;
        const double eval_est = last_eval_seconds_ >= 0
                                    ? last_eval_seconds_
                                    : per_batch * n_test / static_cast<double>(o_.batch) / 3;
        const double left_run = per_batch * static_cast<double>(total_steps() - step_) +
                                eval_est * static_cast<double>(o_.epochs - epoch);
        progress_->update(
            tag + " batch " + std::to_string(b.index + 1) + "/" + std::to_string(steps_per_epoch_) + " | " +
            detail::fmt("%.1f", static_cast<double>(images) / el) + " img/s | epoch " +
            tools::ProgressLine::format_duration(per_batch * static_cast<double>(left_here) + eval_est) +
            " left | run " + tools::ProgressLine::format_duration(left_run) + " left");
      }
      if (a.interrupt) throw detail::StopNow{FitStatus::Interrupted};
      if (a.stop) throw detail::StopNow{FitStatus::Stopped};
    }
    read_losses();
    RESNET_CHECK(epoch_batches_ > 0, "epoch ", epoch + 1, ": no readable training images");
  }

  // Reads the device's loss statistics (one host wait) and agrees them over the ranks (a collective, at the
  // same step on every rank): the sums since the last read become the host's, or the first non-finite step
  // of any rank stops the run. The sums of W > 1 ranks are summed in another order than a per-step
  // exchange would (last bits); with one rank they are the very same additions.
  void read_losses() {
    const std::vector<double> s = stats_.to_vector();
    const int w = pg_->size(), r = pg_->rank();
    std::vector<double> m(static_cast<size_t>(3 + 2 * w), 0.0);
    m[0] = s[loss_stats::kWindowSum];
    m[1] = s[loss_stats::kEpochSum];
    m[2] = s[loss_stats::kLastLoss];
    m[static_cast<size_t>(3 + 2 * r)] = s[loss_stats::kBadStep];
    m[static_cast<size_t>(4 + 2 * r)] = s[loss_stats::kBadKind];
    if (w > 1) m = pg_->all_reduce_host(m);
    double bad = 0;
    for (int k = 0; k < w; ++k) {
      const double b = m[static_cast<size_t>(3 + 2 * k)];
      if (b > 0 && (bad == 0 || b < bad)) bad = b;
    }
    if (bad > 0) {
      // As the per-step exchange had it: infinite only where this rank's own loss was, else NaN.
      const bool own = s[loss_stats::kBadStep] == bad;
      const bool inf = own && s[loss_stats::kBadKind] >= 2;
      const int64_t at = static_cast<int64_t>(bad);
      int64_t e = epoch_now_, bi = -1;
      for (const PendingStep& p : pending_)
        if (p.step == at) {
          e = p.epoch;
          bi = p.batch;
        }
      step_ = at - 1;  // that step and every later one were skipped on the device
      throw detail::NonFinite{"the loss is " + std::string(inf ? "infinite" : "NaN") + " at epoch " +
                              std::to_string(e + 1) + ", batch " + std::to_string(bi + 1) + " (step " +
                              std::to_string(at) + ")"};
    }
    window_sum_ = m[0];
    epoch_loss_sum_ = m[1];
    last_loss_ = m[2];
    pending_.clear();
    if (w > 1) {  // rank 0's device holds the global sums, the others' none, so the next read sums again
      const double back[2] = {is_main() ? window_sum_ : 0.0, is_main() ? epoch_loss_sum_ : 0.0};
      write_async(stats_, loss_stats::kWindowSum, back, 2);
    }
  }

  void end_epoch(int64_t epoch, FitResult& res) {
    const std::string tag = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(o_.epochs);
    const double train_loss = epoch_loss_sum_ / static_cast<double>(epoch_batches_);
    const double lr_now = optimizer_->lr();
    log("epoch " + std::to_string(epoch + 1) + " av_train_loss: " + detail::fmt("%.3f", train_loss) +
        " lr: " + detail::fmt("%.5f", lr_now));
    EvalResult ev{std::nan(""), std::nan(""), 0, 0};
    if (test_set_) {
      const auto eval_start = std::chrono::steady_clock::now();
      ev = evaluate(tag);
      last_eval_seconds_ =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - eval_start).count();
      log("epoch " + std::to_string(epoch + 1) + " av_test_acc: " + detail::fmt("%.3f", ev.acc));
    }
    if (test_set_ && ev.acc > best_acc_) {
      best_acc_ = ev.acc;
      best_epoch_ = epoch + 1;
      if (o_.save_best && is_main()) {
        const std::string name = o_.best_name
                                     ? o_.best_name(epoch + 1, train_loss, ev.acc, lr_now)
                                     : detail::seed_checkpoint_name(epoch + 1, train_loss, ev.acc, lr_now);
        io::save_checkpoint(path(name), *model_, static_cast<const optim::Optimizer<P>*>(nullptr),
                            state(epoch + 1));
      }
    }
    const tools::EpochMetrics row{epoch + 1, train_loss, ev.loss, ev.acc, lr_now, seconds_now()};
    history_.push_back(row);
    if (is_main()) {
      tools::write_text_atomically(path("metrics.csv"), tools::metrics_csv(history_));
      tools::write_text_atomically(
          path("curves.svg"),
          tools::training_curves_svg(history_, o_.plot_title.empty() ? o_.name : o_.plot_title));
    }
    epoch_loss_sum_ = window_sum_ = 0;
    epoch_batches_ = window_count_ = 0;
    position_ = 0;
    epoch_now_ = epoch + 1;
    save_last(epoch + 1);
    res.epochs_done = epoch + 1;
    if (cb_.on_epoch_end) cb_.on_epoch_end(row);
  }

  // The metadata of every checkpoint: the caller's, then where the run stands.
  io::TrainingState state(int64_t epochs_done) const {
    io::TrainingState s;
    s.arch = o_.arch;
    s.epoch = epochs_done;
    s.step = step_;
    s.lr = optimizer_->lr();
    s.schedule = o_.schedule_name;
    s.seed = o_.seed;
    s.class_names = o_.class_names;
    s.extra = o_.metadata;
    s.extra["train_images"] = std::to_string(n_train_);
    s.extra["global_batch"] = std::to_string(o_.batch);
    s.extra["world_size"] = std::to_string(pg_->size());  // informational: any world size may resume
    s.extra["best_acc"] = io::detail::format_double(best_acc_);
    s.extra["best_epoch"] = std::to_string(best_epoch_);
    return s;
  }

  // `last`: model, optimizer, and the position (global samples of the epoch consumed, mid-epoch sums).
  void save_last(int64_t epochs_done) {
    if (!is_main()) return;
    io::TrainingState s = state(epochs_done);
    s.extra["samples_in_epoch"] = std::to_string(position_ * o_.batch);
    s.extra["epoch_loss_sum"] = io::detail::format_double(epoch_loss_sum_);
    s.extra["epoch_batches"] = std::to_string(epoch_batches_);
    s.extra["window_sum"] = io::detail::format_double(window_sum_);
    s.extra["window_count"] = std::to_string(window_count_);
    s.extra["seconds"] = io::detail::format_double(seconds_now());
    io::save_checkpoint(last_path_, *model_, optimizer_.get(), s);
  }

  double seconds_now() const {
    return seconds_before_ +
           std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start_).count();
  }

  // Unreadable files over all ranks, each once (a collective).
  int64_t count_skipped() {
    const int64_t n_test = test_set_ ? test_set_->size() : 0;
    std::vector<double> flags(static_cast<size_t>(n_train_ + n_test), 0.0);
    for (int64_t i : train_skips_->indices()) flags[static_cast<size_t>(i)] = 1;
    for (int64_t i : test_skips_->indices()) flags[static_cast<size_t>(n_train_ + i)] = 1;
    flags = pg_->all_reduce_host(flags);
    int64_t n = 0;
    for (double f : flags) n += f > 0 ? 1 : 0;
    return n;
  }

  FitResult& finish(FitResult& res, FitStatus status, bool barrier) {
    progress_->clear();
    if (barrier) pg_->barrier();  // rank 0 may still be writing; no rank exits before it is done
    res.status = status;
    res.steps = step_;
    res.best_acc = best_acc_;
    res.best_epoch = best_epoch_;
    res.history = history_;
    if (res.epochs_done == 0) res.epochs_done = epoch_now_;
    return res;
  }

  std::shared_ptr<nn::Module<T>> model_;
  std::shared_ptr<optim::Optimizer<P>> optimizer_;
  std::shared_ptr<const data::Dataset> train_set_, test_set_;
  TrainerOptions o_;
  Callbacks cb_;
  std::shared_ptr<dist::ProcessGroup> pg_;
  Device device_;
  std::shared_ptr<nn::Module<T>> net_;       // what forward runs: the model, or DataParallel around it
  std::unique_ptr<GraphedStep<T>> graphed_;  // cuda_graph: the whole step, captured and replayed
  std::unique_ptr<optim::LRSchedule> schedule_;
  std::unique_ptr<tools::ProgressLine> progress_;
  std::shared_ptr<SkipLog> train_skips_, test_skips_;
  std::string last_path_;

  int64_t n_train_ = 0, steps_per_epoch_ = 0, planned_steps_ = 0, stretch_from_ = -1;
  bool drop_last_ = true;
  double base_lr_ = 0;
  // Where the run stands.
  int64_t start_epoch_ = 0, epoch_now_ = 0, step_ = 0, first_batch_ = 0, position_ = 0;
  double epoch_loss_sum_ = 0, window_sum_ = 0, seconds_before_ = 0, best_acc_ = -1;
  int64_t epoch_batches_ = 0, window_count_ = 0, best_epoch_ = 0;
  std::vector<tools::EpochMetrics> history_;
  double last_eval_seconds_ = -1;
  int64_t fault_nan_step_ = -1;
  // The device's loss statistics (backend/step_math.hpp) and the steps recorded since the last read.
  Tensor<double> stats_;
  struct PendingStep {
    int64_t step, epoch, batch;
  };
  std::vector<PendingStep> pending_;
  double last_loss_ = 0;
  std::chrono::steady_clock::time_point run_start_ = std::chrono::steady_clock::now();
};

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
