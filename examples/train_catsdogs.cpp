// train_catsdogs: the reference experiment (a ResNet telling cats from dogs, ../shared/seed) as a program:
// command-line flags (CLI11) on top of the library's image-folder recipe (resnet/train/recipe.hpp), which
// does the work and keeps the seed's formats (log lines, checkpoint names, prediction lines).
//
//   train_catsdogs train   [flags]            train, log as the seed did, checkpoint, plot
//   train_catsdogs eval    --weights CKPT     test accuracy of a checkpoint
//   train_catsdogs predict --weights CKPT IMAGE...
//   mpirun -np N train_catsdogs train ...     the same run over N ranks (--batch is the global batch)
//
// Run `train_catsdogs <command> --help` for every flag with its default.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "flags.hpp"
#include "resnet/resnet.hpp"
#include "resnet/train/recipe.hpp"

namespace fs = std::filesystem;
namespace train = resnet::train;

namespace {

constexpr const char* kProgram = "train_catsdogs";
constexpr int kExitError = 1;

void say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

// One flag per recipe setting named in `keys` (all when empty), its check, help and default the library's
// (resnet/train/recipe_fields.hpp); `given` collects them to tell which were on the command line.
void add_settings(CLI::App& cmd, train::RecipeOptions& o, const std::vector<std::string>& keys,
                  std::vector<std::pair<std::string, CLI::Option*>>* given = nullptr) {
  for (const train::RecipeField& f : train::recipe_fields()) {
    if (!keys.empty() && std::find(keys.begin(), keys.end(), f.key) == keys.end()) continue;
    const std::string key = f.key;
    CLI::Option* opt = cmd.add_option_function<std::string>(
        "--" + key, [&o, key](const std::string& v) { train::set_recipe_value(o, key, v); }, f.help);
    opt->option_text(f.meta);
    opt->check(CLI::Validator(
        [key](std::string& v) {
          const std::string e = train::recipe_value_error(key, v);
          return e.empty() ? e : e.substr(key.size() + 4);  // CLI11 puts "--key: " before it
        },
        ""));
    const std::string d = f.default_doc.empty() ? f.text(train::RecipeOptions()) : f.default_doc;
    opt->default_str(d.empty() ? "none" : d);
    if (given) given->emplace_back(key, opt);
  }
}
const std::vector<std::string> kRuntime{"device", "threads", "workers"};

// Where the data is: --data, else $RESNET_DATA, else ./data/catsdogs, else ../shared/data/catsdogs.
std::string find_data(const std::string& flag) {
  std::error_code ec;
  if (!flag.empty()) return flag;  // the recipe says when it does not exist
  const char* env = std::getenv("RESNET_DATA");
  if (env && *env) {
    if (!fs::is_directory(env, ec))
      throw resnet::Error(std::string("RESNET_DATA: folder '") + env + "' does not exist");
    return env;
  }
  for (const char* c : {"./data/catsdogs", "../shared/data/catsdogs"})
    if (fs::is_directory(c, ec)) return c;
  throw resnet::Error(
      "no dataset found. Looked at --data (not given), $RESNET_DATA (not set), ./data/catsdogs and "
      "../shared/data/catsdogs.\nGet the Kaggle Dogs vs. Cats training images "
      "(https://www.kaggle.com/c/dogs-vs-cats/data, train.zip) and arrange them one folder per class:\n  "
      "DIR/train/cat/cat.1.jpg ... cat.4000.jpg    DIR/train/dog/dog.1.jpg ... dog.4000.jpg\n  "
      "DIR/test/cat/cat.4001.jpg ... cat.5000.jpg  DIR/test/dog/dog.4001.jpg ... dog.5000.jpg\nthen pass "
      "--data DIR or set RESNET_DATA=DIR");
}

int predict(const train::RecipeOptions& o, const std::string& weights, const std::vector<std::string>& images,
            const train::PredictOptions& po, const std::string& csv) {
  if (weights.empty()) throw train::OptionError("predict needs --weights CKPT");
  if (images.empty()) throw train::OptionError("predict needs at least one IMAGE or FOLDER");
  const resnet::Device device = train::recipe_runtime(o, false).device;
  const train::PredictReport rep = train::predict_recipe(weights, images, po, device, kProgram);
  for (const auto& e : rep.errors) std::fprintf(stderr, "%s: error: %s; skipped\n", kProgram, e.c_str());
  for (const auto& r : rep.results) {
    if (r.ok)
      say(train::prediction_line(r));
    else
      std::fprintf(stderr, "%s: error: %s; skipped\n", kProgram, r.error.c_str());
  }
  if (!csv.empty()) resnet::tools::write_text_atomically(csv, train::prediction_csv(rep));
  if (rep.failed() > 0)
    std::fprintf(stderr, "%s: classified %lld of %lld images; %lld skipped (named above)\n", kProgram,
                 static_cast<long long>(rep.classified),
                 static_cast<long long>(rep.classified + rep.failed()), static_cast<long long>(rep.failed()));
  return rep.classified > 0 ? 0 : kExitError;
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
  CLI::App app(
      "Trains and uses a ResNet that tells cats from dogs (any one-folder-per-class image set works).",
      kProgram);
  flags::setup(app);
  app.require_subcommand(1, 1);
  train::RecipeOptions o = train::RecipeOptions().name(kProgram);
  std::vector<std::pair<std::string, CLI::Option*>> given;
  std::string data, weights, split = "test", csv, out;
  std::vector<std::string> images;
  train::PredictOptions po;
  const std::string data_doc = "$RESNET_DATA, else ./data/catsdogs, else ../shared/data/catsdogs";

  CLI::App* tr = app.add_subcommand(
      "train", "train on DATA/train, test on DATA/test every epoch, checkpoint the best and the last");

  tr->add_option("--data", data, "dataset folder with train/ and test/")
      ->option_text("DIR")
      ->default_str(data_doc);
  add_settings(*tr, o, {}, &given);
  tr->add_option(
        "--init", o.init(),
        "start from another run's (or converted torchvision) weights, loading every tensor whose name and "
        "shape match; a head with another class count is re-initialised (the log lists what was skipped)")
      ->option_text("CKPT")
      ->default_str("none");
  tr->add_option("--out", out, "output folder")
      ->option_text("DIR")
      ->default_str("runs/catsdogs, or the folder of --resume");
  tr->add_option("--resume", o.resume(),
                 "continue a run from its last.safetensors (the recipe comes from the checkpoint; --epochs "
                 "may raise the run's length, stretching the rest of its schedule)")
      ->option_text("CKPT")
      ->default_str("none");
  tr->footer(
      "Trains a ResNet on DIR/train (one folder per class), tests on DIR/test after every epoch, and writes "
      "to --out: a checkpoint each time the test accuracy improves "
      "(epoch<E>+loss<L>+acc<A>+lr<R>.safetensors), last.safetensors after every epoch, metrics.csv and "
      "curves.svg.\n\nExit status: 0 done, 1 error, 2 bad command line, 3 the loss became NaN or infinite "
      "(the last good checkpoint is kept), 130 interrupted by Ctrl-C after writing last.safetensors.");

  CLI::App* ev = app.add_subcommand("eval", "test accuracy of a checkpoint");
  ev->footer("Tests a checkpoint on DIR/test with the preprocessing it was trained for.");
  ev->add_option("--weights", weights, "checkpoint written by train_catsdogs train")->option_text("CKPT");
  ev->add_option("--data", data, "dataset folder")->option_text("DIR")->default_str(data_doc);
  ev->add_option("--split", split, "which split to evaluate")
      ->option_text("test|train")
      ->check(flags::one_of({"test", "train"}))
      ->capture_default_str();
  add_settings(*ev, o, {"batch", "limit", "device", "threads", "workers"});

  CLI::App* pr = app.add_subcommand("predict", "classify image files with a checkpoint");
  pr->footer(
      "Classifies each image (a FOLDER: every .jpg/.jpeg/.png under it, sorted) and prints, in order, one "
      "line per image: this picture might be: <class> , score: <softmax probability of that class, rounded "
      "to 3 decimals>. A missing or unreadable file is reported and skipped; the exit status is 1 only if "
      "nothing could be classified.");
  pr->add_option("--weights", weights, "checkpoint written by train_catsdogs train")->option_text("CKPT");
  pr->add_option("--csv", csv, "also write path,class,score,top_k,error rows to FILE (atomically)")
      ->option_text("FILE");
  pr->add_option("--top", po.top(), "classes per image in the CSV, best first")
      ->option_text("K")
      ->check(flags::int_in(1, 1000))
      ->capture_default_str();
  pr->add_option("--batch", po.batch(), "images per forward pass")
      ->option_text("N")
      ->check(flags::int_in(1, 65536))
      ->capture_default_str();
  pr->add_option_function<std::string>(
        "--fuse", [&po](const std::string& v) { po.fuse(flags::is_on(v)); },
        "fold BatchNorm into the convolutions (same outputs, faster)")
      ->option_text("on|off")
      ->check(flags::on_off())
      ->default_str("on");
  add_settings(*pr, o, kRuntime);
  pr->add_option("IMAGE", images, "image files or folders")->option_text("IMAGE|FOLDER ...");

  const int parsed = flags::parse(app, argc, argv);
  if (parsed >= 0) return parsed;
  const std::string cmd = app.get_subcommands().front()->get_name();
  try {
    if (cmd == "train") {
      for (const auto& g : given)
        if (g.second->count() > 0) o.pinned().push_back(g.first);
      o.data(find_data(data));
      if (!out.empty())
        o.out(out);
      else if (o.resume().empty())
        o.out("runs/catsdogs");
      return train::run_recipe(o).exit_code();
    }
    if (cmd == "eval") {
      if (weights.empty()) throw train::OptionError("eval needs --weights CKPT");
      o.data(find_data(data));
      say(train::eval_line(split, train::evaluate_recipe(o, weights, split)));
      return 0;
    }
    return predict(o, weights, images, po, csv);
  } catch (const train::OptionError& e) {
    return stop(std::string(kProgram) + ": " + e.what() + " (see " + kProgram + " " + cmd + " --help)",
                flags::kExitUsage);
  } catch (const std::exception& e) {
    return stop(std::string(kProgram) + ": error: " + e.what(), kExitError);
  }
}
