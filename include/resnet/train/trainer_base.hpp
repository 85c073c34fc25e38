// What a Trainer holds and how a run begins and ends (train/trainer.hpp runs the loop): the checks at
// construction, the parts (loss, metrics, step, callbacks) and their setters, where the run stands
// (RunState) with its checkpoints, the read of the device's loss sums, and the end of a run (the stop and
// non-finite messages, the final barrier).
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "resnet/data/dataset.hpp"
#include "resnet/dist/data_parallel.hpp"
#include "resnet/dist/process_group.hpp"
#include "resnet/io/checkpoint.hpp"
#include "resnet/io/paths.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/optim/optimizer.hpp"
#include "resnet/tools/training_log.hpp"
#include "resnet/train/callback.hpp"
#include "resnet/train/default_callbacks.hpp"
#include "resnet/train/ema_mixup.hpp"
#include "resnet/train/input.hpp"
#include "resnet/train/loss.hpp"
#include "resnet/train/loss_reader.hpp"
#include "resnet/train/metrics.hpp"
#include "resnet/train/options.hpp"
#include "resnet/train/run_state.hpp"
#include "resnet/train/shard.hpp"
#include "resnet/train/step.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

template <typename T>
class TrainerBase {
 public:
  using P = acc_t<T>;

  // `callbacks` (plain functions) join the default outputs; its on_log_line replaces the stdout log.
  TrainerBase(std::shared_ptr<nn::Module<T>> model, std::shared_ptr<optim::Optimizer<P>> optimizer,
              std::shared_ptr<const data::Dataset> train_set, std::shared_ptr<const data::Dataset> test_set,
              TrainerOptions options, Callbacks callbacks = {},
              std::shared_ptr<dist::ProcessGroup> group = nullptr)
      : model_(std::move(model)),
        optimizer_(std::move(optimizer)),
        train_set_(std::move(train_set)),
        test_set_(std::move(test_set)),
        o_(std::move(options)),
        loss_(cross_entropy_loss<T>(o_.label_smoothing())),
        cbs_(default_callbacks()) {
    RESNET_CHECK(model_ && optimizer_ && train_set_,
                 "Trainer: the model, optimizer and training set must be given");
    device_ = model_device(*model_);
    pg_ = group ? std::move(group) : dist::single_process_group(device_);
    const int w = pg_->size();
    RESNET_CHECK(o_.epochs() >= 1, "Trainer: epochs must be at least 1, got ", o_.epochs());
    RESNET_CHECK(o_.batch() >= 1, "Trainer: the batch must be at least 1, got ", o_.batch());
    RESNET_CHECK(o_.log_every() >= 1, "Trainer: log_every must be at least 1, got ", o_.log_every());
    RESNET_CHECK(o_.eval_every() >= 1, "Trainer: eval_every must be at least 1, got ", o_.eval_every());
    RESNET_CHECK(o_.batch() % w == 0, "Trainer: the global batch ", o_.batch(),
                 " does not split evenly over ", w, " ranks; use a multiple of ", w);
    RESNET_CHECK(!o_.cuda_graph() || device_.is_cuda(), "Trainer: cuda_graph (--cuda-graph on) needs a CUDA ",
                 "device, but the model is on ", device_.to_string());
    RESNET_CHECK(!o_.cuda_graph() || w == 1,
                 "Trainer: cuda_graph (--cuda-graph on) runs one rank; this run has ", w,
                 " (the gradient all-reduce is not captured)");
    RESNET_CHECK(!o_.cuda_graph() || !o_.step_options().any(),
                 "Trainer: cuda_graph (--cuda-graph on) captures the ",
                 "plain step; gradient accumulation and clipping run eagerly only");
    o_.step_options().check();
    RESNET_CHECK(w == 1 || pg_->device() == device_, "Trainer: the model is on ", device_.to_string(),
                 " but the ", pg_->backend_name(), " process group's tensors live on ",
                 pg_->device().to_string(), " (rank ", pg_->rank(), ")");
    n_train_ = train_set_->size();
    const bool drop_last = o_.drop_last() && n_train_ > o_.batch();
    steps_per_epoch_ = global_batches(n_train_, o_.batch(), w, drop_last);
    RESNET_CHECK(steps_per_epoch_ > 0, "Trainer: the training set of ", n_train_,
                 " samples cannot give each of the ", w, " ranks a sample");
    base_lr_ = optimizer_->lr();
    const int64_t planned =
        o_.schedule_epochs() > 0 && o_.schedule_epochs() < o_.epochs() ? o_.schedule_epochs() : o_.epochs();
    if (o_.schedule()) schedule_ = o_.schedule()(planned * steps_per_epoch_, steps_per_epoch_);
    planned_steps_ = planned * steps_per_epoch_;
    if (callbacks.on_log_line) remove_callback("log");
    if (callbacks.on_log_line || callbacks.on_step_end || callbacks.on_epoch_end || callbacks.should_stop)
      cbs_.push_back(std::make_shared<FunctionCallbacks>(std::move(callbacks)));
  }

