// The definitions of default_callbacks.hpp: included by it in header-only mode, and compiled once into the
// library in the compiled mode (src/train/default_callbacks.cpp). Not for direct inclusion.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "resnet/core/abi.hpp"
#include "resnet/io/paths.hpp"
#include "resnet/train/default_callbacks.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

namespace detail {
RESNET_INLINE std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}
RESNET_INLINE std::string seed_checkpoint_name(int64_t epoch, double loss, double acc, double lr) {
  return "epoch" + std::to_string(epoch) + "+loss" + fmt("%.3f", loss) + "+acc" + fmt("%.3f", acc) + "+lr" +
         fmt("%.5f", lr) + ".safetensors";
}
// Creates the output folder and proves it writable (rank 0, before the first epoch, not at its end).
RESNET_INLINE void ensure_out_dir(const std::string& dir) {
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

RESNET_INLINE std::string FileCallback::path(const std::string& file) const {
  return io::join_path(view_.options->out_dir(), file);
}

RESNET_INLINE void FileCallback::on_fit_start(const RunView& v) {
  view_ = v;
  if (v.main) detail::ensure_out_dir(v.options->out_dir());
}

RESNET_INLINE void StdoutLog::on_log_line(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

RESNET_INLINE void ProgressReport::on_fit_start(const RunView& v) {
  view_ = v;
  line_ =
      std::make_unique<tools::ProgressLine>(v.options->progress_period(), v.options->progress() && v.main);
}

RESNET_INLINE void ProgressReport::on_epoch_start(int64_t epoch) {
  epoch_ = epoch;
  images_ = batches_ = 0;
  if (line_) line_->reset_timer();
  start_ = std::chrono::steady_clock::now();
}

RESNET_INLINE Control ProgressReport::on_step_end(const StepInfo& s) {
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
  line_->update(tag() + " batch " + std::to_string(s.batch + 1) + "/" +
                std::to_string(view_.steps_per_epoch) + " | " +
                detail::fmt("%.1f", static_cast<double>(images_) / el) + " img/s | epoch " +
                tools::ProgressLine::format_duration(per_batch * static_cast<double>(left_here) + eval_est) +
                " left | run " + tools::ProgressLine::format_duration(left_run) + " left");
  return Control::Continue;
}

RESNET_INLINE Control ProgressReport::on_epoch_end(const EpochEnd& e) {
  if (e.eval.images > 0) eval_seconds_ = e.eval_seconds;
  clear();  // what follows the epoch (a warning, the next log line) starts on a clean line
  return Control::Continue;
}

RESNET_INLINE Control BestCheckpoint::on_epoch_end(const EpochEnd& e) {
  const TrainerOptions& o = *view_.options;
  if (!e.improved || !o.save_best()) return Control::Continue;
  const tools::EpochMetrics& r = e.row;
  view_.save_weights(
      path(o.best_name() ? o.best_name()(r.epoch, r.train_loss, r.test_acc, r.lr)
                         : detail::seed_checkpoint_name(r.epoch, r.train_loss, r.test_acc, r.lr)),
      r.epoch);
  return Control::Continue;
}

RESNET_INLINE Control MetricsCsv::on_epoch_end(const EpochEnd& e) {
  if (view_.main) tools::write_text_atomically(path("metrics.csv"), tools::metrics_csv(*e.history));
  return Control::Continue;
}

RESNET_INLINE Control CurvesPlot::on_epoch_end(const EpochEnd& e) {
  const TrainerOptions& o = *view_.options;
  if (view_.main)
    tools::write_text_atomically(
        path("curves.svg"),
        tools::training_curves_svg(*e.history, o.plot_title().empty() ? o.name() : o.plot_title()));
  return Control::Continue;
}

RESNET_INLINE Control LastCheckpoint::on_epoch_end(const EpochEnd& e) {
  view_.save_resumable(path("last.safetensors"), e.row.epoch);
  return Control::Continue;
}

// Today's outputs, in the order they act at an epoch's end.
RESNET_INLINE CallbackList default_callbacks() {
  return {std::make_shared<ProgressReport>(), std::make_shared<StdoutLog>(),
          std::make_shared<BestCheckpoint>(), std::make_shared<MetricsCsv>(),
          std::make_shared<CurvesPlot>(),     std::make_shared<LastCheckpoint>()};
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
