// The Trainer's default outputs, each a callback a program may drop (Trainer::remove_callback), replace or
// add to: "progress" (the rate and ETA line on stderr), "log" (log lines on stdout), "best" (a weights-only
// checkpoint when the test accuracy improves), "csv" (metrics.csv), "plot" (curves.svg) and "last"
// (last.safetensors after every epoch and on a stop, what --resume continues). Only rank 0 prints and
// writes; the file writers create out_dir before the first epoch, so an unwritable folder fails at once.
#pragma once

#include "resnet/core/abi.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include <unistd.h>

#include "resnet/core/error.hpp"
#include "resnet/tools/progress.hpp"
#include "resnet/tools/training_log.hpp"
#include "resnet/train/callback.hpp"

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
// Creates the output folder and proves it writable (rank 0, before the first epoch, not at its end).
inline void ensure_out_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  RESNET_CHECK(fs::is_directory(dir, ec), "output folder (out_dir): cannot create '", dir, "'");
  const std::string probe = (fs::path(dir) / (".write_test_" + std::to_string(::getpid()))).string();
  FILE* f = std::fopen(probe.c_str(), "wb");
  const bool ok = f && std::fputs("ok", f) >= 0 && std::fflush(f) == 0;
  const int err = errno;
  if (f) std::fclose(f);
  std::remove(probe.c_str());
  RESNET_CHECK(ok, "output folder (out_dir): cannot write in folder '", dir, "': ", std::strerror(err));
}
}  // namespace detail

// A callback that writes into out_dir: the folder is made and checked at the start.
class FileCallback : public Callback {
 public:
  void on_fit_start(const RunView& v) override {
    view_ = v;
    if (v.main) detail::ensure_out_dir(v.options->out_dir());
  }

 protected:
  std::string path(const std::string& file) const {
    return (std::filesystem::path(view_.options->out_dir()) / file).string();
  }
  RunView view_;
};

class StdoutLog : public Callback {
 public:
  std::string name() const override { return "log"; }
  void on_log_line(const std::string& line) override {
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
};

// "epoch 2/5 batch 7/16 | 41.3 img/s | epoch 0:12 left | run 1:05 left", redrawn on a terminal and every
// progress_period seconds elsewhere; cleared before each log line so the two never share a line.
class ProgressReport : public Callback {
 public:
  std::string name() const override { return "progress"; }
  void on_fit_start(const RunView& v) override {
    view_ = v;
    line_ =
        std::make_unique<tools::ProgressLine>(v.options->progress_period(), v.options->progress() && v.main);
  }
  void on_log_line(const std::string&) override { clear(); }
  void on_epoch_start(int64_t epoch) override {
    epoch_ = epoch;
    images_ = batches_ = 0;
    if (line_) line_->reset_timer();
    start_ = std::chrono::steady_clock::now();
  }
  Control on_step_end(const StepInfo& s) override {
    if (!line_ || !view_.main) return Control::Continue;
    images_ += s.images;
    ++batches_;
    const TrainerOptions& o = *view_.options;
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double per_batch = el / static_cast<double>(batches_);
    const int64_t left_here = view_.steps_per_epoch - (s.batch + 1);
    const double eval_est = eval_seconds_ >= 0 ? eval_seconds_
                                               : per_batch * static_cast<double>(view_.test_size) /
                                                     static_cast<double>(o.batch()) / 3;
    const double left_run = per_batch * static_cast<double>(view_.total_steps - s.step) +
                            eval_est * static_cast<double>(o.epochs() - epoch_);
    line_->update(
        tag() + " batch " + std::to_string(s.batch + 1) + "/" + std::to_string(view_.steps_per_epoch) +
        " | " + detail::fmt("%.1f", static_cast<double>(images_) / el) + " img/s | epoch " +
        tools::ProgressLine::format_duration(per_batch * static_cast<double>(left_here) + eval_est) +
        " left | run " + tools::ProgressLine::format_duration(left_run) + " left");
    return Control::Continue;
  }
  void on_eval_progress(const std::string& tag, int64_t done, int64_t total) override {
    if (line_) line_->update(tag + " testing " + std::to_string(done) + "/" + std::to_string(total));
  }
  Control on_epoch_end(const EpochEnd& e) override {
    if (e.eval.images > 0) eval_seconds_ = e.eval_seconds;
    clear();  // what follows the epoch (a warning, the next log line) starts on a clean line
    return Control::Continue;
  }
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
  Control on_epoch_end(const EpochEnd& e) override {
    const TrainerOptions& o = *view_.options;
    if (!e.improved || !o.save_best()) return Control::Continue;
    const tools::EpochMetrics& r = e.row;
    view_.save_weights(
        path(o.best_name() ? o.best_name()(r.epoch, r.train_loss, r.test_acc, r.lr)
                           : detail::seed_checkpoint_name(r.epoch, r.train_loss, r.test_acc, r.lr)),
        r.epoch);
    return Control::Continue;
  }
};

class MetricsCsv : public FileCallback {
 public:
  std::string name() const override { return "csv"; }
  Control on_epoch_end(const EpochEnd& e) override {
    if (view_.main) tools::write_text_atomically(path("metrics.csv"), tools::metrics_csv(*e.history));
    return Control::Continue;
  }
};

class CurvesPlot : public FileCallback {
 public:
  std::string name() const override { return "plot"; }
  Control on_epoch_end(const EpochEnd& e) override {
    const TrainerOptions& o = *view_.options;
    if (view_.main)
      tools::write_text_atomically(
          path("curves.svg"),
          tools::training_curves_svg(*e.history, o.plot_title().empty() ? o.name() : o.plot_title()));
    return Control::Continue;
  }
};

// last.safetensors: after every epoch, and on a stop or Ctrl-C with the position mid-epoch, so a resume
// continues at the next batch. Not after a non-finite loss: the file on disk is the last good state.
class LastCheckpoint : public FileCallback {
 public:
  std::string name() const override { return "last"; }
  Control on_epoch_end(const EpochEnd& e) override {
    view_.save_resumable(path("last.safetensors"), e.row.epoch);
    return Control::Continue;
  }
  void on_halt(const Halt& h) override {
    if (h.status != FitStatus::NonFinite) view_.save_resumable(path("last.safetensors"), h.epochs_done);
  }
};

// Today's outputs, in the order they act at an epoch's end.
inline CallbackList default_callbacks() {
  return {std::make_shared<ProgressReport>(), std::make_shared<StdoutLog>(),
          std::make_shared<BestCheckpoint>(), std::make_shared<MetricsCsv>(),
          std::make_shared<CurvesPlot>(),     std::make_shared<LastCheckpoint>()};
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
