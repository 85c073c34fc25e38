// What a Trainer is told (TrainerOptions), what it calls back (Callbacks) and what fit() returns
// (FitResult). A program sets the options it cares about and leaves the rest at their defaults.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"
#include "resnet/core/arg.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "resnet/optim/schedule.hpp"
#include "resnet/tools/training_log.hpp"
#include "resnet/train/size_schedule.hpp"
#include "resnet/train/step_options.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

// Builds the learning-rate schedule once the run's length is known (the number of steps depends on the
// dataset and the batch). Null in the options: the optimizer's learning rate, constant.
using ScheduleFactory =
    std::function<std::unique_ptr<optim::LRSchedule>(int64_t total_steps, int64_t steps_per_epoch)>;

// A schedule from its options (kind, peak base_lr, the kind's own settings) laid over the run: its
// total_steps become the run's, its warm-up `warmup_epochs` of them (one-cycle has its own warm-up).
//   o.schedule = train::schedule(optim::ScheduleOptions().kind(optim::ScheduleKind::Cosine).base_lr(0.05));
ScheduleFactory schedule(optim::ScheduleOptions options, double warmup_epochs = 0);

// The same by the kind's name (a program's flag: onecycle, cosine, step, constant), peaking at `base_lr`.
ScheduleFactory schedule(const std::string& name, double base_lr, double warmup_epochs = 0);

// Checkpoint metadata (TrainingState::extra), and the name of a best-so-far checkpoint from its epoch
// (0-based), training loss, test accuracy and learning rate.
using CheckpointMetadata = std::map<std::string, std::string>;
using BestCheckpointName =
    std::function<std::string(int64_t epoch, double train_loss, double test_acc, double lr)>;

// Named setters, as every options object of the library:
//   auto o =
//   train::TrainerOptions().epochs(30).batch(64).out_dir("runs/a").schedule(train::schedule("cosine", 0.1));
struct TrainerOptions {
  RESNET_ARG(int64_t, epochs) = 1;
  RESNET_ARG(int64_t,
             batch) = 32;  // the GLOBAL batch: split evenly over the ranks (an error if it does not divide)
  RESNET_ARG(double, label_smoothing) = 0;
  RESNET_ARG(ScheduleFactory, schedule);   // null: constant at the optimizer's learning rate
  RESNET_ARG(std::string, schedule_name);  // saved in checkpoints (TrainingState::schedule)
  RESNET_ARG(int64_t, schedule_epochs) =
      0;  // > 0 and < epochs: the schedule was made for this many epochs and a resumed
          // run is longer; its remaining steps are stretched over the new length
  RESNET_ARG(int64_t,
             log_every) = 20;  // the seed's "[epoch E, batch B] loss: L" line every this many batches
  RESNET_ARG(std::string, out_dir) = "runs/train";
  RESNET_ARG(std::string, resume);  // a last.safetensors to continue exactly (same recipe, any world size)
  RESNET_ARG(uint64_t, seed) = 0;   // data order and augmentation (the model's weights are the caller's)
  RESNET_ARG(int, workers) = 1;     // loader threads per rank
  RESNET_ARG(int, prefetch) = 2;
  // Drop the last, smaller batch of an epoch when the training set holds more than one batch (BatchNorm
  // dislikes tiny batches; every rank then has the same number of samples each step).
  RESNET_ARG(bool, drop_last) = true;
  // Progressive resizing: the training images' size per epoch and the test set's (FixRes); empty: the
  // datasets' own sizes (train/size_schedule.hpp).
  RESNET_ARG(ImageSizeSchedule, image_sizes);
  // Evaluation averages the softmax probabilities of each test image and its mirror image (infer/tta.hpp).
  RESNET_ARG(bool, flip_tta) = false;
  // Test after every eval_every-th epoch and after the last; the other epochs' test loss and accuracy are
  // NaN in the history (a test pass can be a tenth of a short CPU run's time).
  RESNET_ARG(int64_t, eval_every) = 1;
  // Several ranks (dist::DataParallel): gradient bytes per all-reduce bucket, and whether BatchNorm
  // statistics are all-reduced too (SyncBatchNorm) instead of kept per rank.
  RESNET_ARG(size_t, bucket_bytes) = size_t(25) << 20;
  RESNET_ARG(bool, sync_batchnorm) = false;
  // Several ranks: all-reduce the gradients in bfloat16 (half the bytes, 8 significant bits; for links
  // slower than the backward pass: dist::DataParallelOptions::bf16_gradients).
  RESNET_ARG(bool, bf16_gradients) = false;
  // The whole step (zero_grad, forward, loss, backward, update) as a CUDA graph, captured after
  // `cuda_graph_warmup` eager steps of each batch shape and replayed (train/graph_step.hpp). CUDA devices
  // and one rank only (an error elsewhere). Off by default: it has never run on a GPU. In graph mode a
  // non-finite loss is seen after that step's update (the checkpoint on disk is the last good one either
  // way).
  RESNET_ARG(bool, cuda_graph) = false;
  RESNET_ARG(int, cuda_graph_warmup) = 2;
  // Gradient accumulation and clipping in the default eager step (not with cuda_graph).
  RESNET_ARG(StepOptions, step_options);
  RESNET_ARG(bool, save_best) = true;  // a weights-only checkpoint each time the test accuracy improves
  RESNET_ARG(int64_t, stop_after_epoch) = 0;  // end the session after this epoch as if stopped (0: never)
  // Metadata of every checkpoint.
  RESNET_ARG(std::string, arch);
  RESNET_ARG(std::vector<std::string>, class_names);
  RESNET_ARG(CheckpointMetadata, metadata);  // saved as TrainingState::extra (keys of our own win)
  // Messages.
  RESNET_ARG(std::string, name) = "train";  // prefix of error and status lines on stderr
  RESNET_ARG(std::string, plot_title);      // curves.svg's title (default: name)
  RESNET_ARG(std::string, resume_command);  // printed as "Continue with: <resume_command> --resume <last>"
  RESNET_ARG(std::string, nonfinite_hint) = "Try a lower learning rate or a longer warm-up.";
  RESNET_ARG(bool, progress) = true;         // the progress line on stderr (rank 0)
  RESNET_ARG(bool, handle_signals) = true;   // Ctrl-C / SIGTERM: finish the step, write last, stop
  RESNET_ARG(double, progress_period) = 30;  // seconds between progress lines when stderr is not a terminal
  // The name of the checkpoint written when the test accuracy improves (default: the seed's
  // epoch<E>+loss<L>+acc<A>+lr<R>.safetensors).
  RESNET_ARG(BestCheckpointName, best_name);
};

