// What the Trainer tells the parts that watch a run (log lines, progress, files, checkpoints, a user's own):
// the Callback interface, the view of the run a callback gets, and the adapter that turns the plain
// function fields of train::Callbacks into one. A callback stops training by returning Control::Stop; the
// Trainer agrees the stop over the ranks before the next step (or at once at an epoch's end) and fit()
// returns FitStatus::Stopped with the epochs done.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "resnet/tools/training_log.hpp"
#include "resnet/train/evaluate.hpp"
#include "resnet/train/options.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

enum class Control { Continue, Stop };

// The run as a callback sees it, filled by the Trainer before on_fit_start.
struct RunView {
  const TrainerOptions* options = nullptr;
  bool main = true;  // rank 0, the one that prints and writes
  int64_t steps_per_epoch = 0, total_steps = 0, test_size = 0;
  // Checkpoints of the run as it stands, with its metadata (rank 0 writes, other ranks do nothing): the
  // weights alone, or all a resume needs (model, optimizer, the position in the epoch).
  std::function<void(const std::string&path, int64_t epochs_done)> save_weights, save_resumable;
};

struct EpochEnd {
  tools::EpochMetrics row;  // what metrics.csv gets for this epoch
  EvalResult eval;          // the test set's (eval.images == 0: no test set)
  bool improved = false;    // the test accuracy is the best so far
  double eval_seconds = 0;
  // Every epoch so far, this one included: the Trainer's own record, valid during the call only (copy what
  // you keep).
  const std::vector<tools::EpochMetrics>* history = nullptr;
};

// A run that ends before its last epoch: a stop, Ctrl-C, or a non-finite loss (nothing may be saved then).
struct Halt {
  FitStatus status = FitStatus::Stopped;
  int64_t epochs_done = 0;  // whole epochs; a stop mid-epoch also has a position in the next
  int64_t step = 0;
};

class Callback {
 public:
  virtual ~Callback() = default;
  // The name remove_callback() and replace_callback() know it by.
  virtual std::string name() const = 0;
  // Whether on_step_end needs the step's loss: it is then read from the device every step (a host wait).
  virtual bool wants_step_loss() const { return false; }
  virtual void on_fit_start(const RunView&) {}
  virtual void on_log_line(const std::string&) {}  // rank 0 only
  virtual void on_epoch_start(int64_t /*epoch*/) {}
  virtual Control on_step_end(const StepInfo&) { return Control::Continue; }
  virtual void on_eval_progress(const std::string& /*tag*/, int64_t /*done*/, int64_t /*total*/) {}
  virtual Control on_epoch_end(const EpochEnd&) { return Control::Continue; }
  virtual void on_halt(const Halt&) {}
  virtual void on_fit_end(const FitResult&) {}
};

using CallbackList = std::vector<std::shared_ptr<Callback>>;

// train::Callbacks' function fields as a callback: on_log_line replaces the stdout log (the Trainer drops
// its "log" callback when it is set); should_stop is asked during each step, before its on_step_end.
class FunctionCallbacks : public Callback {
 public:
  explicit FunctionCallbacks(Callbacks f) : f_(std::move(f)) {}
  std::string name() const override { return "functions"; }
  bool wants_step_loss() const override { return static_cast<bool>(f_.on_step_end); }
  void on_log_line(const std::string& line) override {
    if (f_.on_log_line) f_.on_log_line(line);
  }
  Control on_step_end(const StepInfo& s) override {
    const bool stop = f_.should_stop && f_.should_stop();
    if (f_.on_step_end) f_.on_step_end(s);
    return stop ? Control::Stop : Control::Continue;
  }
  Control on_epoch_end(const EpochEnd& e) override {
    if (f_.on_epoch_end) f_.on_epoch_end(e.row);
    return Control::Continue;
  }

 private:
  Callbacks f_;
};

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
