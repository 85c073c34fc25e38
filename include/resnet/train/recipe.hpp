// The image-folder training recipe as one call: train a ResNet on any DIR/train, DIR/test folder pair (one
// sub-folder per class) the way train_catsdogs does, with the seed's log lines and checkpoint names.
//
//   namespace train = resnet::train;
//   train::FitResult res = train::run_recipe(train::RecipeOptions().data("pets").epochs(5).out("runs/p"));
//   return res.exit_code();  // 0 done, 3 the loss became NaN, 130 interrupted
//
// It resolves the options (recipe_plan.hpp: defaults, checks, or the recipe of a run being resumed), joins
// the device and the ranks (recipe_runtime.hpp), builds the data (recipe_data.hpp), the ResNet, its
// optimizer and schedule, and runs a train::Trainer with the default callbacks (log lines, progress,
// metrics.csv, curves.svg, the best and the last checkpoints, which carry the recipe: recipe_eval.hpp
// evaluates and predicts from them). A bad setting throws OptionError, any other failure Error.
#pragma once

#include "resnet/core/abi.hpp"

#include <memory>
#include <string>
#include <type_traits>

#include "resnet/backend/cpu/conv.hpp"
#include "resnet/dist/init.hpp"
#include "resnet/io/checkpoint.hpp"
#include "resnet/models/resnet.hpp"
#include "resnet/nn/freeze.hpp"
#include "resnet/optim/adamw.hpp"
#include "resnet/optim/sgd.hpp"
#include "resnet/train/recipe_data.hpp"
#include "resnet/train/recipe_eval.hpp"
#include "resnet/train/recipe_plan.hpp"
#include "resnet/train/recipe_runtime.hpp"
#include "resnet/train/trainer.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

// Over the model's parameters (float master weights for 16-bit activations).
template <typename T, typename P = acc_t<T>>
std::shared_ptr<optim::Optimizer<P>> recipe_optimizer(const RecipeOptions& r, const nn::Module<T>& model) {
  std::shared_ptr<optim::Optimizer<P>> opt;
  if (r.optimizer() == "sgd")
    opt = std::make_shared<optim::SGD<P>>(
        model.named_parameters(),
        optim::SGDOptions().lr(*r.lr()).momentum(r.momentum()).nesterov(r.nesterov()).weight_decay(*r.wd()));
  else
    opt = std::make_shared<optim::AdamW<P>>(model.named_parameters(),
                                            optim::AdamWOptions().lr(*r.lr()).weight_decay(*r.wd()));
  if (r.no_decay_norm()) opt->add_group(optim::is_norm_or_bias, optim::GroupOptions().weight_decay(0));
  return opt;
}

// --ema, --mixup/--cutmix: the Trainer's parts.
template <typename T>
void recipe_parts(const RecipeOptions& r, Trainer<T>& trainer, int64_t classes) {
  if (r.ema() > 0)
    trainer.set_ema(EmaOptions().decay(r.ema()).warmup(r.ema_warmup() ? EmaWarmup::Power : EmaWarmup::None));
  if (r.mixup() > 0 || r.cutmix() > 0)
    trainer.set_mixup(MixupOptions()
                          .mixup_alpha(r.mixup())
                          .cutmix_alpha(r.cutmix())
                          .prob(r.mix_prob())
                          .switch_prob(r.mix_switch())
                          .label_smoothing(r.label_smoothing())
                          .seed(data::combine_seed(*r.seed(), 0x4d4958ULL /* "MIX" */)),
                      classes);
}

