// Every setting of RecipeOptions in one table (recipe_fields()): its key, kind of value, check and help
// (recipe_field.hpp says what a row holds). A program's flags are this table (train_catsdogs adds one flag
// per row); a checkpoint's recipe is its Recipe and Kept rows. A new setting is one RESNET_ARG in
// recipe_options.hpp and one row here.
#pragma once

#include "resnet/core/abi.hpp"

#include <string>
#include <vector>

#include "resnet/train/recipe_field.hpp"
#include "resnet/train/recipe_options.hpp"
#include "resnet/train/size_schedule.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

inline const std::vector<std::string>& recipe_archs() {
  static const std::vector<std::string> a{"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"};
  return a;
}

namespace detail {
// --sizes: "none" or an ImageSizeSchedule's text, checked by its parser.
struct SizeSchedule {
  std::string parse(const std::string& key, const std::string& s) const {
    check(key, s);
    return s;
  }
  void check(const std::string& key, const std::string& v) const {
    if (v == "none") return;
    try {
      ImageSizeSchedule::parse(v);
    } catch (const Error& e) {
      option_fail("--", key, ": expected none or SIZE@FIRST-LAST,...,SIZE@FIRST- (0-based epochs), got '", v,
                  "': ", e.what());
    }
  }
  std::string text(const std::string& v) const { return v; }
};
}  // namespace detail

