// train_catsdogs: the reference experiment (a ResNet telling cats from dogs, ../shared/seed) as a real
// training program, and the example every user starts from.
//
//   train_catsdogs train   [flags]            train, log as the seed did, checkpoint, plot
//   train_catsdogs eval    --weights CKPT     test accuracy of a checkpoint
//   train_catsdogs predict --weights CKPT IMAGE...
//   mpirun -np N train_catsdogs train ...     the same run over N ranks (--batch is the global batch)
//
// Run `train_catsdogs <command> --help` for every flag. The log lines, the checkpoint names and the
// prediction lines keep the seed's formats exactly; everything else (progress line, metrics.csv, curves.svg)
// is extra. The training loop itself is the library's (resnet/train/trainer.hpp); this program turns flags
// into a recipe, builds the data and the model, and hands them to a train::Trainer.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "resnet/data/data.hpp"
#include "resnet/dist/init.hpp"
#include "resnet/dist/launch_env.hpp"
#include "resnet/io/checkpoint.hpp"
#include "resnet/resnet.hpp"
#include "resnet/tools/cli.hpp"
#include "resnet/tools/progress.hpp"
#include "resnet/tools/training_log.hpp"
#include "resnet/train/train.hpp"

namespace fs = std::filesystem;
using resnet::Device;
using resnet::Tensor;
using resnet::tools::FlagSet;
using resnet::tools::UsageError;

