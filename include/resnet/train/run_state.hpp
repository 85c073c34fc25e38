// Where a run stands (RunState) and how it travels through checkpoints: the metadata every checkpoint
// carries, the position a resumable one adds (the global samples of the epoch consumed, the mid-epoch loss
// sums), and a resume that restores both from a last.safetensors. The position is in global samples, so a
// run saved with N ranks resumes with M.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"

#include <cmath>
#include <cstdint>
#include <string>

#include "resnet/io/checkpoint.hpp"
#include "resnet/io/paths.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/optim/optimizer.hpp"
#include "resnet/train/options.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

struct RunState {
  int64_t start_epoch = 0, epoch_now = 0, step = 0, first_batch = 0, position = 0;
  double epoch_loss_sum = 0, window_sum = 0, seconds_before = 0, best_acc = -1;
  int64_t epoch_batches = 0, window_count = 0, best_epoch = 0;
  int64_t stretch_from = -1;  // a resumed run longer than its schedule: the step its stretch begins at

  void start_epoch_sums() {
    epoch_loss_sum = window_sum = 0;
    epoch_batches = window_count = 0;
  }
};

namespace detail {
double extra_number(const io::TrainingState& s, const std::string& key, double fallback,
                    const std::string& file);
}  // namespace detail

// The metadata of every checkpoint: the caller's, then where the run stands.
io::TrainingState checkpoint_state(const TrainerOptions& o, const RunState& r, int64_t epochs_done, double lr,
                                   int64_t n_train, int world_size);

// What a resumable checkpoint adds: the position in the epoch and the sums so far.
void add_position(io::TrainingState& s, const TrainerOptions& o, const RunState& r, double seconds);

// Loads o.resume() into the model and optimizer (every rank reads the same file) and returns where it stood.
template <typename T>
RunState resume_run(const TrainerOptions& o, int64_t n_train, int64_t steps_per_epoch, nn::Module<T>& model,
                    optim::Optimizer<acc_t<T>>& optimizer) {
  RunState r;
  const bool stretch = o.schedule_epochs() > 0 && o.schedule_epochs() < o.epochs();
  if (o.resume().empty()) {
    if (stretch) r.stretch_from = 0;
    return r;
  }
  const std::string& ck = o.resume();
  RESNET_CHECK(io::is_regular_file(ck), "resume: checkpoint '", ck, "' does not exist");
  io::TrainingState st = io::read_training_state(ck);
  RESNET_CHECK(!st.optimizer.empty(), "resume: '", ck,
               "' holds weights only; resume from the run's last.safetensors");
  const double saved_n = detail::extra_number(st, "train_images", -1, ck);
  RESNET_CHECK(saved_n < 0 || saved_n == static_cast<double>(n_train), "resume: the run trained on ",
               static_cast<int64_t>(saved_n), " images but this training set has ", n_train,
               " (a different data folder or limit?)");
  RESNET_CHECK(o.class_names().empty() || st.class_names.empty() || st.class_names == o.class_names(),
               "resume: the checkpoint's classes differ from the data's");
  const double saved_batch = detail::extra_number(st, "global_batch", -1, ck);
  RESNET_CHECK(saved_batch < 0 || saved_batch == static_cast<double>(o.batch()), "resume: '", ck,
               "' was trained with global batch ", static_cast<int64_t>(saved_batch), ", not ", o.batch(),
               " (the batch is part of the recipe)");
  // A schedule is a function of the run's length: another length moves it under the resumed step (the rate
  // jumps), so it is refused unless schedule_epochs says how the planned schedule goes on.
  const double saved_epochs = detail::extra_number(st, "run_epochs", -1, ck);
  RESNET_CHECK(
      !o.schedule() || saved_epochs < 0 || saved_epochs == static_cast<double>(o.epochs()) || stretch,
      "resume: '", ck, "' is a run of ", static_cast<int64_t>(saved_epochs), " epochs and these options ",
      "ask for ", o.epochs(), "; its learning-rate schedule is laid over the run's length and would jump ",
      "at the resumed step. To train longer, set schedule_epochs to ", static_cast<int64_t>(saved_epochs),
      " (the schedule's remaining steps are stretched over the new length), or start a new run from ",
      "its weights (io::load, without resume) with a schedule of its own");
  if (stretch && o.schedule() && st.step >= o.schedule_epochs() * steps_per_epoch) {
    // The run had finished its schedule: the added epochs hold its last rate, useless when that is 0.
    const int64_t planned = o.schedule_epochs() * steps_per_epoch;
    const auto finished = o.schedule()(planned, steps_per_epoch);
    RESNET_CHECK(
        finished->lr(planned - 1) > 0, "resume: '", ck, "' finished its ", finished->name(),
        " schedule, whose last learning rate is 0: the ", o.epochs() - o.schedule_epochs(),
        " added epochs would not train. Start a new run from its weights (io::load, without resume) ",
        "with a schedule of its own");
  }
  st = io::load_checkpoint(ck, model, &optimizer);
  r.start_epoch = st.epoch;
  r.epoch_now = st.epoch;  // epochs done so far: what a run with nothing left to do reports
  r.step = st.step;
  const double samples = detail::extra_number(st, "samples_in_epoch", -1, ck);
  if (samples >= 0) {
    RESNET_CHECK(std::fmod(samples, static_cast<double>(o.batch())) == 0, "resume: '", ck, "' stopped after ",
                 static_cast<int64_t>(samples), " samples of its epoch, not a whole number of batches of ",
                 o.batch());
    r.first_batch = static_cast<int64_t>(samples) / o.batch();
  } else {
    r.first_batch = r.step - r.start_epoch * steps_per_epoch;  // checkpoints written before the position
  }
  RESNET_CHECK(r.first_batch >= 0 && r.first_batch <= steps_per_epoch, "resume: step ", r.step,
               " does not fall in epoch ", r.start_epoch + 1, " of ", steps_per_epoch, " steps");
  r.epoch_loss_sum = detail::extra_number(st, "epoch_loss_sum", 0, ck);
  r.epoch_batches = static_cast<int64_t>(detail::extra_number(st, "epoch_batches", 0, ck));
  r.window_sum = detail::extra_number(st, "window_sum", 0, ck);
  r.window_count = static_cast<int64_t>(detail::extra_number(st, "window_count", 0, ck));
  r.seconds_before = detail::extra_number(st, "seconds", 0, ck);
  r.best_acc = detail::extra_number(st, "best_acc", -1, ck);
  r.best_epoch = static_cast<int64_t>(detail::extra_number(st, "best_epoch", 0, ck));
  if (stretch) r.stretch_from = r.step;
  return r;
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/train/run_state_inl.hpp"
#endif
