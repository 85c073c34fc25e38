// RecipeOptions: everything the image-folder training recipe (train/recipe.hpp) is told. Two kinds of
// setting live here:
//  - the recipe proper (architecture, schedule, transforms, seed ...): it decides what a run computes, is
//    saved in every checkpoint (train/recipe_fields.hpp lists it) and a resumed run keeps it;
//  - where and how a run happens (data and output folders, device, threads, resume, logging).
// An unset std::optional takes a default that depends on other settings (resolve_recipe says which). Errors
// name a setting by its flag spelling (--eval-size), the name train_catsdogs and the checkpoint metadata use.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "resnet/core/arg.hpp"
#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

// A setting the caller got wrong (as opposed to a failure while running): programs exit with status 2.
class OptionError : public Error {
 public:
  explicit OptionError(const std::string& what) : Error(what) {}
};

struct RecipeOptions {
  // ---- The recipe: saved in every checkpoint; a resumed run keeps it (only epochs may grow).
  RESNET_ARG(std::string, arch) = "resnet18";  // resnet18 | resnet34 | resnet50 | resnet101 | resnet152
  RESNET_ARG(int64_t, epochs) = 20;
  RESNET_ARG(int64_t, batch) = 64;             // the global batch: split evenly over the ranks
  RESNET_ARG(std::optional<double>, lr);       // peak; default 0.1 for sgd, 0.001 for adamw
  RESNET_ARG(std::string, optimizer) = "sgd";  // sgd | adamw
  RESNET_ARG(double, momentum) = 0.9;          // SGD
  RESNET_ARG(bool, nesterov) = true;           // SGD; off when momentum is 0
  RESNET_ARG(std::optional<double>, wd);       // default 5e-4 for sgd (coupled), 0.05 for adamw (decoupled)
  RESNET_ARG(std::string, schedule) = "onecycle";  // onecycle | cosine | step | constant, per step
  RESNET_ARG(double, warmup_epochs) = 0;           // linear warm-up (onecycle has its own)
  RESNET_ARG(double, label_smoothing) = 0.1;
  RESNET_ARG(double, ema) = 0;                    // decay of the weights' moving average (0: off)
  RESNET_ARG(bool, ema_warmup) = true;            // timm's warm-up of the EMA decay
  RESNET_ARG(double, mixup) = 0;                  // mixup's Beta alpha (0: off)
  RESNET_ARG(double, cutmix) = 0;                 // cutmix's Beta alpha (0: off)
  RESNET_ARG(double, mix_prob) = 1;               // chance a batch is mixed
  RESNET_ARG(double, mix_switch) = 0.5;           // with both: chance of cutmix
  RESNET_ARG(bool, no_decay_norm) = false;        // no weight decay on BatchNorm parameters and biases
  RESNET_ARG(int64_t, accumulate) = 1;            // micro-batches per step
  RESNET_ARG(double, clip_grad) = 0;              // gradients' global norm limit (0: off)
  RESNET_ARG(int64_t, size) = 96;                 // training crop, pixels
  RESNET_ARG(std::optional<int64_t>, eval_size);  // default: size
  RESNET_ARG(std::optional<double>, eval_crop);   // centre fraction; default 0.875 with aug rrc, else 1
  RESNET_ARG(std::string, aug) = "rrc";         // rrc (resized crop + flip) | crop (pad, crop + flip) | none
  RESNET_ARG(double, crop_scale) = 0.25;        // smallest crop area of rrc
  RESNET_ARG(std::optional<int64_t>, padding);  // zero padding of aug crop; default size / 8
  RESNET_ARG(int64_t, limit) = 0;               // N images of each split, even over the classes; 0 = all
  RESNET_ARG(bool, zero_init) = false;          // each residual block starts as the identity
  RESNET_ARG(std::string, auto_augment) = "none";  // none | trivialaugment | randaugment, after the crop
  RESNET_ARG(int64_t, ra_ops) = 2;                 // randaugment: operations per image
  RESNET_ARG(int64_t, ra_magnitude) = 9;           // randaugment: magnitude bin, of 31
  RESNET_ARG(double, erase) = 0;                   // random erasing probability (0: off)
  RESNET_ARG(std::string, sizes) = "none";         // training sizes per epoch, "S@A-B,...,S@C-" (0-based)
  RESNET_ARG(std::optional<uint64_t>, seed);       // weights, data order, augmentation; default random

  // ---- Where and how.
  RESNET_ARG(std::string, data);  // a folder with train/ and test/, one sub-folder per class in each
  RESNET_ARG(std::optional<std::string>, out);  // output folder; default runs/recipe, or the resumed run's
  RESNET_ARG(std::string, init);  // start from these weights (non-strict: a head of another size is fresh)
  RESNET_ARG(std::string, freeze) = "none";  // none | backbone | comma list of conv1,bn1,layer1..4,fc
  RESNET_ARG(std::string, resume);           // a last.safetensors to continue exactly
  // Recipe keys (flag spelling without "--") set on purpose: on resume each must equal the checkpoint's even
  // when it is the default (a value other than the default always must).
  RESNET_ARG(std::vector<std::string>, pinned);
  RESNET_ARG(int64_t, stop_after_epoch) = 0;      // end the session after this epoch (0: never)
  RESNET_ARG(std::optional<int64_t>, log_every);  // the seed's loss line every N batches; default 20 (saved)
  RESNET_ARG(std::optional<bool>, sync_bn);       // several ranks: SyncBatchNorm; default off (saved)
  RESNET_ARG(bool, cuda_graph) = false;           // each step a replayed CUDA graph (CUDA, one rank)
  RESNET_ARG(bool, tta) = false;                  // evaluate each image and its mirror image (mean softmax)
  RESNET_ARG(int64_t, eval_every) = 1;            // test after every Nth epoch and after the last
  RESNET_ARG(bool, bf16_gradients) = false;       // several ranks: all-reduce gradients in bfloat16
  RESNET_ARG(std::string, dtype) = "float32";     // float32 | bfloat16 activations
  RESNET_ARG(std::string, memory_format);         // nchw | nhwc; "": the measured faster one
  RESNET_ARG(std::string, device) = "auto";       // auto | cpu | cuda
  RESNET_ARG(std::optional<int>, threads);        // default: the machine's cores shared by its ranks
  RESNET_ARG(std::optional<int>, workers);        // loader threads; default max(1, threads/4), cuda cores-2
  RESNET_ARG(bool, distributed) = true;           // under a launcher of N > 1 ranks, train over them
  // Messages: the program's name (log and error lines) and how to continue ("<resume_command> --resume").
  RESNET_ARG(std::string, name) = "recipe";
  RESNET_ARG(std::string, resume_command);  // default: name + " train"
  RESNET_ARG(std::string, nonfinite_hint) = "Try a lower --lr or more --warmup-epochs.";
  RESNET_ARG(bool, progress) = true;  // the progress line on stderr
  // Each log line (rank 0); set, it replaces the log on stdout.
  RESNET_ARG(std::function<void(const std::string&)>, on_log);
};

namespace detail {
template <typename... A>
[[noreturn]] void option_fail(A&&... parts) {
  throw OptionError(resnet::detail::concat(std::forward<A>(parts)...));
}
}  // namespace detail

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
