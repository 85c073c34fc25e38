// Trainer: the fit loop. Give it a model (any nn::Module, already on its device), an optimizer over its
// parameters, a training set and optionally a test set; fit() runs the epochs with a per-step schedule.
// What happens around the loop is parts: the loss (set_loss, default cross-entropy), evaluation metrics
// beyond top-1 accuracy (add_metric), the step (set_step: eager, or a CUDA graph with
// TrainerOptions::cuda_graph) and the outputs, callbacks a program drops, replaces or adds to (by default
// the seed's log lines, the progress line, metrics.csv, curves.svg, the best and the last checkpoints:
// train/default_callbacks.hpp). fit() returns how the run ended (FitResult::status): completed, stopped by
// a callback, interrupted (Ctrl-C: the step finishes, `last` is written, exit 130) or a non-finite loss
// (stopped before its update, exit 3). A resumed run continues exactly. With a schedule, a resumed run keeps
// the length it was saved with (its schedule is laid over it); a longer one needs
// TrainerOptions::schedule_epochs = the saved length, and the schedule's remaining steps are stretched over
// the new length (a finished run holds its last rate; one whose last rate is 0, a finished cosine, is
// refused: train on as a new run from its weights). FitResult::epochs_done counts the run's epochs, resumed
// ones included, as its history does.
//
// Several ranks (a dist::ProcessGroup of size W > 1): the batch in the options is the global batch, B / W
// samples a rank (train/shard.hpp); the model is wrapped in dist::DataParallel; evaluation is sharded and
// summed. Only rank 0 prints and writes files. Every decision that ends a loop (no batch left, Ctrl-C, a
// callback's stop) is taken from one all_reduce_host before each step, and a non-finite loss from the
// read of the device's loss sums (train/loss_reader.hpp), so no rank waits in a collective its peers left.
// A step does not wait for the device for its loss: the sums are read only at a log line, an epoch's end,
// a stop, or every step when a callback wants_step_loss().
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "resnet/backend/async_copy.hpp"
#include "resnet/dist/data_parallel.hpp"
#include "resnet/dist/process_group.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/optim/optimizer.hpp"
#include "resnet/train/agreement.hpp"
#include "resnet/train/callback.hpp"
#include "resnet/train/default_callbacks.hpp"
#include "resnet/train/epoch_data.hpp"
#include "resnet/train/evaluate.hpp"
#include "resnet/train/input.hpp"
#include "resnet/train/interrupt.hpp"
#include "resnet/train/loss.hpp"
#include "resnet/train/loss_reader.hpp"
#include "resnet/train/metrics.hpp"
#include "resnet/train/options.hpp"
#include "resnet/train/run_state.hpp"
#include "resnet/train/step.hpp"
#include "resnet/train/trainer_base.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

template <typename T>
class Trainer : public TrainerBase<T> {
  using B = TrainerBase<T>;
  using B::cbs_, B::device_, B::history_, B::last_loss_, B::model_, B::net_, B::o_, B::optimizer_,
      B::pending_, B::pg_, B::r_, B::stats_, B::step_, B::steps_per_epoch_, B::test_set_, B::train_set_,
      B::extras_;

 public:
  using B::B;
  using B::is_main, B::log, B::lr_at, B::total_steps;

  // The test set's loss, accuracy and metrics, sharded over the ranks (a collective).
  EvalResult evaluate(const std::string& tag = "eval") {
    RESNET_CHECK(test_set_ != nullptr, "Trainer::evaluate: no test set was given");
    auto eo = EvalOptions()
                  .batch(o_.batch())
                  .workers(o_.workers())
                  .prefetch(o_.prefetch())
                  .skips(this->test_skips_)
                  .metrics(this->metrics_)
                  .flip_tta(o_.flip_tta())
                  .size(o_.image_sizes().test_size())
                  .progress([this, tag](int64_t done, int64_t total) {
                    for (auto& c : cbs_) c->on_eval_progress(tag, done, total);
                  });
    return train::evaluate(*model_, test_set_, eo, *pg_);
  }