  // ---- the parts (before fit)
  void set_loss(LossFn<T> loss) {
    RESNET_CHECK(static_cast<bool>(loss), "Trainer::set_loss: an empty function");
    loss_ = std::move(loss);
  }
  void add_metric(std::shared_ptr<const Metric> m) {
    RESNET_CHECK(m != nullptr, "Trainer::add_metric: null");
    metrics_.push_back(std::move(m));
  }
  // Null: the default (EagerStep, or CudaGraphStep with TrainerOptions::cuda_graph).
  void set_step(std::unique_ptr<Step<T>> step) { step_ = std::move(step); }
  void add_callback(std::shared_ptr<Callback> c) {
    RESNET_CHECK(c != nullptr, "Trainer::add_callback: null");
    cbs_.push_back(std::move(c));
  }
  // "progress", "log", "best", "csv", "plot", "last", "functions" (the Callbacks given), or a user's own.
  void remove_callback(const std::string& name) {
    cbs_.erase(std::remove_if(cbs_.begin(), cbs_.end(), [&](const auto& c) { return c->name() == name; }),
               cbs_.end());
  }
  void replace_callback(const std::string& name, std::shared_ptr<Callback> c) {
    auto it = std::find_if(cbs_.begin(), cbs_.end(), [&](const auto& x) { return x->name() == name; });
    RESNET_CHECK(it != cbs_.end(), "Trainer::replace_callback: no callback named '", name, "'");
    *it = std::move(c);
  }
  void clear_callbacks() { cbs_.clear(); }
  // A moving average of the weights (train/ema.hpp), updated after each step, evaluated beside the model
  // at each epoch's end (metrics "ema_acc", "ema_loss") and saved beside each resumable checkpoint
  // (last.ema.safetensors), from which a resumed run restores it.
  void set_ema(EmaOptions o) { extras_.set_ema(*model_, o); }
  const ModelEma<T>* ema() const { return extras_.ema(); }
  // Mixup / CutMix on each training batch (train/mixup.hpp), trained with soft_cross_entropy on its
  // targets (their label smoothing is the mixup options'; the loss set before is replaced).
  void set_mixup(MixupOptions o, int64_t num_classes) {
    RESNET_CHECK(!o_.cuda_graph(),
                 "Trainer::set_mixup: a captured step (cuda_graph) cannot take new targets");
    loss_ = extras_.set_mixup(o, num_classes);
  }
  const CallbackList& callbacks() const { return cbs_; }

  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t total_steps() const { return o_.epochs() * steps_per_epoch_; }
  // The learning rate of step `step` (0-based), a planned schedule stretched over a longer run included.
  double lr_at(int64_t step) const {
    const int64_t from = r_.stretch_from;
    if (!schedule_) return base_lr_;
    if (from < 0 || step <= from) return schedule_->lr(step);
    if (planned_steps_ <= from) return schedule_->lr(planned_steps_ - 1);  // it had finished: hold
    const double f = static_cast<double>(step - from) / static_cast<double>(total_steps() - from);
    const int64_t mapped = from + static_cast<int64_t>(f * static_cast<double>(planned_steps_ - from));
    return schedule_->lr(std::min(mapped, planned_steps_ - 1));
  }
  dist::ProcessGroup& group() { return *pg_; }
  bool is_main() const { return pg_->rank() == 0; }
  const TrainerOptions& options() const { return o_; }
  const Device& device() const { return device_; }