namespace {

constexpr const char* kProgram = "train_catsdogs";
// Exit statuses (also in --help); 3 and 130 are train::FitResult::exit_code()'s.
constexpr int kExitError = 1, kExitUsage = 2;

// ---------------------------------------------------------------------------------------------------------
// Small helpers.

// Errors for the user: like RESNET_CHECK, without the source location (the message names the flag or file).
template <typename... A>
[[noreturn]] void fail(A&&... parts) {
  throw resnet::Error(resnet::detail::concat(std::forward<A>(parts)...));
}
template <typename... A>
void check(bool ok, A&&... parts) {
  if (!ok) fail(std::forward<A>(parts)...);
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

// A float as Python prints round(x, 3): "1.0", "0.87", "0.998".
std::string python_round3(double v) {
  std::string s = fmt("%.3f", v);
  while (s.size() > 1 && s.back() == '0' && s[s.size() - 2] != '.') s.pop_back();
  return s;
}

// Canonical text of a number, so values given as "0.10" and "0.1" compare equal.
std::string canonical(double v) { return fmt("%.17g", v); }

void say(resnet::tools::ProgressLine* progress, const std::string& line) {
  if (progress) progress->clear();
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

int hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

// ---------------------------------------------------------------------------------------------------------
// Where the data is: --data, else $RESNET_DATA, else ./data/catsdogs, else ../shared/data/catsdogs.

std::string resolve_data_dir(const FlagSet& f) {
  std::error_code ec;
  if (f.given("--data")) {
    const std::string& d = f.str("--data");
    check(fs::is_directory(d, ec), "--data: folder '", d, "' does not exist");
    return d;
  }
  const char* env = std::getenv("RESNET_DATA");
  if (env && *env) {
    check(fs::is_directory(env, ec), "RESNET_DATA: folder '", env, "' does not exist");
    return env;
  }
  for (const char* c : {"./data/catsdogs", "../shared/data/catsdogs"})
    if (fs::is_directory(c, ec)) return c;
  fail(
      "no dataset found. Looked at --data (not given), $RESNET_DATA (not set), ./data/catsdogs and "
      "../shared/data/catsdogs.\n"
      "Get the Kaggle Dogs vs. Cats training images (https://www.kaggle.com/c/dogs-vs-cats/data, train.zip) "
      "and "
      "arrange them one folder per class:\n"
      "  DIR/train/cat/cat.1.jpg ... cat.4000.jpg    DIR/train/dog/dog.1.jpg ... dog.4000.jpg\n"
      "  DIR/test/cat/cat.4001.jpg ... cat.5000.jpg  DIR/test/dog/dog.4001.jpg ... dog.5000.jpg\n"
      "then pass --data DIR or set RESNET_DATA=DIR");
}

std::string split_dir(const std::string& data, const std::string& split) {
  fs::path p = fs::path(data) / split;
  std::error_code ec;
  check(fs::is_directory(p, ec), "data folder '", data, "' has no ", split,
        "/ sub-folder (expected the layout DIR/train/<class>/*.jpg and DIR/test/<class>/*.jpg)");
  return p.string();
}

Device pick_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  bool have_cuda = false;
  std::string why = "this program was built without CUDA support (configure with nvcc present)";
#if RESNET_WITH_CUDA
  have_cuda = resnet::cuda::is_available();
  if (!have_cuda) why = "no usable CUDA device: " + resnet::cuda::unavailable_reason();
#endif
  if (name == "cuda") {
    if (!resnet::cuda_compiled()) throw UsageError("--device cuda: " + why);
    check(have_cuda, "--device cuda: ", why);
    return Device::cuda(0);
  }
  return have_cuda ? Device::cuda(0) : Device::cpu();
}

int default_workers(const Device& d, int threads) {
  if (d.is_cuda()) return std::min(16, std::max(2, hardware_threads() - 2));
  return std::max(1, threads / 4);  // decoding is cheap next to a CPU training step
}

// ---------------------------------------------------------------------------------------------------------
// The recipe: every flag that decides what a run computes. It is saved in each checkpoint, so eval/predict
// know the preprocessing and --resume continues with exactly the same settings.

struct Recipe {
  std::string arch;
  int64_t epochs = 0, batch = 0;
  double lr = 0;
  std::string optimizer;
  double momentum = 0, wd = 0;
  bool nesterov = true;
  std::string schedule;
  double warmup_epochs = 0, label_smoothing = 0;
  int64_t size = 0, eval_size = 0;
  double eval_crop = 1.0;
  std::string aug;
  double crop_scale = 0.25;
  int64_t padding = 0, limit = 0;
  bool zero_init = false;
  uint64_t seed = 0;

  // (flag, canonical value) pairs, in --help order.
  std::vector<std::pair<std::string, std::string>> fields() const {
    return {{"--arch", arch},
            {"--epochs", std::to_string(epochs)},
            {"--batch", std::to_string(batch)},
            {"--lr", canonical(lr)},
            {"--optimizer", optimizer},
            {"--momentum", canonical(momentum)},
            {"--nesterov", nesterov ? "on" : "off"},
            {"--wd", canonical(wd)},
            {"--schedule", schedule},
            {"--warmup-epochs", canonical(warmup_epochs)},
            {"--label-smoothing", canonical(label_smoothing)},
            {"--size", std::to_string(size)},
            {"--eval-size", std::to_string(eval_size)},
            {"--eval-crop", canonical(eval_crop)},
            {"--aug", aug},
            {"--crop-scale", canonical(crop_scale)},
            {"--padding", std::to_string(padding)},
            {"--limit", std::to_string(limit)},
            {"--zero-init", zero_init ? "on" : "off"},
            {"--seed", std::to_string(seed)}};
  }

  resnet::data::TransformOptions train_transform() const {
    resnet::data::TransformOptions t;
    t.size = static_cast<int>(size);
    t.augment = resnet::data::parse_augment(aug);
    t.padding = static_cast<int>(padding);
    t.scale_min = crop_scale;
    t.crop_fraction = eval_crop;  // used by --aug none
    return t;
  }
};

resnet::data::TransformOptions eval_transform(int64_t eval_size, double eval_crop) {
  return resnet::data::eval_transform(static_cast<int>(eval_size),
                                      eval_crop);  // the library's, as Classifier
}

const std::vector<std::string> kArchs{"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"};

// Reads the recipe from the flags (with defaults that depend on other flags resolved here).
Recipe recipe_from_flags(const FlagSet& f) {
  Recipe r;
  r.arch = f.choice("--arch", kArchs);
  r.epochs = f.integer("--epochs", 1, 100000);
  r.batch = f.integer("--batch", 1, 65536);
  r.optimizer = f.choice("--optimizer", {"sgd", "adamw"});
  const bool sgd = r.optimizer == "sgd";
  r.lr = f.str("--lr").empty() ? (sgd ? 0.1 : 1e-3) : f.number("--lr", 0, 1e38);
  r.momentum = f.number("--momentum", 0, 0.9999);
  r.nesterov = f.on_off("--nesterov");
  r.wd = f.str("--wd").empty() ? (sgd ? 5e-4 : 0.05) : f.number("--wd", 0, 10);
  r.schedule = f.choice("--schedule", {"onecycle", "cosine", "step", "constant"});
  r.warmup_epochs = f.number("--warmup-epochs", 0, 1000);
  r.label_smoothing = f.number("--label-smoothing", 0, 0.99);
  r.size = f.integer("--size", 16, 1024);
  r.eval_size = f.str("--eval-size").empty() ? r.size : f.integer("--eval-size", 16, 1024);
  r.aug = f.choice("--aug", {"rrc", "crop", "none"});
  r.eval_crop =
      f.str("--eval-crop").empty() ? (r.aug == "rrc" ? 0.875 : 1.0) : f.number("--eval-crop", 0.05, 1);
  r.crop_scale = f.number("--crop-scale", 0.01, 1);
  r.padding = f.str("--padding").empty() ? r.size / 8 : f.integer("--padding", 0, r.size);
  r.limit = f.integer("--limit", 0, int64_t(1) << 40);
  r.zero_init = f.on_off("--zero-init");
  if (f.str("--seed").empty()) {
    std::random_device rd;
    r.seed = (static_cast<uint64_t>(rd()) << 32 | rd()) % 1000000000ULL;  // short enough to retype
  } else {
    r.seed = f.unsigned_integer("--seed");
  }
  if (r.momentum == 0) r.nesterov = false;  // Nesterov needs momentum
  return r;
}

// ---------------------------------------------------------------------------------------------------------
// Flags.

void add_runtime_flags(FlagSet& f) {
  f.add("--device", "auto|cpu|cuda", "auto",
        "where to compute; auto picks cuda when built with CUDA and a GPU is present")
      .add("--threads", "N", "", "CPU threads for compute (OpenMP and BLAS)", "all cores")
      .add("--workers", "N", "", "loader threads that decode and augment the next batches",
           "max(1, threads/4) on cpu, cores-2 (2..16) on cuda");
}

FlagSet train_flags() {
  FlagSet f(
      std::string(kProgram) + " train [--data DIR] [flags]",
      "Trains a ResNet on DIR/train (one folder per class), tests on DIR/test after every epoch, and writes "
      "to "
      "--out: a checkpoint each time the test accuracy improves (epoch<E>+loss<L>+acc<A>+lr<R>.safetensors), "
      "last.safetensors after every epoch, metrics.csv and curves.svg.");
  f.add("--data", "DIR", "", "dataset folder with train/ and test/",
        "$RESNET_DATA, else ./data/catsdogs, else ../shared/data/catsdogs")
      .add("--arch", "NAME", "resnet18", "resnet18 | resnet34 | resnet50 | resnet101 | resnet152")
      .add("--epochs", "N", "20", "epochs to train")
      .add("--batch", "N", "64", "images per batch")
      .add("--lr", "X", "", "peak learning rate", "0.1 for sgd, 0.001 for adamw")
      .add("--optimizer", "sgd|adamw", "sgd", "optimizer")
      .add("--momentum", "X", "0.9", "SGD momentum")
      .add("--nesterov", "on|off", "on", "Nesterov momentum for SGD")
      .add("--wd", "X", "", "weight decay (coupled L2 for sgd, decoupled for adamw)",
           "5e-4 for sgd, 0.05 for adamw")
      .add("--schedule", "NAME", "onecycle",
           "learning-rate schedule, per step: onecycle (warm up to --lr over 30% of the run, then anneal), "
           "cosine, "
           "step (x0.1 every third of the run), constant")
      .add("--warmup-epochs", "X", "0", "linear warm-up before cosine/step/constant (onecycle has its own)")
      .add("--label-smoothing", "X", "0.1", "label smoothing of the cross-entropy loss")
      .add("--size", "S", "96", "training crop size in pixels")
      .add("--aug", "rrc|crop|none", "rrc",
           "training augmentation: rrc = random-resized crop + flip; crop = the seed's resize, pad, random "
           "crop + "
           "flip; none")
      .add("--crop-scale", "X", "0.25", "smallest crop area (fraction of the image) for --aug rrc")
      .add("--padding", "P", "", "zero padding before the random crop of --aug crop", "size/8")
      .add("--eval-size", "S", "", "test image size", "--size")
      .add("--eval-crop", "X", "",
           "test: centre square of this fraction of the shorter side, resized to --eval-size",
           "0.875 with --aug rrc, else 1")
      .add("--zero-init", "on|off", "off", "start each residual block as the identity (last BN weight 0)")
      .add("--limit", "N", "0", "use only N images of each split, split evenly over the classes (0 = all)")
      .add("--seed", "N", "",
           "seed of the weights, data order and augmentation; a CPU run with a seed repeats exactly",
           "random, printed");
  add_runtime_flags(f);
  f.add("--init", "CKPT", "",
        "start from another run's (or converted torchvision) weights, loading every tensor whose name and "
        "shape match; a head with another class count is re-initialised (the log lists what was skipped)")
      .add("--freeze", "WHAT", "none",
           "keep parts fixed: none, backbone (everything but fc), or a comma list of conv1, bn1, "
           "layer1..layer4, "
           "fc; frozen BatchNorms stay in eval mode")
      .add("--out", "DIR", "runs/catsdogs", "output folder", "runs/catsdogs, or the folder of --resume")
      .add("--resume", "CKPT", "",
           "continue a run from its last.safetensors (the recipe comes from the checkpoint; --epochs may "
           "raise the run's length, stretching the rest of its schedule)")
      .add("--stop-after-epoch", "N", "0", "end this session after epoch N as if interrupted (0 = never)")
      .add("--log-every", "N", "20", "print the average loss every N batches")
      .add("--sync-bn", "on|off", "off",
           "with several ranks (mpirun): BatchNorm statistics over the global batch (SyncBatchNorm) instead "
           "of "
           "each rank's share; a resumed run keeps its setting")
      .add("--cuda-graph", "on|off", "off",
           "run each training step as a replayed CUDA graph (captured after 2 eager steps of each batch "
           "shape); CUDA devices and one rank only; off by default until a GPU run shows it correct and "
           "faster")
      .add("--dtype", "float32|bfloat16", "float32",
           "activation type; bfloat16 keeps float32 master weights and BatchNorm statistics (checkpoints "
           "are float32 either way, so a run may resume in the other dtype)")
      .add("--memory-format", "nchw|nhwc", "",
           "activation layout (nhwc = channels-last); the default is the faster one measured "
           "(benchmarks/RESULTS.md): NCHW for float32 and on the GPU, NHWC for bfloat16 on the CPU",
           "nchw (float32), nhwc (bfloat16, CPU)");
  f.epilog(
      "Exit status: 0 done, 1 error, 2 bad command line, 3 the loss became NaN or infinite (the last good "
      "checkpoint is kept), 130 interrupted by Ctrl-C after writing last.safetensors.\n");
  return f;
}

FlagSet eval_flags() {
  FlagSet f(std::string(kProgram) + " eval --weights CKPT [--data DIR] [flags]",
            "Tests a checkpoint on DIR/test with the preprocessing it was trained for.");
  f.add("--weights", "CKPT", "", "checkpoint written by train_catsdogs train")
      .add("--data", "DIR", "", "dataset folder",
           "$RESNET_DATA, else ./data/catsdogs, else ../shared/data/catsdogs")
      .add("--split", "test|train", "test", "which split to evaluate")
      .add("--batch", "N", "64", "images per batch")
      .add("--limit", "N", "0", "use only N images, split evenly over the classes (0 = all)");
  add_runtime_flags(f);
  return f;
}

FlagSet predict_flags() {
  FlagSet f(
      std::string(kProgram) + " predict --weights CKPT IMAGE|FOLDER...",
      "Classifies each image (a FOLDER: every .jpg/.jpeg/.png under it, sorted) and prints, in order, one "
      "line per image: this picture might be: <class> , score: <softmax probability of that class, "
      "rounded to 3 decimals>. A missing or unreadable file is reported and skipped; the exit status is 1 "
      "only if nothing could be classified.");
  f.add("--weights", "CKPT", "", "checkpoint written by train_catsdogs train")
      .add("--csv", "FILE", "", "also write path,class,score,top_k,error rows to FILE (atomically)")
      .add("--top", "K", "1", "classes per image in the CSV, best first")
      .add("--batch", "N", "16", "images per forward pass")
      .add("--fuse", "on|off", "on", "fold BatchNorm into the convolutions (same outputs, faster)");
  add_runtime_flags(f);
  f.positional("IMAGE");
  return f;
}

std::vector<std::string> args_after(int argc, char** argv, int first) {
  std::vector<std::string> a;
  for (int i = first; i < argc; ++i) a.emplace_back(argv[i]);
  return a;
}

int workers_for(const FlagSet& f, const Device& d) {
  return f.str("--workers").empty() ? default_workers(d, resnet::get_num_threads())
                                    : static_cast<int>(f.integer("--workers", 0, 256));
}

// ---------------------------------------------------------------------------------------------------------
// Model, checkpoint metadata, evaluation.

// Training runs ResNet<T> for the activation type T that train_as<T> is instantiated with (float today;
// another dtype is one more branch in cmd_train); eval and predict use float.
using Model = resnet::models::ResNet<float>;

template <typename T = float>
std::shared_ptr<resnet::models::ResNet<T>> build_model(const std::string& arch, int64_t classes,
                                                       uint64_t seed, bool zero_init) {
  resnet::models::ResNetOptions o;
  o.num_classes = classes;
  o.seed = resnet::data::combine_seed(seed, 0x4d4f44454cULL /* "MODEL" */) | 1;  // 0 would mean "unseeded"
  o.zero_init_residual = zero_init;
  return resnet::models::resnet<T>(arch, o);
}

std::string extra_or(const resnet::io::TrainingState& s, const std::string& key,
                     const std::string& fallback) {
  auto it = s.extra.find(key);
  return it == s.extra.end() ? fallback : it->second;
}
double extra_number(const resnet::io::TrainingState& s, const std::string& key, double fallback) {
  auto it = s.extra.find(key);
  if (it == s.extra.end()) return fallback;
  char* end = nullptr;
  double v = std::strtod(it->second.c_str(), &end);
  check(end == it->second.c_str() + it->second.size(), "checkpoint metadata '", key, "' = '", it->second,
        "' is not a number");
  return v;
}

// The runtime of one process: where it computes, with how many threads, and its place in the job. The one
// place that decides devices (and, later, the activation dtype and memory format).
struct Runtime {
  std::shared_ptr<resnet::dist::ProcessGroup> group;  // SingleProcessGroup unless launched as N > 1 ranks
  Device device = Device::cpu();
  int workers = 1;
};

// Threads: --threads, else the machine's cores shared by the ranks on it.
void setup_threads(const FlagSet& f, int ranks_here) {
  int threads = f.str("--threads").empty() ? std::max(1, hardware_threads() / std::max(1, ranks_here))
                                           : static_cast<int>(f.integer("--threads", 1, 1024));
  resnet::set_num_threads(threads);
}

Runtime setup_runtime(const FlagSet& f, bool distributed) {
  const resnet::dist::LaunchEnv env = resnet::dist::detect_launch();
  Runtime rt;
  // Without MPI in the build, a run started as one of N > 1 ranks is refused (never N copies side by side).
  const std::string refusal = distributed ? resnet::dist::refuse_without_mpi(env) : "";
  check(refusal.empty(), refusal);
  setup_threads(f, distributed ? env.local_size : 1);
  rt.device = pick_device(f.choice("--device", {"auto", "cpu", "cuda"}));
  rt.group = distributed ? resnet::dist::init(rt.device) : resnet::dist::single_process_group(rt.device);
  if (rt.group->size() > 1) rt.device = rt.group->device();  // NCCL: the GPU of this rank's local rank
  rt.workers = workers_for(f, rt.device);
  return rt;
}

resnet::train::EvalResult evaluate_set(resnet::nn::Module<float>& model,
                                       const std::shared_ptr<const resnet::data::Dataset>& set, int64_t batch,
                                       int workers, std::shared_ptr<resnet::train::SkipLog> skips,
                                       resnet::tools::ProgressLine* progress) {
  resnet::train::EvalOptions eo;
  eo.batch = batch;
  eo.workers = workers;
  eo.skips = std::move(skips);
  if (progress)
    eo.progress = [progress](int64_t done, int64_t total) {
      progress->update("eval testing " + std::to_string(done) + "/" + std::to_string(total));
    };
  resnet::dist::SingleProcessGroup one(resnet::train::model_device(model));
  return resnet::train::evaluate(model, set, eo, one);
}

// ---------------------------------------------------------------------------------------------------------
// train

// ---------------------------------------------------------------------------------------------------------
// train

// --freeze: none, backbone (all but fc) or a comma list of the ResNet's top-level children.
std::vector<std::string> freeze_list(const std::string& what) {
  const std::vector<std::string> parts{"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"};
  if (what == "none") return {};
  if (what == "backbone") return {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4"};
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= what.size()) {
    const size_t comma = std::min(what.find(',', start), what.size());
    const std::string name = what.substr(start, comma - start);
    if (std::find(parts.begin(), parts.end(), name) == parts.end())
      throw UsageError("--freeze: '" + name +
                       "' is not none, backbone or one of conv1, bn1, layer1..layer4, fc");
    out.push_back(name);
    start = comma + 1;
  }
  if (out.size() == parts.size()) throw UsageError("--freeze: that freezes everything; nothing would train");
  return out;
}

// The layout a run uses without --memory-format: the measured faster one on the CPU
// (resnet::cpu_training_memory_format: NHWC for bfloat16, NCHW for float32), NCHW on the GPU.
template <typename T>
std::string default_layout(const resnet::Device& device) {
  const bool bfloat16 = std::is_same<T, resnet::bf16_t>::value;
  return device.is_cpu() && resnet::cpu_training_memory_format(bfloat16) == resnet::MemoryFormat::ChannelsLast
             ? "nhwc"
             : "nchw";
}

// The recipe: from the flags, or from the checkpoint being resumed (where a flag may only repeat it, or
// raise --epochs). --init and --freeze are saved beside it.
struct TrainPlan {
  Recipe recipe;
  int64_t log_every = 20;
  bool sync_bn = false;
  int64_t epochs_before = 0;  // > 0: a resumed run made longer, from this many epochs
  int64_t resumed_step = 0;
  std::string freeze, init_from, out_dir;
  bool resuming = false;
};

TrainPlan plan_from_flags(const FlagSet& flags) {
  TrainPlan p;
  p.log_every = flags.integer("--log-every", 1, 1000000);
  p.sync_bn = flags.on_off("--sync-bn");
  p.resuming = !flags.str("--resume").empty();
  if (p.resuming) {
    const std::string& ck = flags.str("--resume");
    std::error_code ec;
    check(fs::is_regular_file(ck, ec), "--resume: checkpoint '", ck, "' does not exist");
    const resnet::io::TrainingState resumed = resnet::io::read_training_state(ck);
    check(!resumed.arch.empty(), "--resume: '", ck, "' has no training metadata (not written by ", kProgram,
          " train)");
    check(!resumed.optimizer.empty(), "--resume: '", ck,
          "' holds weights only; resume from the run's last.safetensors");
    p.resumed_step = resumed.step;
    FlagSet from_ckpt = flags;
    for (const auto& kv : Recipe().fields()) {
      auto it = resumed.extra.find(kv.first.substr(2));
      check(it != resumed.extra.end(), "--resume: '", ck, "' lacks the recipe field '", kv.first.substr(2),
            "'");
      from_ckpt.set(kv.first, it->second);
    }
    p.recipe = recipe_from_flags(from_ckpt);
    if (!flags.given("--log-every") && resumed.extra.count("log-every")) {
      from_ckpt.set("--log-every", resumed.extra.at("log-every"));
      p.log_every = from_ckpt.integer("--log-every", 1, 1000000);  // a resumed run logs as it did
    }
    if (!flags.given("--sync-bn") && resumed.extra.count("sync-bn")) {
      from_ckpt.set("--sync-bn", resumed.extra.at("sync-bn"));
      p.sync_bn = from_ckpt.on_off("--sync-bn");
    }
    Recipe asked = recipe_from_flags(flags);
    auto saved = p.recipe.fields(), wanted = asked.fields();
    for (size_t i = 0; i < saved.size(); ++i) {
      if (!flags.given(saved[i].first) || saved[i].second == wanted[i].second) continue;
      if (saved[i].first == "--epochs" && asked.epochs > p.recipe.epochs) continue;  // a longer run: allowed
      throw UsageError(saved[i].first + " " + flags.str(saved[i].first) + " differs from the resumed run's " +
                       saved[i].second + "; a resumed run keeps its recipe (drop the flag" +
                       (saved[i].first == "--epochs" ? ", or raise it" : "") + ")");
    }
    if (asked.epochs > p.recipe.epochs && flags.given("--epochs")) {
      p.epochs_before = p.recipe.epochs;
      p.recipe.epochs = asked.epochs;
    }
    if (flags.given("--init")) throw UsageError("--init starts a new run; a resumed run has its weights");
    const std::string saved_freeze = extra_or(resumed, "freeze", "none");
    if (flags.given("--freeze") && flags.str("--freeze") != saved_freeze)
      throw UsageError("--freeze " + flags.str("--freeze") + " differs from the resumed run's " +
                       saved_freeze + "; a resumed run keeps its recipe (drop the flag)");
    p.freeze = saved_freeze;
    p.init_from = extra_or(resumed, "init", "");
  } else {
    p.recipe = recipe_from_flags(flags);
    p.freeze = flags.str("--freeze");
    p.init_from = flags.str("--init");
    std::error_code ec;
    if (!p.init_from.empty())
      check(fs::is_regular_file(p.init_from, ec), "--init: checkpoint '", p.init_from, "' does not exist");
  }
  p.out_dir = flags.given("--out") || !p.resuming ? flags.str("--out")
                                                  : fs::path(flags.str("--resume")).parent_path().string();
  return p;
}

// Over the model's parameters (float master weights for 16-bit activations).
template <typename T, typename P = resnet::acc_t<T>>
std::unique_ptr<resnet::optim::Optimizer<P>> make_optimizer(const Recipe& r,
                                                            const resnet::nn::Module<T>& model) {
  if (r.optimizer == "sgd") {
    auto o =
        resnet::optim::SGDOptions().lr(r.lr).momentum(r.momentum).nesterov(r.nesterov).weight_decay(r.wd);
    return std::make_unique<resnet::optim::SGD<P>>(model.named_parameters(), o);
  }
  auto o = resnet::optim::AdamWOptions().lr(r.lr).weight_decay(r.wd);
  return std::make_unique<resnet::optim::AdamW<P>>(model.named_parameters(), o);
}

// The data of a training run.
struct TrainData {
  std::string dir;
  std::vector<std::string> classes;
  int64_t n_train = 0, n_test = 0;
  std::shared_ptr<const resnet::data::Dataset> train, test;
};

// bfloat16 on the CPU: which convolution path this process measured its way to, and why.
template <typename T>
std::string bf16_conv_note(const resnet::Device& device) {
  if (!std::is_same<T, resnet::bf16_t>::value || device.is_cuda()) return "";
  return "; bfloat16 convolutions: " + resnet::cpu::describe_bf16_conv();
}

template <typename T>
int train_as(const FlagSet& flags, const Runtime& rt, const TrainPlan& plan, const TrainData& data);

int cmd_train(int argc, char** argv) {
  FlagSet flags = train_flags();
  flags.parse(args_after(argc, argv, 2));
  if (flags.help_requested()) {
    std::fputs(flags.help_text().c_str(), stdout);
    return 0;
  }
  const Runtime rt = setup_runtime(flags, true);
  resnet::dist::ProcessGroup& pg = *rt.group;
  flags.integer("--stop-after-epoch", 0, 100000);  // a bad value is a usage error before any work
  const TrainPlan plan = plan_from_flags(flags);
  const Recipe& recipe = plan.recipe;
  if (recipe.batch % pg.size() != 0)
    throw UsageError("--batch " + std::to_string(recipe.batch) +
                     " (the global batch) does not split evenly over " + std::to_string(pg.size()) +
                     " ranks; give a multiple of " + std::to_string(pg.size()));
  freeze_list(plan.freeze);  // a bad --freeze is a usage error before any work
  if (flags.on_off("--cuda-graph")) {
    if (!rt.device.is_cuda())
      throw UsageError("--cuda-graph on: CUDA graphs need a CUDA device, but this run computes on " +
                       rt.device.to_string() + " (use --device cuda, or --cuda-graph off)");
    if (pg.size() > 1)
      throw UsageError("--cuda-graph on: runs one rank, this run has " + std::to_string(pg.size()) +
                       " (the gradient all-reduce is not captured)");
  }
  resnet::manual_seed(recipe.seed);

  // Data.
  const std::string data_dir = resolve_data_dir(flags);
  resnet::data::ImageFolderOptions fo;
  fo.limit = recipe.limit;
  resnet::data::ImageFolder train_folder(split_dir(data_dir, "train"), fo);
  resnet::data::ImageFolder test_folder(split_dir(data_dir, "test"), fo);
  check(train_folder.classes() == test_folder.classes(), "data folder '", data_dir,
        "': train/ and test/ have different class folders");
  const std::vector<std::string> classes = train_folder.classes();
  check(classes.size() >= 2, "data folder '", data_dir, "': train/ has ", classes.size(),
        " class folder(s); a classifier needs at least two");
  const int64_t n_train = train_folder.size(), n_test = test_folder.size();
  if (plan.resuming) {
    const resnet::io::TrainingState st = resnet::io::read_training_state(flags.str("--resume"));
    check(extra_number(st, "train_images", -1) == static_cast<double>(n_train), "--resume: the run used ",
          extra_or(st, "train_images", "?"), " training images but '", data_dir, "' gives ", n_train,
          " (a different data folder or --limit?)");
    check(st.class_names == classes, "--resume: the checkpoint's classes differ from the data folder's");
  }
  TrainData data;
  data.dir = data_dir;
  data.classes = classes;
  data.n_train = n_train;
  data.n_test = n_test;
  data.train =
      std::make_shared<resnet::data::ImageFolderDataset>(std::move(train_folder), recipe.train_transform());
  data.test = std::make_shared<resnet::data::ImageFolderDataset>(
      std::move(test_folder), eval_transform(recipe.eval_size, recipe.eval_crop));
  // The activation type: one branch per --dtype.
  if (flags.choice("--dtype", {"float32", "bfloat16"}) == "bfloat16")
    return train_as<resnet::bf16_t>(flags, rt, plan, data);
  return train_as<float>(flags, rt, plan, data);
}

template <typename T>
int train_as(const FlagSet& flags, const Runtime& rt, const TrainPlan& plan, const TrainData& data) {
  resnet::dist::ProcessGroup& pg = *rt.group;
  const Recipe& recipe = plan.recipe;
  const std::vector<std::string>& classes = data.classes;
  // Model and optimizer (the Trainer loads --resume into both).
  auto model =
      build_model<T>(recipe.arch, static_cast<int64_t>(classes.size()), recipe.seed, recipe.zero_init);
  if (!plan.init_from.empty() && !plan.resuming) {
    // Non-strict: a head with another class count keeps its fresh initialisation.
    resnet::io::LoadReport rep =
        resnet::io::load_checkpoint(plan.init_from, *model, nullptr, resnet::io::LoadOptions::non_strict());
    check(!rep.loaded.empty(), "--init: '", plan.init_from, "' has no tensor that fits a ", recipe.arch);
    std::string text = rep.summary();
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (pg.is_main()) say(nullptr, "--init: " + text);
  }
  resnet::nn::freeze(*model, freeze_list(plan.freeze));  // stop requiring grad; BatchNorms keep eval
  model->to(rt.device);
  const std::string layout = flags.given("--memory-format")
                                 ? flags.choice("--memory-format", {"nchw", "nhwc"})
                                 : default_layout<T>(rt.device);
  // Channels-last on the GPU has no kernels of its own yet (every op would convert): refused, not slow.
  check(layout == "nchw" || rt.device.is_cpu(),
        "--memory-format nhwc: channels-last runs on the CPU only (the ", rt.device.to_string(),
        " kernels are NCHW)");
  if (layout == "nhwc") model->to(resnet::MemoryFormat::ChannelsLast);
  model->train();
  std::shared_ptr<resnet::optim::Optimizer<resnet::acc_t<T>>> optimizer = make_optimizer(recipe, *model);

  resnet::train::TrainerOptions o;
  o.epochs = recipe.epochs;
  o.batch = recipe.batch;
  o.label_smoothing = recipe.label_smoothing;
  o.schedule = resnet::train::schedule(recipe.schedule, recipe.lr, recipe.warmup_epochs);
  o.schedule_name = recipe.schedule;
  o.schedule_epochs = plan.epochs_before;
  o.log_every = plan.log_every;
  o.out_dir = plan.out_dir;
  o.resume = flags.str("--resume");
  o.seed = recipe.seed;
  o.workers = rt.workers;
  o.drop_last = true;  // the Trainer keeps a lone batch when the set is no larger than one
  o.stop_after_epoch = flags.integer("--stop-after-epoch", 0, 100000);
  o.arch = recipe.arch;
  o.class_names = classes;
  for (const auto& kv : recipe.fields()) o.metadata[kv.first.substr(2)] = kv.second;
  o.metadata["log-every"] = std::to_string(plan.log_every);
  o.metadata["sync-bn"] = plan.sync_bn ? "on" : "off";
  o.sync_batchnorm = plan.sync_bn;
  o.cuda_graph = flags.on_off("--cuda-graph");
  o.metadata["freeze"] = plan.freeze;
  if (!plan.init_from.empty()) o.metadata["init"] = plan.init_from;
  o.name = kProgram;
  o.plot_title = std::string(kProgram) + " " + recipe.arch + ", " + std::to_string(recipe.size) +
                 " px, batch " + std::to_string(recipe.batch) + ", " + recipe.optimizer + " lr " +
                 python_round3(recipe.lr) + " " + recipe.schedule + ", seed " + std::to_string(recipe.seed);
  o.resume_command = std::string(kProgram) + " train";
  o.nonfinite_hint = "Try a lower --lr or more --warmup-epochs.";
  resnet::train::Trainer<T> trainer(model, optimizer, data.train, data.test, o, {}, rt.group);

  // The first line names the world (every rank's device) and the data; describe_world is a collective.
  const std::string where = pg.size() == 1 ? rt.device.to_string() : resnet::dist::describe_world(pg);
  trainer.log(
      std::string(kProgram) + ": " + recipe.arch + " (" + std::to_string(model->num_parameters()) +
      " parameters, " + resnet::dtype_name(resnet::dtype_of<T>::value) + " " + layout + ") on " + where +
      ", " + std::to_string(resnet::get_num_threads()) + " threads, " + std::to_string(rt.workers) +
      " loader workers" + (pg.size() > 1 ? " per rank" : "") + "; data " + data.dir + ": " +
      std::to_string(data.n_train) + " train / " + std::to_string(data.n_test) + " test images, classes " +
      classes.front() + ".." + classes.back() + "; seed " + std::to_string(recipe.seed) +
      (pg.size() > 1 ? "; global batch " + std::to_string(recipe.batch) + " = " + std::to_string(pg.size()) +
                           " x " + std::to_string(recipe.batch / pg.size())
                     : "") +
      bf16_conv_note<T>(rt.device));
  if (plan.epochs_before > 0) {
    const int64_t spe = trainer.steps_per_epoch(), step = plan.resumed_step;
    const int64_t old_total = plan.epochs_before * spe, new_total = recipe.epochs * spe;
    trainer.log("--epochs " + std::to_string(recipe.epochs) + " extends the run of " +
                std::to_string(plan.epochs_before) + " epochs: its schedule's remaining " +
                std::to_string(old_total - step) + " steps are stretched over " +
                std::to_string(new_total - step) + " from step " + std::to_string(step) +
                (old_total <= step ? " (the run had finished: its final learning rate " +
                                         fmt("%.6g", trainer.lr_at(old_total - 1)) + " is held)"
                                   : ""));
  }
  return trainer.fit().exit_code();
}

// ---------------------------------------------------------------------------------------------------------
// eval and predict

struct LoadedModel {
  std::shared_ptr<Model> model;
  resnet::io::TrainingState state;
  resnet::data::TransformOptions transform;
};

LoadedModel load_for_inference(const std::string& path, const Device& device) {
  std::error_code ec;
  check(fs::is_regular_file(path, ec), "--weights: checkpoint '", path, "' does not exist");
  LoadedModel m;
  m.state = resnet::io::read_training_state(path);
  check(!m.state.arch.empty() && !m.state.class_names.empty(), "--weights: '", path,
        "' has no training metadata (architecture, class names); use a checkpoint written by ", kProgram,
        " train");
  const int64_t eval_size = static_cast<int64_t>(extra_number(m.state, "eval-size", 96));
  m.transform = eval_transform(eval_size, extra_number(m.state, "eval-crop", 1.0));
  m.model = build_model(m.state.arch, static_cast<int64_t>(m.state.class_names.size()), 1, false);
  resnet::io::load(*m.model, path);
  m.model->to(device);
  m.model->eval();
  return m;
}

int cmd_eval(int argc, char** argv) {
  FlagSet flags = eval_flags();
  flags.parse(args_after(argc, argv, 2));
  if (flags.help_requested()) {
    std::fputs(flags.help_text().c_str(), stdout);
    return 0;
  }
  if (flags.str("--weights").empty()) throw UsageError("eval needs --weights CKPT");
  const Runtime rt = setup_runtime(flags, false);
  const Device device = rt.device;
  const int64_t batch = flags.integer("--batch", 1, 65536);
  const std::string split = flags.choice("--split", {"test", "train"});
  resnet::data::ImageFolderOptions fo;
  fo.limit = flags.integer("--limit", 0, int64_t(1) << 40);
  const std::string data_dir = resolve_data_dir(flags);
  LoadedModel m = load_for_inference(flags.str("--weights"), device);
  resnet::data::ImageFolder folder(split_dir(data_dir, split), fo);
  check(folder.classes() == m.state.class_names, "the classes of '", folder.root(),
        "' differ from the checkpoint's");
  auto set = std::make_shared<resnet::data::ImageFolderDataset>(std::move(folder), m.transform);
  auto skips = std::make_shared<resnet::train::SkipLog>();
  resnet::tools::ProgressLine progress;
  const resnet::train::EvalResult ev = evaluate_set(*m.model, set, batch, rt.workers, skips, &progress);
  progress.clear();
  if (!skips->indices().empty())
    std::fprintf(stderr, "warning: %lld unreadable image files were skipped (named above)\n",
                 static_cast<long long>(skips->indices().size()));
  say(nullptr, split + " images: " + std::to_string(ev.images) + " av_test_loss: " + fmt("%.3f", ev.loss) +
                   " av_test_acc: " + fmt("%.3f", ev.acc));
  return 0;
}

// predict's inputs: files as given, folders expanded to their images (sorted); a folder without images is
// reported like an unreadable file.
std::vector<std::string> expand_inputs(const std::vector<std::string>& args,
                                       std::vector<std::string>& errors) {
  std::vector<std::string> out;
  for (const auto& a : args) {
    std::error_code ec;
    if (!fs::is_directory(a, ec)) {
      out.push_back(a);  // missing or unreadable files are reported by the Classifier
      continue;
    }
    std::vector<std::string> found;
    for (auto it = fs::recursive_directory_iterator(a, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      std::string ext = it->path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      if (ext == ".jpg" || ext == ".jpeg" || ext == ".png") found.push_back(it->path().string());
    }
    if (ec) errors.push_back("folder '" + a + "' cannot be read: " + ec.message());
    if (found.empty() && !ec) errors.push_back("folder '" + a + "' has no .jpg, .jpeg or .png images");
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\n\r") == std::string::npos) return v;
  std::string q = "\"";
  for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

int cmd_predict(int argc, char** argv) {
  FlagSet flags = predict_flags();
  flags.parse(args_after(argc, argv, 2));
  if (flags.help_requested()) {
    std::fputs(flags.help_text().c_str(), stdout);
    return 0;
  }
  if (flags.str("--weights").empty()) throw UsageError("predict needs --weights CKPT");
  if (flags.positional_args().empty()) throw UsageError("predict needs at least one IMAGE or FOLDER");
  const int top = static_cast<int>(flags.integer("--top", 1, 1000));
  resnet::infer::ClassifierOptions co;
  co.device = setup_runtime(flags, false).device;
  co.batch_size = flags.integer("--batch", 1, 65536);
  co.fuse = flags.on_off("--fuse");
  const std::string weights = flags.str("--weights");
  std::error_code ec;
  check(fs::is_regular_file(weights, ec), "--weights: checkpoint '", weights, "' does not exist");
  const resnet::io::TrainingState st = resnet::io::read_training_state(weights);
  check(!st.arch.empty() && !st.class_names.empty(), "--weights: '", weights,
        "' has no training metadata (architecture, class names); use a checkpoint written by ", kProgram,
        " train");
  co.eval_size = static_cast<int>(extra_number(st, "eval-size", 96));  // this program's default size
  co.eval_crop = extra_number(st, "eval-crop", 1.0);
  auto clf = resnet::infer::Classifier::open(weights, co);

  std::vector<std::string> errors;
  const std::vector<std::string> paths = expand_inputs(flags.positional_args(), errors);
  for (const auto& e : errors) std::fprintf(stderr, "%s: error: %s; skipped\n", kProgram, e.c_str());
  std::vector<resnet::infer::FileResult> results = clf.classify_files(paths, std::max(top, 1));
  std::string csv = "path,class,score,top_k,error\n";
  int64_t classified = 0;
  for (const auto& r : results) {
    if (!r.ok) {
      std::fprintf(stderr, "%s: error: %s; skipped\n", kProgram, r.error.c_str());
      csv += csv_field(r.path) + ",,,," + csv_field(r.error) + "\n";
      continue;
    }
    ++classified;
    const auto& best = r.prediction.top.front();
    say(nullptr, "this picture might be: " + best.label + " , score: " + python_round3(best.probability));
    std::string topk;
    for (const auto& c : r.prediction.top)
      topk += (topk.empty() ? "" : " ") + c.label + ":" + fmt("%.6f", c.probability);
    csv += csv_field(r.path) + "," + csv_field(best.label) + "," + fmt("%.6f", best.probability) + "," +
           csv_field(topk) + ",\n";
  }
  if (!flags.str("--csv").empty()) resnet::tools::write_text_atomically(flags.str("--csv"), csv);
  const int64_t failed =
      static_cast<int64_t>(results.size()) - classified + static_cast<int64_t>(errors.size());
  if (failed > 0)
    std::fprintf(stderr, "%s: classified %lld of %lld images; %lld skipped (named above)\n", kProgram,
                 static_cast<long long>(classified), static_cast<long long>(classified + failed),
                 static_cast<long long>(failed));
  return classified > 0 ? 0 : kExitError;
}

void print_usage(FILE* f) {
  std::fprintf(
      f,
      "usage: %s <command> [flags]\n\n"
      "Trains and uses a ResNet that tells cats from dogs (any one-folder-per-class image set works).\n\n"
      "commands:\n"
      "  train     train on DATA/train, test on DATA/test every epoch, checkpoint the best and the last\n"
      "  eval      test accuracy of a checkpoint\n"
      "  predict   classify image files with a checkpoint\n\n"
      "Run '%s <command> --help' for the flags of each command.\n",
      kProgram, kProgram);
}

// Prints the error and returns its status. Under a launcher of N > 1 ranks the error ends the job (a rank
// failing alone would leave its peers waiting in their next collective); the other ranks wait a moment
// first, so an error every rank hit is printed once, by rank 0, whose abort ends them.
int stop(const std::string& message, int code) {
  const resnet::dist::LaunchEnv env = resnet::dist::detect_launch();
  if (env.world_size > 1 && resnet::dist::built_with_mpi()) {
    if (env.rank != 0) std::this_thread::sleep_for(std::chrono::seconds(2));
    resnet::dist::abort_job(env.rank == 0 ? message : "rank " + std::to_string(env.rank) + ": " + message,
                            code);
  }
  std::fprintf(stderr, "%s\n", message.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return kExitUsage;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      print_usage(stdout);
      return 0;
    }
    if (cmd == "train") return cmd_train(argc, argv);
    if (cmd == "eval") return cmd_eval(argc, argv);
    if (cmd == "predict") return cmd_predict(argc, argv);
    throw UsageError("unknown command '" + cmd + "' (expected train, eval or predict)");
  } catch (const UsageError& e) {
    return stop(std::string(kProgram) + ": " + e.what() + " (see " + kProgram +
                    ((cmd == "train" || cmd == "eval" || cmd == "predict") ? " " + cmd : std::string()) +
                    " --help)",
                kExitUsage);
  } catch (const std::exception& e) {
    return stop(std::string(kProgram) + ": error: " + e.what(), kExitError);
  }
}