  FitResult fit() {
    FitResult res;
    res.last_path = this->path("last.safetensors");
    const RunView view = this->run_view();
    setup_together(*pg_, "Trainer setup", [&] {
      this->prepare();
      for (auto& c : cbs_) c->on_fit_start(view);
    });
    if (!o_.resume().empty())
      log("resuming " + o_.resume() + " at epoch " + std::to_string(r_.start_epoch + 1) + ", batch " +
          std::to_string(r_.first_batch + 1) + " (step " + std::to_string(r_.step) + ")");
    if (r_.start_epoch >= o_.epochs()) {
      log("the resumed run already finished its " + std::to_string(o_.epochs()) + " epochs; nothing to do");
      return this->finish(res, FitStatus::AlreadyComplete, false);
    }
    this->bind_step();  // after the resume: every rank starts from rank 0's state either way
    if (o_.handle_signals()) install_interrupt_handler(!is_main());
    this->run_start_ = std::chrono::steady_clock::now();
    if (stats_.defined())
      stats_.zero_();  // in place: a captured step (cuda_graph) holds its address
    else
      stats_ = Tensor<double>::zeros({loss_stats::kSize}, device_);
    model_->train();
    r_.epoch_now = r_.start_epoch;
    for (int64_t epoch = r_.start_epoch; epoch < o_.epochs(); ++epoch) {
      r_.epoch_now = epoch;
      if (epoch != r_.start_epoch) {
        r_.first_batch = 0;
        r_.start_epoch_sums();
      }
      const FitStatus ran = run_epoch(epoch);
      if (ran != FitStatus::Completed) return this->halt(res, ran);
      const bool stop = end_epoch(epoch, res);
      const std::vector<double> ask =
          pg_->all_reduce_host({interrupt_requested() ? 1.0 : 0.0, stop ? 1.0 : 0.0});
      if (ask[0] > 0 || ask[1] > 0)
        return this->halt(res, ask[0] > 0 ? FitStatus::Interrupted : FitStatus::Stopped);
      if (o_.stop_after_epoch() > 0 && epoch + 1 == o_.stop_after_epoch() && epoch + 1 < o_.epochs()) {
        log("stopping after epoch " + std::to_string(epoch + 1) + " as asked; continue with --resume " +
            res.last_path);
        return this->finish(res, FitStatus::StoppedAfterEpoch, true);
      }
    }
    res.skipped_images = count_skipped(*this->train_skips_, this->n_train_, *this->test_skips_,
                                       test_set_ ? test_set_->size() : 0, *pg_);
    if (is_main() && res.skipped_images > 0)
      std::fprintf(stderr, "warning: %lld unreadable image files were skipped (named above)\n",
                   static_cast<long long>(res.skipped_images));
    if (test_set_)
      log("best av_test_acc: " + detail::fmt("%.3f", r_.best_acc) + " at epoch " +
          std::to_string(r_.best_epoch) + "; " + detail::fmt("%.1f", this->seconds_now()) +
          " s in all; outputs in " + o_.out_dir());
    else
      log("done: " + std::to_string(o_.epochs()) + " epochs in " + detail::fmt("%.1f", this->seconds_now()) +
          " s; outputs in " + o_.out_dir());
    return this->finish(res, FitStatus::Completed, true);
  }