struct StepInfo {
  int64_t epoch = 0;  // 0-based
  int64_t batch = 0;  // 0-based position of the global batch in its epoch
  int64_t step = 0;   // optimizer steps done, this one included
  double loss = 0;    // mean over the global batch (all ranks)
  double lr = 0;
  int64_t images = 0;  // images in the global batch
};

// Plain functions for the common cases, added to the Trainer's callbacks as one (FunctionCallbacks,
// train/callback.hpp); a Callback object can do more (train/callback.hpp).
struct Callbacks {
  // Each log line (rank 0 only). Set, it replaces the stdout log.
  std::function<void(const std::string&)> on_log_line;
  // After every optimizer step and every epoch (every rank; the values are the same on all).
  std::function<void(const StepInfo&)> on_step_end;
  std::function<void(const tools::EpochMetrics&)> on_epoch_end;
  // Asked at every step, before its update; true on any rank stops every rank once that step is done
  // (last is written, status Stopped).
  std::function<bool()> should_stop;
};

enum class FitStatus {
  Completed,          // every epoch ran
  AlreadyComplete,    // a resumed run had nothing left to do
  StoppedAfterEpoch,  // TrainerOptions::stop_after_epoch
  Stopped,            // a callback returned Control::Stop (or Callbacks::should_stop was true)
  Interrupted,        // SIGINT / SIGTERM
  NonFinite,          // the loss became NaN or infinite (nothing saved for that step)
};

struct FitResult {
  FitStatus status = FitStatus::Completed;
  int64_t steps = 0;        // optimizer steps of the whole run (resumes included)
  int64_t epochs_done = 0;  // the run's, resumed ones included (a resumed run with nothing left: all of them)
  double best_acc = -1;     // best test accuracy so far (-1: none)
  int64_t best_epoch = 0;
  std::vector<tools::EpochMetrics> history;  // every epoch of the run, resumed ones included
  std::string last_path;                     // out_dir/last.safetensors
  int64_t skipped_images = 0;                // unreadable files, each counted once over all ranks and epochs
  // The conventional exit status: 0, 130 interrupted, 3 non-finite loss.
  int exit_code() const {
    return status == FitStatus::Interrupted ? 130 : status == FitStatus::NonFinite ? 3 : 0;
  }
};

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/train/options_inl.hpp"
#endif
