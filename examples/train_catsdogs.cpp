// train_catsdogs: the reference experiment (a ResNet telling cats from dogs, ../shared/seed) as a real
// training program, and the example every user starts from.
//
//   train_catsdogs train   [flags]            train, log as the seed did, checkpoint, plot
//   train_catsdogs eval    --weights CKPT     test accuracy of a checkpoint
//   train_catsdogs predict --weights CKPT IMAGE...
//
// Run `train_catsdogs <command> --help` for every flag. The log lines, the checkpoint names and the
// prediction lines keep the seed's formats exactly; everything else (progress line, metrics.csv, curves.svg)
// is extra.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "resnet/data/data.hpp"
#include "resnet/io/checkpoint.hpp"
#include "resnet/resnet.hpp"
#include "resnet/tools/cli.hpp"
#include "resnet/tools/progress.hpp"
#include "resnet/tools/training_log.hpp"

namespace fs = std::filesystem;
using resnet::Device;
using resnet::Tensor;
using resnet::tools::FlagSet;
using resnet::tools::UsageError;

namespace {

constexpr const char* kProgram = "train_catsdogs";
// Exit statuses (also in --help).
constexpr int kExitError = 1, kExitUsage = 2, kExitNonFinite = 3, kExitInterrupted = 130;

// ---------------------------------------------------------------------------------------------------------
// Ctrl-C: the first SIGINT (or SIGTERM) asks the training loop to stop after the current step and write
// `last`; a second one quits at once.
volatile std::sig_atomic_t g_interrupt = 0;

extern "C" void on_interrupt(int) {
  if (g_interrupt) std::_Exit(kExitInterrupted);
  g_interrupt = 1;
  static const char msg[] =
      "\ninterrupted: finishing this step, then writing last.safetensors (again to quit now)\n";
  ssize_t ignored = ::write(2, msg, sizeof(msg) - 1);
  (void)ignored;
}

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

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
      .add("--log-every", "N", "20", "print the average loss every N batches");
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

void setup_threads(const FlagSet& f) {
  int threads =
      f.str("--threads").empty() ? hardware_threads() : static_cast<int>(f.integer("--threads", 1, 1024));
  resnet::set_num_threads(threads);
}

int workers_for(const FlagSet& f, const Device& d) {
  return f.str("--workers").empty() ? default_workers(d, resnet::get_num_threads())
                                    : static_cast<int>(f.integer("--workers", 0, 256));
}

// ---------------------------------------------------------------------------------------------------------
// Model, checkpoint metadata, evaluation.

using Model = resnet::models::ResNet<float>;

std::shared_ptr<Model> build_model(const std::string& arch, int64_t classes, uint64_t seed, bool zero_init) {
  resnet::models::ResNetOptions o;
  o.num_classes = classes;
  o.seed = resnet::data::combine_seed(seed, 0x4d4f44454cULL /* "MODEL" */) | 1;  // 0 would mean "unseeded"
  o.zero_init_residual = zero_init;
  return resnet::models::resnet<float>(arch, o);
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

struct EvalResult {
  double loss = 0, acc = 0;
  int64_t images = 0;
};

// Mean cross-entropy (no smoothing) and accuracy over one pass of `loader`.
EvalResult evaluate(Model& model, resnet::data::DataLoader& loader, const Device& device,
                    resnet::tools::ProgressLine* progress, const std::string& label) {
  resnet::NoGradGuard no_grad;
  model.eval();
  loader.start_epoch(0);
  resnet::data::Batch b;
  double loss_sum = 0;
  int64_t correct = 0, seen = 0, batches = 0;
  while (loader.next(b)) {
    const int64_t n = b.size();
    Tensor<float> x = b.images.to(device);
    Tensor<int32_t> y = Tensor<int32_t>::from_vector(b.labels, {n}).to(device);
    Tensor<float> logits = model.forward(x);
    loss_sum += static_cast<double>(resnet::cross_entropy(logits, y).item()) * static_cast<double>(n);
    std::vector<float> l = logits.to_vector();
    const int64_t k = logits.dim(1);
    for (int64_t i = 0; i < n; ++i) {
      const float* row = &l[static_cast<size_t>(i * k)];
      if (std::max_element(row, row + k) - row == b.labels[static_cast<size_t>(i)]) ++correct;
    }
    seen += n;
    ++batches;
    if (progress)
      progress->update(label + " testing " + std::to_string(batches) + "/" +
                       std::to_string(loader.num_batches()));
  }
  check(seen > 0, "no readable test images");
  model.train();
  return EvalResult{loss_sum / static_cast<double>(seen),
                    static_cast<double>(correct) / static_cast<double>(seen), seen};
}

resnet::data::LoaderOptions loader_options(int64_t batch, int workers, uint64_t seed, bool train) {
  resnet::data::LoaderOptions o;
  o.batch_size = batch;
  o.workers = workers;
  o.shuffle = train;
  o.seed = seed;
  o.prefetch = 2;
  return o;
}

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

// Frozen parts stop requiring grad (the optimizer skips them) and their BatchNorms stay in eval mode.
void apply_freeze(Model& model, const std::vector<std::string>& names) {
  for (const auto& n : names) {
    auto m = model.find_module(n);
    m->requires_grad_(false);
    for (auto& kv : m->named_modules())
      if (dynamic_cast<resnet::nn::BatchNorm2d<float>*>(kv.second.get())) kv.second->keep_eval();
  }
}

// A folder we can create files in (a read-only or full disk fails here, before any training).
void check_writable(const std::string& dir) {
  const std::string probe = (fs::path(dir) / (".write_test_" + std::to_string(::getpid()))).string();
  FILE* f = std::fopen(probe.c_str(), "wb");
  const bool ok = f && std::fputs("ok", f) >= 0 && std::fflush(f) == 0;
  const int err = errno;
  if (f) std::fclose(f);
  std::remove(probe.c_str());
  check(ok, "--out: cannot write in folder '", dir, "': ", std::strerror(err));
}

struct NonFiniteLoss : resnet::Error {
  using resnet::Error::Error;
};
struct Interrupted {};

int cmd_train(int argc, char** argv) {
  FlagSet flags = train_flags();
  flags.parse(args_after(argc, argv, 2));
  if (flags.help_requested()) {
    std::fputs(flags.help_text().c_str(), stdout);
    return 0;
  }
  setup_threads(flags);
  const Device device = pick_device(flags.choice("--device", {"auto", "cpu", "cuda"}));
  const int workers = workers_for(flags, device);
  int64_t log_every = flags.integer("--log-every", 1, 1000000);
  const int64_t stop_after = flags.integer("--stop-after-epoch", 0, 100000);

  // The recipe: from the flags, or from the checkpoint being resumed (where a flag may only repeat it, or
  // raise --epochs). --init and --freeze are saved beside it.
  Recipe recipe;
  int64_t epochs_before = 0;  // > 0: a resumed run made longer, from this many epochs
  std::string freeze, init_from;
  resnet::io::TrainingState resumed;
  const bool resuming = !flags.str("--resume").empty();
  if (resuming) {
    const std::string& ck = flags.str("--resume");
    std::error_code ec;
    check(fs::is_regular_file(ck, ec), "--resume: checkpoint '", ck, "' does not exist");
    resumed = resnet::io::read_training_state(ck);
    check(!resumed.arch.empty(), "--resume: '", ck, "' has no training metadata (not written by ", kProgram,
          " train)");
    check(!resumed.optimizer.empty(), "--resume: '", ck,
          "' holds weights only; resume from the run's last.safetensors");
    FlagSet from_ckpt = flags;
    for (const auto& kv : Recipe().fields()) {
      auto it = resumed.extra.find(kv.first.substr(2));
      check(it != resumed.extra.end(), "--resume: '", ck, "' lacks the recipe field '", kv.first.substr(2),
            "'");
      from_ckpt.set(kv.first, it->second);
    }
    recipe = recipe_from_flags(from_ckpt);
    if (!flags.given("--log-every") && resumed.extra.count("log-every")) {
      from_ckpt.set("--log-every", resumed.extra.at("log-every"));
      log_every = from_ckpt.integer("--log-every", 1, 1000000);  // a resumed run logs as it did
    }
    Recipe asked = recipe_from_flags(flags);
    auto saved = recipe.fields(), wanted = asked.fields();
    for (size_t i = 0; i < saved.size(); ++i) {
      if (!flags.given(saved[i].first) || saved[i].second == wanted[i].second) continue;
      if (saved[i].first == "--epochs" && asked.epochs > recipe.epochs) continue;  // a longer run: allowed
      throw UsageError(saved[i].first + " " + flags.str(saved[i].first) + " differs from the resumed run's " +
                       saved[i].second + "; a resumed run keeps its recipe (drop the flag" +
                       (saved[i].first == "--epochs" ? ", or raise it" : "") + ")");
    }
    if (asked.epochs > recipe.epochs && flags.given("--epochs")) {
      epochs_before = recipe.epochs;
      recipe.epochs = asked.epochs;
    }
    if (flags.given("--init")) throw UsageError("--init starts a new run; a resumed run has its weights");
    const std::string saved_freeze = extra_or(resumed, "freeze", "none");
    if (flags.given("--freeze") && flags.str("--freeze") != saved_freeze)
      throw UsageError("--freeze " + flags.str("--freeze") + " differs from the resumed run's " +
                       saved_freeze + "; a resumed run keeps its recipe (drop the flag)");
    freeze = saved_freeze;
    init_from = extra_or(resumed, "init", "");
  } else {
    recipe = recipe_from_flags(flags);
    freeze = flags.str("--freeze");
    init_from = flags.str("--init");
    std::error_code ec;
    if (!init_from.empty())
      check(fs::is_regular_file(init_from, ec), "--init: checkpoint '", init_from, "' does not exist");
  }
  const std::vector<std::string> frozen = freeze_list(freeze);
  const std::string out_dir = flags.given("--out") || !resuming
                                  ? flags.str("--out")
                                  : fs::path(flags.str("--resume")).parent_path().string();
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
  auto train_set =
      std::make_shared<resnet::data::ImageFolderDataset>(std::move(train_folder), recipe.train_transform());
  auto test_set = std::make_shared<resnet::data::ImageFolderDataset>(
      std::move(test_folder), eval_transform(recipe.eval_size, recipe.eval_crop));
  auto train_opts = loader_options(recipe.batch, workers, recipe.seed, true);
  train_opts.drop_last = n_train > recipe.batch;  // no tiny last batch for BatchNorm
  resnet::data::DataLoader train_loader(train_set, train_opts);
  resnet::data::DataLoader test_loader(test_set, loader_options(recipe.batch, workers, recipe.seed, false));
  const int64_t steps_per_epoch = train_loader.num_batches();

  // Model, optimizer, schedule.
  auto model = build_model(recipe.arch, static_cast<int64_t>(classes.size()), recipe.seed, recipe.zero_init);
  if (!init_from.empty() && !resuming) {
    // Non-strict: a head with another class count keeps its fresh initialisation.
    resnet::io::LoadReport rep =
        resnet::io::load_checkpoint(init_from, *model, nullptr, resnet::io::LoadOptions::non_strict());
    check(!rep.loaded.empty(), "--init: '", init_from, "' has no tensor that fits a ", recipe.arch);
    std::string text = rep.summary();
    if (!text.empty() && text.back() == '\n') text.pop_back();
    say(nullptr, "--init: " + text);
  }
  apply_freeze(*model, frozen);
  model->to(device);
  model->train();
  std::unique_ptr<resnet::optim::Optimizer<float>> optimizer;
  if (recipe.optimizer == "sgd") {
    resnet::optim::SGDOptions o;
    o.lr = recipe.lr;
    o.momentum = recipe.momentum;
    o.nesterov = recipe.nesterov;
    o.weight_decay = recipe.wd;
    optimizer = std::make_unique<resnet::optim::SGD<float>>(model->named_parameters(), o);
  } else {
    resnet::optim::AdamWOptions o;
    o.lr = recipe.lr;
    o.weight_decay = recipe.wd;
    optimizer = std::make_unique<resnet::optim::AdamW<float>>(model->named_parameters(), o);
  }
  resnet::optim::ScheduleOptions so;
  so.base_lr = recipe.lr;
  so.total_steps = recipe.epochs * steps_per_epoch;
  if (recipe.schedule != "onecycle")
    so.warmup_steps =
        std::min<int64_t>(so.total_steps - 1, static_cast<int64_t>(recipe.warmup_epochs * steps_per_epoch));
  if (epochs_before > 0) so.total_steps = epochs_before * steps_per_epoch;  // the run's own schedule...
  auto schedule = resnet::optim::make_schedule(recipe.schedule, so);
  int64_t stretch_from = -1;  // ...stretched from the resumed step over the longer run (see lr_at)

  // Where we start: epoch, step, partial sums of an interrupted epoch, best accuracy so far.
  int64_t start_epoch = 0, step = 0, first_batch = 0;
  double epoch_loss_sum = 0, window_sum = 0, seconds_before = 0, best_acc = -1;
  int64_t epoch_batches = 0, window_count = 0, best_epoch = 0;
  if (resuming) {
    check(extra_number(resumed, "train_images", -1) == static_cast<double>(n_train),
          "--resume: the run used ", extra_or(resumed, "train_images", "?"), " training images but '",
          data_dir, "' gives ", n_train, " (a different data folder or --limit?)");
    check(resumed.class_names == classes, "--resume: the checkpoint's classes differ from the data folder's");
    resumed = resnet::io::load_checkpoint(flags.str("--resume"), *model, optimizer.get());
    start_epoch = resumed.epoch;
    step = resumed.step;
    first_batch = step - start_epoch * steps_per_epoch;
    check(first_batch >= 0 && first_batch <= steps_per_epoch, "--resume: step ", step,
          " does not fall in epoch ", start_epoch + 1, " of ", steps_per_epoch, " steps");
    epoch_loss_sum = extra_number(resumed, "epoch_loss_sum", 0);
    epoch_batches = static_cast<int64_t>(extra_number(resumed, "epoch_batches", 0));
    window_sum = extra_number(resumed, "window_sum", 0);
    window_count = static_cast<int64_t>(extra_number(resumed, "window_count", 0));
    seconds_before = extra_number(resumed, "seconds", 0);
    best_acc = extra_number(resumed, "best_acc", -1);
    best_epoch = static_cast<int64_t>(extra_number(resumed, "best_epoch", 0));
    if (epochs_before > 0) {
      stretch_from = step;
      const int64_t old_total = epochs_before * steps_per_epoch, new_total = recipe.epochs * steps_per_epoch;
      say(nullptr, "--epochs " + std::to_string(recipe.epochs) + " extends the run of " +
                       std::to_string(epochs_before) + " epochs: its schedule's remaining " +
                       std::to_string(old_total - step) + " steps are stretched over " +
                       std::to_string(new_total - step) + " from step " + std::to_string(step) +
                       (old_total <= step ? " (the run had finished: its final learning rate " +
                                                fmt("%.6g", schedule->lr(old_total - 1)) + " is held)"
                                          : ""));
    }
    if (start_epoch >= recipe.epochs) {
      say(nullptr,
          "the resumed run already finished its " + std::to_string(recipe.epochs) + " epochs; nothing to do");
      return 0;
    }
  }

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  check(fs::is_directory(out_dir, ec), "--out: cannot create folder '", out_dir, "'");
  check_writable(out_dir);  // before the first epoch, not at its end
  const std::string last_path = (fs::path(out_dir) / "last.safetensors").string();
  const std::string metrics_path = (fs::path(out_dir) / "metrics.csv").string();
  const std::string plot_path = (fs::path(out_dir) / "curves.svg").string();
  std::vector<resnet::tools::EpochMetrics> history;
  if (resuming) {
    for (const auto& r : resnet::tools::read_metrics_csv(metrics_path))
      if (r.epoch <= start_epoch) history.push_back(r);
  }

  // The state saved with every checkpoint.
  auto training_state = [&](int64_t epochs_done) {
    resnet::io::TrainingState s;
    s.arch = recipe.arch;
    s.epoch = epochs_done;
    s.step = step;
    s.lr = optimizer->lr();
    s.optimizer = recipe.optimizer;
    s.schedule = recipe.schedule;
    s.seed = recipe.seed;
    s.class_names = classes;
    for (const auto& kv : recipe.fields()) s.extra[kv.first.substr(2)] = kv.second;
    s.extra["train_images"] = std::to_string(n_train);
    s.extra["log-every"] = std::to_string(log_every);
    s.extra["best_acc"] = canonical(best_acc);
    s.extra["best_epoch"] = std::to_string(best_epoch);
    s.extra["freeze"] = freeze;
    if (!init_from.empty()) s.extra["init"] = init_from;
    return s;
  };
  const auto run_start = std::chrono::steady_clock::now();
  auto seconds_now = [&] {
    return seconds_before +
           std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
  };
  // `last`: the model, the optimizer and where the run stands (mid-epoch sums included).
  auto save_last = [&](int64_t epochs_done) {
    auto s = training_state(epochs_done);
    s.extra["epoch_loss_sum"] = canonical(epoch_loss_sum);
    s.extra["epoch_batches"] = std::to_string(epoch_batches);
    s.extra["window_sum"] = canonical(window_sum);
    s.extra["window_count"] = std::to_string(window_count);
    s.extra["seconds"] = canonical(seconds_now());
    resnet::io::save_checkpoint(last_path, *model, optimizer.get(), s);
  };

  say(nullptr, std::string("train_catsdogs: ") + recipe.arch + " (" +
                   std::to_string(model->num_parameters()) + " parameters) on " + device.to_string() + ", " +
                   std::to_string(resnet::get_num_threads()) + " threads, " + std::to_string(workers) +
                   " loader workers; data " + data_dir + ": " + std::to_string(n_train) + " train / " +
                   std::to_string(n_test) + " test images, classes " + classes.front() + ".." +
                   classes.back() + "; seed " + std::to_string(recipe.seed));
  if (resuming)
    say(nullptr, "resuming " + flags.str("--resume") + " at epoch " + std::to_string(start_epoch + 1) +
                     ", batch " + std::to_string(first_batch + 1) + " (step " + std::to_string(step) + ")");

  // Fault injection for the smoke test: RESNET_FAULT_NAN_AT_STEP=K makes step K's loss NaN.
  const char* fault_env = std::getenv("RESNET_FAULT_NAN_AT_STEP");
  const int64_t fault_nan_step = fault_env ? std::atoll(fault_env) : -1;
  install_interrupt_handler();
  resnet::tools::ProgressLine progress;
  const int64_t total_steps = recipe.epochs * steps_per_epoch;
  // The schedule, or after a resume that raised --epochs its remaining steps stretched over the new length.
  auto lr_at = [&](int64_t st) {
    if (stretch_from < 0 || st <= stretch_from) return schedule->lr(st);
    const int64_t old_total = epochs_before * steps_per_epoch;
    if (old_total <= stretch_from) return schedule->lr(old_total - 1);
    const double f = static_cast<double>(st - stretch_from) / static_cast<double>(total_steps - stretch_from);
    const int64_t mapped =
        stretch_from + static_cast<int64_t>(f * static_cast<double>(old_total - stretch_from));
    return schedule->lr(std::min(mapped, old_total - 1));
  };
  double last_eval_seconds = -1;
  int64_t last_good_epoch = resuming ? start_epoch : -1;  // the epoch `last` on disk holds (-1: none yet)
  int64_t current_epoch = start_epoch;                    // 0-based epoch in progress

  try {
    for (int64_t epoch = start_epoch; epoch < recipe.epochs; ++epoch) {
      current_epoch = epoch;
      const std::string tag = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(recipe.epochs);
      if (epoch != start_epoch) {
        first_batch = 0;
        epoch_loss_sum = window_sum = 0;
        epoch_batches = window_count = 0;
      }
      train_loader.start_epoch(epoch, first_batch);
      progress.reset_timer();
      const auto epoch_start = std::chrono::steady_clock::now();
      int64_t images = 0, batches_here = 0;
      resnet::data::Batch b;
      while (train_loader.next(b)) {
        const int64_t n = b.size();
        Tensor<float> x = b.images.to(device);
        Tensor<int32_t> y = Tensor<int32_t>::from_vector(b.labels, {n}).to(device);
        optimizer->set_lr(lr_at(step));
        Tensor<float> loss = resnet::cross_entropy(model->forward(x), y, recipe.label_smoothing);
        double l = static_cast<double>(loss.item());
        if (step + 1 == fault_nan_step) l = std::nan("");  // test hook, see fault_nan_step
        if (!std::isfinite(l))  // checked before the update: the weights stay finite, `last` stays good
          throw NonFiniteLoss("the loss is " + std::string(std::isnan(l) ? "NaN" : "infinite") +
                              " at epoch " + std::to_string(epoch + 1) + ", batch " +
                              std::to_string(b.index + 1) + " (step " + std::to_string(step + 1) + ")");
        optimizer->zero_grad();
        loss.backward();
        optimizer->step();
        ++step;
        epoch_loss_sum += l;
        ++epoch_batches;
        window_sum += l;
        ++window_count;
        images += n;
        ++batches_here;
        if ((b.index + 1) % log_every == 0) {
          say(&progress, "[epoch " + std::to_string(epoch + 1) + ", batch " + std::to_string(b.index + 1) +
                             "] loss: " + fmt("%.3f", window_sum / static_cast<double>(window_count)));
          window_sum = 0;
          window_count = 0;
        }
        const double el =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
        const double per_batch = el / static_cast<double>(batches_here);
        const int64_t left_here = steps_per_epoch - (b.index + 1);
        const double eval_est = last_eval_seconds >= 0
                                    ? last_eval_seconds
                                    : per_batch * double(n_test) / double(recipe.batch) / 3;
        const double left_run = per_batch * static_cast<double>(total_steps - step) +
                                eval_est * static_cast<double>(recipe.epochs - epoch);
        progress.update(tag + " batch " + std::to_string(b.index + 1) + "/" +
                        std::to_string(steps_per_epoch) + " | " +
                        fmt("%.1f", static_cast<double>(images) / el) + " img/s | epoch " +
                        resnet::tools::ProgressLine::format_duration(
                            per_batch * static_cast<double>(left_here) + eval_est) +
                        " left | run " + resnet::tools::ProgressLine::format_duration(left_run) + " left");
        if (g_interrupt) throw Interrupted{};
      }
      check(epoch_batches > 0, "epoch ", epoch + 1, ": no readable training images");
      const double train_loss = epoch_loss_sum / static_cast<double>(epoch_batches);
      const double lr_now = optimizer->lr();
      say(&progress, "epoch " + std::to_string(epoch + 1) + " av_train_loss: " + fmt("%.3f", train_loss) +
                         " lr: " + fmt("%.5f", lr_now));

      const auto eval_start = std::chrono::steady_clock::now();
      EvalResult ev = evaluate(*model, test_loader, device, &progress, tag);
      last_eval_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - eval_start).count();
      say(&progress, "epoch " + std::to_string(epoch + 1) + " av_test_acc: " + fmt("%.3f", ev.acc));

      if (ev.acc > best_acc) {
        best_acc = ev.acc;
        best_epoch = epoch + 1;
        const std::string name = "epoch" + std::to_string(epoch + 1) + "+loss" + fmt("%.3f", train_loss) +
                                 "+acc" + fmt("%.3f", ev.acc) + "+lr" + fmt("%.5f", lr_now) + ".safetensors";
        resnet::io::save_checkpoint((fs::path(out_dir) / name).string(), *model,
                                    static_cast<const resnet::optim::Optimizer<float>*>(nullptr),
                                    training_state(epoch + 1));
      }
      history.push_back(
          resnet::tools::EpochMetrics{epoch + 1, train_loss, ev.loss, ev.acc, lr_now, seconds_now()});
      resnet::tools::write_text_atomically(metrics_path, resnet::tools::metrics_csv(history));
      resnet::tools::write_text_atomically(
          plot_path, resnet::tools::training_curves_svg(
                         history, "train_catsdogs " + recipe.arch + ", " + std::to_string(recipe.size) +
                                      " px, batch " + std::to_string(recipe.batch) + ", " + recipe.optimizer +
                                      " lr " + python_round3(recipe.lr) + " " + recipe.schedule + ", seed " +
                                      std::to_string(recipe.seed)));
      epoch_loss_sum = window_sum = 0;
      epoch_batches = window_count = 0;
      save_last(epoch + 1);
      last_good_epoch = epoch + 1;
      current_epoch = epoch + 1;
      if (g_interrupt) throw Interrupted{};
      if (stop_after > 0 && epoch + 1 == stop_after && epoch + 1 < recipe.epochs) {
        say(&progress, "stopping after epoch " + std::to_string(epoch + 1) +
                           " (--stop-after-epoch); continue with --resume " + last_path);
        return 0;
      }
    }
  } catch (const Interrupted&) {
    progress.clear();
    // Mid-epoch: `last` records the position within the epoch, so --resume continues from the next batch.
    save_last(current_epoch);
    std::fprintf(stderr, "%s: interrupted at step %lld; wrote %s. Continue with: %s train --resume %s\n",
                 kProgram, static_cast<long long>(step), last_path.c_str(), kProgram, last_path.c_str());
    return kExitInterrupted;
  } catch (const NonFiniteLoss& e) {
    progress.clear();
    std::string keep = last_good_epoch >= 0 ? "the last good checkpoint is " + last_path + " (epoch " +
                                                  std::to_string(last_good_epoch) + ")"
                                            : "no checkpoint was written yet";
    std::fprintf(stderr,
                 "%s: error: %s; stopped without saving: %s. Try a lower --lr or more --warmup-epochs.\n",
                 kProgram, e.what(), keep.c_str());
    return kExitNonFinite;
  }
  progress.clear();
  const int64_t skipped = train_loader.skipped_count() + test_loader.skipped_count();
  if (skipped > 0)
    std::fprintf(stderr, "warning: %lld unreadable image files were skipped (named above)\n",
                 static_cast<long long>(skipped));
  say(nullptr, "best av_test_acc: " + fmt("%.3f", best_acc) + " at epoch " + std::to_string(best_epoch) +
                   "; " + fmt("%.1f", seconds_now()) + " s in all; outputs in " + out_dir);
  return 0;
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
  resnet::io::load_checkpoint(path, *m.model, static_cast<resnet::optim::Optimizer<float>*>(nullptr));
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
  setup_threads(flags);
  const Device device = pick_device(flags.choice("--device", {"auto", "cpu", "cuda"}));
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
  resnet::data::DataLoader loader(set, loader_options(batch, workers_for(flags, device), 0, false));
  resnet::tools::ProgressLine progress;
  EvalResult ev = evaluate(*m.model, loader, device, &progress, "eval");
  progress.clear();
  if (loader.skipped_count() > 0)
    std::fprintf(stderr, "warning: %lld unreadable image files were skipped (named above)\n",
                 static_cast<long long>(loader.skipped_count()));
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
  setup_threads(flags);
  resnet::infer::ClassifierOptions co;
  co.device = pick_device(flags.choice("--device", {"auto", "cpu", "cuda"}));
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
    std::fprintf(stderr, "%s: %s (see %s%s --help)\n", kProgram, e.what(), kProgram,
                 (cmd == "train" || cmd == "eval" || cmd == "predict") ? (" " + cmd).c_str() : "");
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", kProgram, e.what());
    return kExitError;
  }
}