// The rows, the recipe's first, in --help order.
inline const std::vector<RecipeField>& recipe_fields() {
  using detail::field, detail::IntIn, detail::NumberIn, detail::OneOf, detail::OnOff;
  using R = RecipeOptions&;
  constexpr FieldRole rec = FieldRole::Recipe, kept = FieldRole::Kept, run = FieldRole::Run;
  static const std::vector<RecipeField> table{
      field(
          "arch", rec, OneOf{recipe_archs()}, [](R o) -> auto& { return o.arch(); }, "NAME",
          "resnet18 | resnet34 | resnet50 | resnet101 | resnet152"),
      field(
          "epochs", rec, IntIn{1, 100000}, [](R o) -> auto& { return o.epochs(); }, "N", "epochs to train"),
      field(
          "batch", rec, IntIn{1, 65536}, [](R o) -> auto& { return o.batch(); }, "N",
          "images per batch (with several ranks: the global batch, split evenly)"),
      field(
          "lr", rec, NumberIn{0, 1e38}, [](R o) -> auto& { return o.lr(); }, "X", "peak learning rate",
          "0.1 for sgd, 0.001 for adamw"),
      field(
          "optimizer", rec, OneOf{{"sgd", "adamw"}}, [](R o) -> auto& { return o.optimizer(); }, "sgd|adamw",
          "optimizer"),
      field(
          "momentum", rec, NumberIn{0, 0.9999}, [](R o) -> auto& { return o.momentum(); }, "X",
          "SGD momentum"),
      field(
          "nesterov", rec, OnOff{}, [](R o) -> auto& { return o.nesterov(); }, "on|off",
          "Nesterov momentum for SGD"),
      field(
          "wd", rec, NumberIn{0, 10}, [](R o) -> auto& { return o.wd(); }, "X",
          "weight decay (coupled L2 for sgd, decoupled for adamw)", "5e-4 for sgd, 0.05 for adamw"),
      field(
          "schedule", rec, OneOf{{"onecycle", "cosine", "step", "constant"}},
          [](R o) -> auto& { return o.schedule(); }, "NAME",
          "learning-rate schedule, per step: onecycle (warm up to --lr over 30% of the run, then anneal), "
          "cosine, step (x0.1 every third of the run), constant"),
      field(
          "warmup-epochs", rec, NumberIn{0, 1000}, [](R o) -> auto& { return o.warmup_epochs(); }, "X",
          "linear warm-up before cosine/step/constant (onecycle has its own)"),
      field(
          "label-smoothing", rec, NumberIn{0, 0.99}, [](R o) -> auto& { return o.label_smoothing(); }, "X",
          "label smoothing of the cross-entropy loss"),
      field(
          "ema", rec, NumberIn{0, 0.999999}, [](R o) -> auto& { return o.ema(); }, "DECAY",
          "moving average of the weights with this decay (timm's ModelEmaV3), evaluated each epoch "
          "(ema_acc) and saved as last.ema.safetensors beside last.safetensors; 0 = off",
          "", "0"),
      field(
          "ema-warmup", rec, OnOff{}, [](R o) -> auto& { return o.ema_warmup(); }, "on|off",
          "--ema: timm's warm-up, decay min(DECAY, 1 - (1 + step)^(-2/3))", "", "on"),
      field(
          "mixup", rec, NumberIn{0, 100}, [](R o) -> auto& { return o.mixup(); }, "ALPHA",
          "mixup of each batch with its reverse, lambda ~ Beta(ALPHA, ALPHA) (timm's Mixup, batch mode); "
          "soft-target loss with --label-smoothing folded in; 0 = off",
          "", "0"),
      field(
          "cutmix", rec, NumberIn{0, 100}, [](R o) -> auto& { return o.cutmix(); }, "ALPHA",
          "cutmix: a box of area 1 - lambda, lambda ~ Beta(ALPHA, ALPHA), pasted from the batch's reverse; "
          "0 = off",
          "", "0"),
      field(
          "mix-prob", rec, NumberIn{0, 1}, [](R o) -> auto& { return o.mix_prob(); }, "P",
          "--mixup/--cutmix: probability that a batch is mixed", "", "1"),
      field(
          "mix-switch", rec, NumberIn{0, 1}, [](R o) -> auto& { return o.mix_switch(); }, "P",
          "with both --mixup and --cutmix: probability of cutmix for a mixed batch", "", "0.5"),
      field(
          "no-decay-norm", rec, OnOff{}, [](R o) -> auto& { return o.no_decay_norm(); }, "on|off",
          "no weight decay on BatchNorm parameters and biases (a parameter group)", "", "off"),
      field(
          "accumulate", rec, IntIn{1, 1024}, [](R o) -> auto& { return o.accumulate(); }, "N",
          "gradient accumulation: each batch runs as N micro-batches, one update (BatchNorm sees each "
          "micro-batch's statistics)",
          "", "1"),
      field(
          "clip-grad", rec, NumberIn{0, 1e30}, [](R o) -> auto& { return o.clip_grad(); }, "NORM",
          "clip the gradients to this global L2 norm before each update (a host wait per step); 0 = off", "",
          "0"),
      field(
          "size", rec, IntIn{16, 1024}, [](R o) -> auto& { return o.size(); }, "S",
          "training crop size in pixels"),
      field(
          "eval-size", rec, IntIn{16, 1024}, [](R o) -> auto& { return o.eval_size(); }, "S",
          "test image size", "--size"),
      field(
          "eval-crop", rec, NumberIn{0.05, 1}, [](R o) -> auto& { return o.eval_crop(); }, "X",
          "test: centre square of this fraction of the shorter side, resized to --eval-size",
          "0.875 with --aug rrc, else 1"),
      field(
          "aug", rec, OneOf{{"rrc", "crop", "none"}}, [](R o) -> auto& { return o.aug(); }, "rrc|crop|none",
          "training augmentation: rrc = random-resized crop + flip; crop = the seed's resize, pad, random "
          "crop + flip; none"),
      field(
          "crop-scale", rec, NumberIn{0.01, 1}, [](R o) -> auto& { return o.crop_scale(); }, "X",
          "smallest crop area (fraction of the image) for --aug rrc"),
      field(
          "padding", rec, IntIn{0, 1024}, [](R o) -> auto& { return o.padding(); }, "P",
          "zero padding before the random crop of --aug crop (at most --size)", "size/8"),
      field(
          "auto-augment", rec, OneOf{{"none", "trivialaugment", "randaugment"}},
          [](R o) -> auto& { return o.auto_augment(); }, "NAME",
          "after the crop and flip: torchvision's TrivialAugmentWide (one operation of 14 at a random "
          "magnitude) or RandAugment (--ra-ops operations at --ra-magnitude), or none",
          "", "none"),
      field(
          "ra-ops", rec, IntIn{1, 16}, [](R o) -> auto& { return o.ra_ops(); }, "N",
          "--auto-augment randaugment: operations per image", "", "2"),
      field(
          "ra-magnitude", rec, IntIn{0, 30}, [](R o) -> auto& { return o.ra_magnitude(); }, "M",
          "--auto-augment randaugment: magnitude bin (of 31)", "", "9"),
      field(
          "erase", rec, NumberIn{0, 1}, [](R o) -> auto& { return o.erase(); }, "P",
          "random erasing: probability of zeroing a random box (2-33% of the area) of each training image",
          "", "0"),
      field(
          "sizes", rec, detail::SizeSchedule{}, [](R o) -> auto& { return o.sizes(); }, "SPEC",
          "progressive resizing: training image size per epoch, e.g. 96@0-9,128@10- (0-based epochs; "
          "epochs before the first phase use --size; the test runs at --eval-size)",
          "", "none"),
      field(
          "limit", rec, IntIn{0, int64_t(1) << 40}, [](R o) -> auto& { return o.limit(); }, "N",
          "use only N images of each split, split evenly over the classes (0 = all)"),
      field(
          "zero-init", rec, OnOff{}, [](R o) -> auto& { return o.zero_init(); }, "on|off",
          "start each residual block as the identity (last BN weight 0)"),
      field(
          "seed", rec, IntIn{0, INT64_MAX}, [](R o) -> auto& { return o.seed(); }, "N",
          "seed of the weights, data order and augmentation; a CPU run with a seed repeats exactly",
          "random, printed"),
      field(
          "freeze", rec, detail::AnyText{}, [](R o) -> auto& { return o.freeze(); }, "WHAT",
          "keep parts fixed: none, backbone (everything but fc), or a comma list of conv1, bn1, "
          "layer1..layer4, fc; frozen BatchNorms stay in eval mode",
          "", "none"),
      field(
          "log-every", kept, IntIn{1, 1000000}, [](R o) -> auto& { return o.log_every(); }, "N",
          "print the average loss every N batches (a resumed run keeps its setting)", "20"),
      field(
          "sync-bn", kept, OnOff{}, [](R o) -> auto& { return o.sync_bn(); }, "on|off",
          "with several ranks (mpirun): BatchNorm statistics over the global batch (SyncBatchNorm) instead "
          "of each rank's share; a resumed run keeps its setting",
          "off"),
      field(
          "stop-after-epoch", run, IntIn{0, 100000}, [](R o) -> auto& { return o.stop_after_epoch(); }, "N",
          "end this session after epoch N as if interrupted (0 = never)"),
      field(
          "tta", run, OnOff{}, [](R o) -> auto& { return o.tta(); }, "on|off",
          "test-time augmentation: each test image's prediction is the mean of its and its mirror image's "
          "softmax probabilities"),
      field(
          "eval-every", run, IntIn{1, 100000}, [](R o) -> auto& { return o.eval_every(); }, "N",
          "test after every Nth epoch and after the last (the other epochs' test values are nan in "
          "metrics.csv)"),
      field(
          "bf16-gradients", run, OnOff{}, [](R o) -> auto& { return o.bf16_gradients(); }, "on|off",
          "with several ranks: all-reduce the gradients in bfloat16 (half the bytes on the network; "
          "for links slower than the backward pass)"),
      field(
          "cuda-graph", run, OnOff{}, [](R o) -> auto& { return o.cuda_graph(); }, "on|off",
          "run each training step as a replayed CUDA graph (captured after 2 eager steps of each batch "
          "shape); CUDA devices and one rank only"),
      field(
          "dtype", run, OneOf{{"float32", "bfloat16"}}, [](R o) -> auto& { return o.dtype(); },
          "float32|bfloat16",
          "activation type; bfloat16 keeps float32 master weights and BatchNorm statistics (checkpoints are "
          "float32 either way, so a run may resume in the other dtype)"),
      field(
          "memory-format", run, OneOf{{"", "nchw", "nhwc"}}, [](R o) -> auto& { return o.memory_format(); },
          "nchw|nhwc",
          "activation layout (nhwc = channels-last, CPU only); the default is the faster one measured "
          "(benchmarks/RESULTS.md)",
          "nhwc for bfloat16 on the CPU, else nchw"),
      field(
          "device", run, OneOf{{"auto", "cpu", "cuda"}}, [](R o) -> auto& { return o.device(); },
          "auto|cpu|cuda", "where to compute; auto picks cuda when built with CUDA and a GPU is present"),
      field(
          "threads", run, IntIn{1, 1024}, [](R o) -> auto& { return o.threads(); }, "N",
          "CPU threads for compute (OpenMP and BLAS)", "all cores"),
      field(
          "workers", run, IntIn{0, 256}, [](R o) -> auto& { return o.workers(); }, "N",
          "loader threads that decode and augment the next batches",
          "max(1, threads/4) on cpu, cores-2 (2..16) on cuda"),
  };
  return table;
}

inline const RecipeField& recipe_field(const std::string& key) {
  for (const auto& f : recipe_fields())
    if (f.key == key) return f;
  detail::option_fail("no recipe setting '", key, "'");
}

// Sets `key` from text, checked (an OptionError names the flag, what it accepts and the bad value).
inline void set_recipe_value(RecipeOptions& o, const std::string& key, const std::string& text) {
  recipe_field(key).parse(o, text);
}
// The same check without a RecipeOptions: "" when `text` is a good value of `key`, else the message.
inline std::string recipe_value_error(const std::string& key, const std::string& text) {
  try {
    RecipeOptions o;
    set_recipe_value(o, key, text);
    return "";
  } catch (const OptionError& e) {
    return e.what();
  }
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
