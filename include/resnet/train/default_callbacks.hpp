// The Trainer's default outputs, each a callback a program may drop (Trainer::remove_callback), replace or
// add to: "progress" (the rate and ETA line on stderr), "log" (log lines on stdout), "best" (a weights-only
// checkpoint when the test accuracy improves), "csv" (metrics.csv), "plot" (curves.svg) and "last"
// (last.safetensors after every epoch and on a stop, what --resume continues). Only rank 0 prints and
// writes; the file writers create out_dir before the first epoch, so an unwritable folder fails at once.
#pragma once

#include "resnet/core/abi.hpp"

#include <chrono>
#include <memory>
#include <string>

#include "resnet/core/compiled_mode.hpp"
#include "resnet/core/error.hpp"
#include "resnet/tools/progress.hpp"
#include "resnet/tools/training_log.hpp"
#include "resnet/train/callback.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

namespace detail {
std::string fmt(const char* f, double v);
// The seed's checkpoint name: epoch<E>+loss<L>+acc<A>+lr<R>.safetensors.
std::string seed_checkpoint_name(int64_t epoch, double loss, double acc, double lr);
// Creates the output folder and proves it writable (rank 0, before the first epoch, not at its end).
void ensure_out_dir(const std::string& dir);
}  // namespace detail

// A callback that writes into out_dir: the folder is made and checked at the start.
class FileCallback : public Callback {
 public:
  void on_fit_start(const RunView& v) override;

 protected:
  std::string path(const std::string& file) const;
  RunView view_;
};

class StdoutLog : public Callback {
 public:
  std::string name() const override { return "log"; }
  void on_log_line(const std::string& line) override;
};

// "epoch 2/5 batch 7/16 | 41.3 img/s | epoch 0:12 left | run 1:05 left", redrawn on a terminal and every
// progress_period seconds elsewhere; cleared before each log line so the two never share a line.
class ProgressReport : public Callback {
 public:
  std::string name() const override { return "progress"; }
  void on_fit_start(const RunView& v) override;
  void on_log_line(const std::string&) override { clear(); }
  void on_epoch_start(int64_t epoch) override;
  Control on_step_end(const StepInfo& s) override;
  void on_eval_progress(const std::string& tag, int64_t done, int64_t total) override {
    if (line_) line_->update(tag + " testing " + std::to_string(done) + "/" + std::to_string(total));
  }
  Control on_epoch_end(const EpochEnd& e) override;
  void on_halt(const Halt&) override { clear(); }
  void on_fit_end(const FitResult&) override { clear(); }

 private:
  void clear() {
    if (line_) line_->clear();
  }
  std::string tag() const {
    return "epoch " + std::to_string(epoch_ + 1) + "/" + std::to_string(view_.options->epochs());
  }
  RunView view_;
  std::unique_ptr<tools::ProgressLine> line_;
  int64_t epoch_ = 0, images_ = 0, batches_ = 0;
  double eval_seconds_ = -1;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// The seed's epoch<E>+loss<L>+acc<A>+lr<R>.safetensors (or TrainerOptions::best_name) when the test
// accuracy improves, if TrainerOptions::save_best.
class BestCheckpoint : public FileCallback {
 public:
  std::string name() const override { return "best"; }
  Control on_epoch_end(const EpochEnd& e) override;
};

class MetricsCsv : public FileCallback {
 public:
  std::string name() const override { return "csv"; }
  Control on_epoch_end(const EpochEnd& e) override;
};

class CurvesPlot : public FileCallback {
 public:
  std::string name() const override { return "plot"; }
  Control on_epoch_end(const EpochEnd& e) override;
};

// last.safetensors: after every epoch, and on a stop or Ctrl-C with the position mid-epoch, so a resume
// continues at the next batch. Not after a non-finite loss: the file on disk is the last good state.
class LastCheckpoint : public FileCallback {
 public:
  std::string name() const override { return "last"; }
  Control on_epoch_end(const EpochEnd& e) override;
  void on_halt(const Halt& h) override {
    if (h.status != FitStatus::NonFinite) view_.save_resumable(path("last.safetensors"), h.epochs_done);
  }
};

// Today's outputs, in the order they act at an epoch's end.
CallbackList default_callbacks();

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/train/default_callbacks_inl.hpp"
#endif