  // A log line to the callbacks (by default stdout) on rank 0, nothing elsewhere.
  void log(const std::string& line) {
    if (!is_main()) return;
    for (auto& c : cbs_) c->on_log_line(line);
  }

 protected:
  std::string path(const std::string& file) const { return io::join_path(o_.out_dir(), file); }

  // Resume (every rank reads the same checkpoint) and the epochs before it (every rank keeps the history).
  void prepare() {
    r_ = resume_run(o_, n_train_, steps_per_epoch_, *model_, *optimizer_);
    extras_.prepare(*model_, o_.resume(), r_.step);
    saved_epoch_ = o_.resume().empty() ? -1 : r_.start_epoch;
    saved_path_ = path("last.safetensors");
    if (!o_.resume().empty())
      for (const auto& row : tools::read_metrics_csv(path("metrics.csv")))
        if (row.epoch <= r_.start_epoch) history_.push_back(row);
  }

  RunView run_view() {
    RunView v;
    v.options = &o_;
    v.main = is_main();
    v.steps_per_epoch = steps_per_epoch_;
    v.total_steps = total_steps();
    v.test_size = test_set_ ? test_set_->size() : 0;
    v.save_weights = [this](const std::string& file, int64_t epochs_done) {
      if (is_main())
        io::save_checkpoint(file, *model_, static_cast<const optim::Optimizer<P>*>(nullptr),
                            state(epochs_done));
    };
    v.save_resumable = [this](const std::string& file, int64_t epochs_done) {
      saved_epoch_ = epochs_done;
      saved_step_ = r_.step;
      saved_path_ = file;
      if (!is_main()) return;
      io::TrainingState s = state(epochs_done);
      add_position(s, o_, r_, seconds_now());
      io::save_checkpoint(file, *model_, optimizer_.get(), s);
      extras_.save(file, s);
    };
    return v;
  }
  io::TrainingState state(int64_t epochs_done) const {
    return checkpoint_state(o_, r_, epochs_done, optimizer_->lr(), n_train_, pg_->size());
  }

  // Several ranks: DataParallel broadcasts rank 0's parameters and buffers and averages the gradients of
  // each backward pass (in buckets, overlapping it). One rank: the model itself.
  void bind_step() {
    if (!net_) {
      if (pg_->size() == 1) {
        net_ = model_;
      } else {
        auto d =
            dist::DataParallelOptions().bucket_bytes(o_.bucket_bytes()).sync_batchnorm(o_.sync_batchnorm());
        net_ = std::make_shared<dist::DataParallel<T>>(model_, pg_, d.bf16_gradients(o_.bf16_gradients()));
      }
    }
    if (!step_) {
      auto go = GraphedStepOptions().warmup(o_.cuda_graph_warmup());
      step_ = o_.cuda_graph() ? std::unique_ptr<Step<T>>(std::make_unique<CudaGraphStep<T>>(go))
                              : std::make_unique<EagerStep<T>>(o_.step_options());
    }
    if (!stats_.defined()) stats_ = Tensor<double>::zeros({loss_stats::kSize}, device_);
    step_->bind(StepParts<T>{net_.get(), optimizer_.get(), loss_, &stats_, device_, extras_.targets()});
  }