namespace detail {

// Without a memory format set: the measured faster one on the CPU (NHWC for bfloat16, NCHW for float32,
// core/tensor.hpp), NCHW on the GPU, whose kernels are NCHW.
template <typename T>
std::string recipe_layout(const RecipeOptions& r, const Device& device) {
  if (!r.memory_format().empty()) {
    if (r.memory_format() == "nhwc" && !device.is_cpu())
      option_fail("--memory-format nhwc: channels-last runs on the CPU only (the ", device.to_string(),
                  " kernels are NCHW)");
    return r.memory_format();
  }
  const bool bf16 = std::is_same<T, bf16_t>::value;
  return device.is_cpu() && cpu_training_memory_format(bf16) == MemoryFormat::ChannelsLast ? "nhwc" : "nchw";
}

// The run's first line: the model, the world (every rank's device; a collective), the data and the seed.
template <typename T>
std::string recipe_first_line(const RecipePlan& plan, const RecipeRuntime& rt, const RecipeData& d,
                              int64_t parameters, const std::string& layout) {
  const RecipeOptions& r = plan.recipe;
  dist::ProcessGroup& pg = *rt.group;
  const std::string where = pg.size() == 1 ? rt.device.to_string() : dist::describe_world(pg);
  std::string line = r.name() + ": " + r.arch() + " (" + std::to_string(parameters) + " parameters, " +
                     dtype_name(dtype_of<T>::value) + " " + layout + ") on " + where + ", " +
                     std::to_string(get_num_threads()) + " threads, " + std::to_string(rt.workers) +
                     " loader workers" + (pg.size() > 1 ? " per rank" : "") + "; data " + d.dir + ": " +
                     std::to_string(d.n_train) + " train / " + std::to_string(d.n_test) +
                     " test images, classes " + d.classes.front() + ".." + d.classes.back() + "; seed " +
                     std::to_string(*r.seed());
  if (pg.size() > 1)
    line += "; global batch " + std::to_string(r.batch()) + " = " + std::to_string(pg.size()) + " x " +
            std::to_string(r.batch() / pg.size()) + (r.bf16_gradients() ? ", bfloat16 gradients" : "");
  if (std::is_same<T, bf16_t>::value && rt.device.is_cpu())
    line += "; bfloat16 convolutions: " + cpu::describe_bf16_conv();
  return line;
}

template <typename T>
TrainerOptions recipe_trainer_options(const RecipePlan& plan, const RecipeRuntime& rt, const RecipeData& d) {
  const RecipeOptions& r = plan.recipe;
  TrainerOptions o;
  o.epochs(r.epochs());
  o.batch(r.batch());
  o.label_smoothing(r.label_smoothing());
  o.step_options(StepOptions().accumulate(r.accumulate()).clip_grad_norm(r.clip_grad()));
  o.schedule(schedule(r.schedule(), *r.lr(), r.warmup_epochs()));
  o.schedule_name(r.schedule());
  o.schedule_epochs(plan.epochs_before);
  o.log_every(*r.log_every());
  o.out_dir(plan.out_dir);
  o.resume(r.resume());
  o.seed(*r.seed());
  o.workers(rt.workers);
  o.drop_last(true);  // the Trainer keeps a lone batch when the set is no larger than one
  if (r.sizes() != "none") o.image_sizes(ImageSizeSchedule::parse(r.sizes()));
  o.flip_tta(r.tta());
  o.eval_every(r.eval_every());
  o.bf16_gradients(r.bf16_gradients());
  o.stop_after_epoch(r.stop_after_epoch());
  o.sync_batchnorm(*r.sync_bn());
  o.cuda_graph(r.cuda_graph());
  o.arch(r.arch());
  o.class_names(d.classes);
  o.metadata(recipe_metadata(r));
  o.name(r.name());
  o.plot_title(r.name() + " " + r.arch() + ", " + std::to_string(r.size()) + " px, batch " +
               std::to_string(r.batch()) + ", " + r.optimizer() + " lr " + round3_text(*r.lr()) + " " +
               r.schedule() + ", seed " + std::to_string(*r.seed()));
  o.resume_command(r.resume_command().empty() ? r.name() + " train" : r.resume_command());
  o.nonfinite_hint(r.nonfinite_hint());
  o.progress(r.progress());
  return o;
}

template <typename T>
FitResult run_recipe_as(const RecipePlan& plan, const RecipeRuntime& rt, const RecipeData& d) {
  const RecipeOptions& r = plan.recipe;
  auto mo = models::ResNetOptions().num_classes(static_cast<int64_t>(d.classes.size()));
  mo.seed(data::combine_seed(*r.seed(), 0x4d4f44454cULL /* "MODEL" */) | 1);  // 0 would mean "unseeded"
  mo.zero_init_residual(r.zero_init());
  auto model = models::resnet<T>(r.arch(), mo);
  if (!r.init().empty() && !plan.resuming) {
    // Non-strict: a head with another class count keeps its fresh initialisation.
    const io::LoadReport rep = io::load_matching(*model, r.init());
    if (rep.loaded.empty()) throw Error("--init: '" + r.init() + "' has no tensor that fits a " + r.arch());
    std::string text = rep.summary();
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (rt.group->is_main()) std::printf("--init: %s\n", text.c_str()), std::fflush(stdout);
  }
  nn::freeze(*model, recipe_freeze_list(r.freeze()));  // stop requiring grad; BatchNorms keep eval mode
  model->to(rt.device);
  const std::string layout = recipe_layout<T>(r, rt.device);
  if (layout == "nhwc") model->to(MemoryFormat::ChannelsLast);
  model->train();
  Trainer<T> trainer(model, recipe_optimizer(r, *model), d.train, d.test,
                     recipe_trainer_options<T>(plan, rt, d), Callbacks{r.on_log(), {}, {}, {}}, rt.group);
  recipe_parts(r, trainer, static_cast<int64_t>(d.classes.size()));
  trainer.log(recipe_first_line<T>(plan, rt, d, model->num_parameters(), layout));
  if (plan.epochs_before > 0) {
    const int64_t spe = trainer.steps_per_epoch(), step = plan.resumed_step;
    const int64_t old_total = plan.epochs_before * spe, new_total = r.epochs() * spe;
    trainer.log("--epochs " + std::to_string(r.epochs()) + " extends the run of " +
                std::to_string(plan.epochs_before) + " epochs: its schedule's remaining " +
                std::to_string(old_total - step) + " steps are stretched over " +
                std::to_string(new_total - step) + " from step " + std::to_string(step) +
                (old_total <= step ? " (the run had finished: its final learning rate " +
                                         number_text(trainer.lr_at(old_total - 1), "%.6g") + " is held)"
                                   : ""));
  }
  return trainer.fit();
}

}  // namespace detail

// Trains as described above; returns how the run ended (FitResult::exit_code() for a program's status).
inline FitResult run_recipe(const RecipeOptions& options) {
  const RecipeRuntime rt = recipe_runtime(options, options.distributed());
  const RecipePlan plan = plan_recipe(options);
  const RecipeOptions& r = plan.recipe;
  const int ranks = rt.group->size();
  if (r.batch() % ranks != 0)
    detail::option_fail("--batch ", r.batch(), " (the global batch) does not split evenly over ", ranks,
                        " ranks; give a multiple of ", ranks);
  if (r.cuda_graph() && !rt.device.is_cuda())
    detail::option_fail("--cuda-graph on: CUDA graphs need a CUDA device, but this run computes on ",
                        rt.device.to_string(), " (use --device cuda, or --cuda-graph off)");
  if (r.cuda_graph() && ranks > 1)
    detail::option_fail("--cuda-graph on: runs one rank, this run has ", ranks,
                        " (the gradient all-reduce is not captured)");
  manual_seed(*r.seed());
  const RecipeData d = recipe_data(r);
  if (r.dtype() == "bfloat16") return detail::run_recipe_as<bf16_t>(plan, rt, d);
  return detail::run_recipe_as<float>(plan, rt, d);
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