 private:
  // The epoch's steps: Completed when its batches ran out, else why it ended (a callback's stop and Ctrl-C
  // take effect before the next step, so the step in progress always finishes).
  FitStatus run_epoch(int64_t epoch) {
    r_.position = r_.first_batch;
    const double start[3] = {is_main() ? r_.window_sum : 0.0, is_main() ? r_.epoch_loss_sum : 0.0,
                             static_cast<double>(r_.step)};
    write_async(stats_, loss_stats::kWindowSum, start, 3);  // the device's sums go on from the host's
    pending_.clear();
    auto loader =
        epoch_loader(train_set_, o_, steps_per_epoch_, epoch, r_.first_batch, this->train_skips_, *pg_);
    for (auto& c : cbs_) c->on_epoch_start(epoch);
    bool wants_loss = false, stop_asked = false;
    for (auto& c : cbs_) wants_loss = wants_loss || c->wants_step_loss();
    data::Batch b;
    for (;;) {
      StepVote v;
      v.has_batch = loader->next(b);
      v.batch_index = b.index;
      v.samples = v.has_batch ? b.size() : 0;
      v.interrupt = interrupt_requested();
      v.stop = stop_asked;
      const StepAgreement a = agree_step(*pg_, v);
      if (a.interrupt || a.stop) {  // the losses first: a NaN before the stop is what is reported
        if (!this->read_losses()) return FitStatus::NonFinite;
        return a.interrupt ? FitStatus::Interrupted : FitStatus::Stopped;
      }
      if (!a.any_batch) break;
      extras_.mix(b, r_.step, device_);
      Tensor<T> x = to_input<T>(b.images, device_);
      Tensor<int32_t> y = to_device_async(Tensor<int32_t>::from_vector(b.labels, {b.size()}), device_);
      optimizer_->set_lr(lr_at(r_.step));
      step_->run(x, y, static_cast<double>(v.samples), static_cast<double>(a.samples));
      extras_.update(*model_);
      pending_.push_back(PendingStep{r_.step + 1, epoch, b.index});
      ++r_.step;
      r_.position = b.index + 1;
      ++r_.epoch_batches;
      ++r_.window_count;
      const bool log_line = (b.index + 1) % o_.log_every() == 0;
      if ((log_line || wants_loss) && !this->read_losses()) return FitStatus::NonFinite;
      if (log_line) {
        log("[epoch " + std::to_string(epoch + 1) + ", batch " + std::to_string(b.index + 1) +
            "] loss: " + detail::fmt("%.3f", r_.window_sum / static_cast<double>(r_.window_count)));
        r_.window_sum = 0;
        r_.window_count = 0;
        const double zero = 0;
        write_async(stats_, loss_stats::kWindowSum, &zero, 1);
      }
      const StepInfo info{epoch, b.index, r_.step, last_loss_, optimizer_->lr(), a.samples};
      for (auto& c : cbs_) stop_asked = c->on_step_end(info) == Control::Stop || stop_asked;
    }
    if (!this->read_losses()) return FitStatus::NonFinite;
    RESNET_CHECK(r_.epoch_batches > 0, "epoch ", epoch + 1, ": no readable training images");
    return FitStatus::Completed;
  }

  // The epoch's log lines, evaluation and history; then the callbacks. True if one asks to stop.
  bool end_epoch(int64_t epoch, FitResult& res) {
    const std::string tag = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(o_.epochs());
    const double train_loss = r_.epoch_loss_sum / static_cast<double>(r_.epoch_batches);
    const double lr_now = optimizer_->lr();
    log("epoch " + std::to_string(epoch + 1) + " av_train_loss: " + detail::fmt("%.3f", train_loss) +
        " lr: " + detail::fmt("%.5f", lr_now));
    EpochEnd e;
    e.eval.loss = e.eval.acc = std::nan("");
    if (test_set_ && ((epoch + 1) % o_.eval_every() == 0 || epoch + 1 == o_.epochs())) {
      const auto eval_start = std::chrono::steady_clock::now();
      e.eval = evaluate(tag);
      e.eval_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - eval_start).count();
      log("epoch " + std::to_string(epoch + 1) + " av_test_acc: " + detail::fmt("%.3f", e.eval.acc));
      if (const ModelEma<T>* ema = extras_.ema()) {
        const EvalResult m = ema->with_weights(*model_, [&] { return evaluate(tag + " ema"); });
        e.eval.metrics["ema_acc"] = {m.acc};
        e.eval.metrics["ema_loss"] = {m.loss};
      }
      for (const auto& kv : e.eval.metrics)
        if (kv.second.size() == 1)
          log("epoch " + std::to_string(epoch + 1) + " " + kv.first + ": " +
              detail::fmt("%.3f", kv.second[0]));
    }
    e.improved = test_set_ && e.eval.acc > r_.best_acc;
    if (e.improved) {
      r_.best_acc = e.eval.acc;
      r_.best_epoch = epoch + 1;
    }
    e.row = tools::EpochMetrics{epoch + 1, train_loss, e.eval.loss, e.eval.acc, lr_now, this->seconds_now()};
    history_.push_back(e.row);
    e.history = &history_;
    r_.start_epoch_sums();
    r_.position = 0;
    r_.epoch_now = epoch + 1;
    res.epochs_done = epoch + 1;
    bool stop = false;
    for (auto& c : cbs_) stop = c->on_epoch_end(e) == Control::Stop || stop;
    return stop;
  }
};

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