  // False after a non-finite loss (its message kept for halt()).
  bool read_losses() {
    nonfinite_ = read_step_losses(stats_, *pg_, pending_, r_, last_loss_);
    return nonfinite_.empty();
  }

  // A run that ends early: the callbacks (`last` is written on a stop), then the message on stderr.
  FitResult& halt(FitResult& res, FitStatus status) {
    for (auto& c : cbs_) c->on_halt(Halt{status, r_.epoch_now, r_.step});
    if (is_main() && status == FitStatus::NonFinite) {
      const std::string keep = saved_epoch_ >= 0 ? "the last good checkpoint is " + saved_path_ + " (epoch " +
                                                       std::to_string(saved_epoch_) + ")"
                                                 : "no checkpoint was written yet";
      std::fprintf(stderr, "%s: error: %s; stopped without saving: %s. %s\n", o_.name().c_str(),
                   nonfinite_.c_str(), keep.c_str(), o_.nonfinite_hint().c_str());
    } else if (is_main()) {
      const char* how = status == FitStatus::Interrupted ? "interrupted" : "stopped";
      std::fprintf(stderr, "%s: %s at step %lld", o_.name().c_str(), how, static_cast<long long>(r_.step));
      const bool wrote = saved_step_ == r_.step;
      if (wrote) std::fprintf(stderr, "; wrote %s.", saved_path_.c_str());
      if (!wrote) std::fputc('.', stderr);
      if (wrote && !o_.resume_command().empty())
        std::fprintf(stderr, " Continue with: %s --resume %s", o_.resume_command().c_str(),
                     saved_path_.c_str());
      std::fputc('\n', stderr);
    }
    return finish(res, status, true);
  }

  FitResult& finish(FitResult& res, FitStatus status, bool barrier) {
    res.status = status;
    res.steps = r_.step;
    res.best_acc = r_.best_acc;
    res.best_epoch = r_.best_epoch;
    res.history = history_;
    if (res.epochs_done == 0) res.epochs_done = r_.epoch_now;
    for (auto& c : cbs_) c->on_fit_end(res);
    if (barrier) pg_->barrier();  // rank 0 may still be writing; no rank exits before it is done
    return res;
  }

  double seconds_now() const {
    return r_.seconds_before +
           std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start_).count();
  }

  std::shared_ptr<nn::Module<T>> model_;
  std::shared_ptr<optim::Optimizer<P>> optimizer_;
  std::shared_ptr<const data::Dataset> train_set_, test_set_;
  TrainerOptions o_;
  LossFn<T> loss_;
  std::vector<std::shared_ptr<const Metric>> metrics_;
  CallbackList cbs_;
  std::unique_ptr<Step<T>> step_;
  std::shared_ptr<dist::ProcessGroup> pg_;
  Device device_;
  std::shared_ptr<nn::Module<T>> net_;  // what forward runs: the model, or DataParallel around it
  std::unique_ptr<optim::LRSchedule> schedule_;
  std::shared_ptr<SkipLog> train_skips_ = std::make_shared<SkipLog>(),
                           test_skips_ = std::make_shared<SkipLog>();
  int64_t n_train_ = 0, steps_per_epoch_ = 0, planned_steps_ = 0;
  double base_lr_ = 0;
  RunState r_;
  // The last resumable checkpoint written: its epochs done (-1: none) and step.
  int64_t saved_epoch_ = -1, saved_step_ = -1;
  std::string saved_path_, nonfinite_;
  std::vector<tools::EpochMetrics> history_;
  Tensor<double> stats_;  // the device's loss statistics (backend/step_math.hpp)
  std::vector<PendingStep> pending_;
  double last_loss_ = 0;
  std::chrono::steady_clock::time_point run_start_ = std::chrono::steady_clock::now();
  EmaAndMixup<T> extras_;
};

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
