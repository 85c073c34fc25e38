// The image-folder recipe (resnet/train/recipe.hpp) on a tiny generated folder: its settings' checks and
// defaults, the files and log lines of a run in the seed's formats, a stopped run resumed to the same losses,
// a resumed run's recipe kept, evaluation and prediction from its checkpoints.
#include <stb/stb_image_write.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "resnet/train/recipe.hpp"
#include "trainer_fixtures.hpp"

namespace fs = std::filesystem;
using namespace resnet;

namespace {

// DIR/{train,test}/{a,b}/*.png: class a bright on the left half, b on the right, with noise.
void make_folder(const fs::path& root, int n_train, int n_test) {
  Generator gen(99);
  const int w = 20, h = 20;
  std::vector<unsigned char> px(static_cast<size_t>(w) * h * 3);
  for (const char* split : {"train", "test"})
    for (int label = 0; label < 2; ++label) {
      const fs::path dir = root / split / (label == 0 ? "a" : "b");
      fs::create_directories(dir);
      for (int i = 0; i < (std::string(split) == "train" ? n_train : n_test); ++i) {
        for (int y = 0; y < h; ++y)
          for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c) {
              const double v = ((x < w / 2) == (label == 0) ? 190 : 60) + gen.normal(0, 20);
              px[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<unsigned char>(v < 0     ? 0
                                                                                        : v > 255 ? 255
                                                                                                  : v);
            }
        const std::string file = (dir / (std::to_string(i) + ".png")).string();
        REQUIRE(stbi_write_png(file.c_str(), w, h, 3, px.data(), w * 3) != 0);
      }
    }
}

struct Run {
  std::vector<std::string> lines;
  train::FitResult result;
};

Run run(train::RecipeOptions o) {
  Run r;
  o.on_log([&r](const std::string& line) { r.lines.push_back(line); });
  r.result = train::run_recipe(o.progress(false).threads(2).workers(0).distributed(false));
  return r;
}

// The seed's lines: losses every log_every batches and the per-epoch summaries.
std::vector<std::string> seed_lines(const std::vector<std::string>& lines) {
  static const std::regex seed(R"(^(\[epoch \d+, batch \d+\] loss: |epoch \d+ av_).*)");
  std::vector<std::string> out;
  for (const auto& l : lines)
    if (std::regex_match(l, seed)) out.push_back(l);
  return out;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const train::OptionError& e) {
    return e.what();
  }
  return "(no OptionError)";
}

}  // namespace

TEST_CASE("recipe settings: one check per setting, defaults that follow other settings", "[recipe]") {
  train::RecipeOptions o;
  CHECK(message_of([&] { train::set_recipe_value(o, "batch", "0"); }) ==
        "--batch: expected an integer in [1, 65536], got '0'");
  CHECK(message_of([&] {
          train::set_recipe_value(o, "arch", "resnet19");
        }).rfind("--arch: expected resnet18, ", 0) == 0);
  CHECK(message_of([&] { train::set_recipe_value(o, "nesterov", "yes"); }) ==
        "--nesterov: expected on or off, got 'yes'");
  // A value set from code meets the same check as one from text.
  CHECK(message_of([] { train::resolve_recipe(train::RecipeOptions().lr(-1.0)); }) ==
        "--lr: expected a number in [0, 1e+38], got '-1'");
  CHECK(train::recipe_value_error("momentum", "0.95").empty());
  CHECK(message_of([] { train::resolve_recipe(train::RecipeOptions().freeze("layer9")); }).find("'layer9'") !=
        std::string::npos);

  const auto sgd = train::resolve_recipe(train::RecipeOptions().size(64));
  CHECK(*sgd.lr() == 0.1);
  CHECK(*sgd.wd() == 5e-4);
  CHECK(*sgd.eval_size() == 64);
  CHECK(*sgd.eval_crop() == 0.875);
  CHECK(*sgd.padding() == 8);
  CHECK(sgd.seed().has_value());
  const auto adamw =
      train::resolve_recipe(train::RecipeOptions().optimizer("adamw").aug("crop").momentum(0.0));
  CHECK(*adamw.lr() == 1e-3);
  CHECK(*adamw.wd() == 0.05);
  CHECK(*adamw.eval_crop() == 1.0);
  CHECK_FALSE(adamw.nesterov());  // no momentum, no Nesterov

  // The checkpoint's recipe: canonical text ("0.10" and "0.1" alike), every Recipe and Kept setting.
  train::RecipeOptions t;
  train::set_recipe_value(t, "lr", "0.10");
  const auto meta = train::recipe_metadata(train::resolve_recipe(t.seed(5)));
  CHECK(meta.at("lr") == "0.1");
  CHECK(meta.at("seed") == "5");
  CHECK(meta.at("freeze") == "none");
  CHECK(meta.at("log-every") == "20");
  CHECK(meta.count("threads") == 0);  // this session's only
}

TEST_CASE("recipe: a run on an image folder, resumed, evaluated and asked to predict", "[recipe]") {
  const fs::path root = trainer_fixtures::fresh_dir("resnet_recipe_", "run");
  make_folder(root / "data", 8, 4);
  const auto base = train::RecipeOptions()
                        .data((root / "data").string())
                        .size(16)
                        .batch(4)
                        .epochs(2)
                        .seed(uint64_t{3})
                        .log_every(2)
                        .name("recipe_test");

  const Run a = run(train::RecipeOptions(base).out((root / "A").string()));
  REQUIRE(a.result.status == train::FitStatus::Completed);
  REQUIRE_FALSE(a.lines.empty());
  CHECK(std::regex_search(a.lines.front(),
                          std::regex(R"(^recipe_test: resnet18 \(\d+ parameters, float32 nchw\) on cpu)")));
  CHECK(std::regex_search(a.lines.front(), std::regex("16 train / 8 test images, classes a..b; seed 3")));
  const auto seed_a = seed_lines(a.lines);
  // 4 batches an epoch, a loss line every 2: per epoch two loss lines, the train-loss and the accuracy lines.
  REQUIRE(seed_a.size() == 8);
  CHECK(std::regex_match(seed_a[0], std::regex(R"(\[epoch 1, batch 2\] loss: \d+\.\d{3})")));
  CHECK(std::regex_match(seed_a[2], std::regex(R"(epoch 1 av_train_loss: \d+\.\d{3} lr: \d+\.\d{5})")));
  CHECK(std::regex_match(seed_a[3], std::regex(R"(epoch 1 av_test_acc: [01]\.\d{3})")));
  CHECK(fs::is_regular_file(root / "A" / "last.safetensors"));
  CHECK(fs::is_regular_file(root / "A" / "metrics.csv"));
  CHECK(fs::is_regular_file(root / "A" / "curves.svg"));
  int best = 0;
  std::string best_file;
  for (const auto& e : fs::directory_iterator(root / "A"))
    if (std::regex_match(e.path().filename().string(),
                         std::regex(R"(epoch\d\+loss\d+\.\d{3}\+acc[01]\.\d{3}\+lr\d+\.\d{5}\.safetensors)")))
      ++best, best_file = e.path().string();
  CHECK(best >= 1);
  const io::TrainingState st = io::read_training_state((root / "A" / "last.safetensors").string());
  CHECK(st.extra.at("batch") == "4");
  CHECK(st.extra.at("eval-crop") == "0.875");
  CHECK(st.class_names == std::vector<std::string>{"a", "b"});

  // Stopped after epoch 1 and resumed with nothing but the checkpoint: the same lines as run A.
  const Run b1 = run(train::RecipeOptions(base).out((root / "B").string()).stop_after_epoch(1));
  CHECK(b1.result.status == train::FitStatus::StoppedAfterEpoch);
  const std::string last_b = (root / "B" / "last.safetensors").string();
  const Run b2 =
      run(train::RecipeOptions().data((root / "data").string()).resume(last_b).name("recipe_test"));
  CHECK(b2.result.status == train::FitStatus::Completed);
  std::vector<std::string> seed_b = seed_lines(b1.lines);
  for (const auto& l : seed_lines(b2.lines)) seed_b.push_back(l);
  CHECK(seed_b == seed_a);

  // A resumed run keeps its recipe; a setting that contradicts it is refused by name.
  const auto resume_b = train::RecipeOptions().data((root / "data").string()).resume(last_b);
  CHECK(message_of([&] { run(train::RecipeOptions(resume_b).batch(8)); }) ==
        "--batch 8 differs from the resumed run's 4; a resumed run keeps its recipe (drop the flag)");
  CHECK(message_of([&] { run(train::RecipeOptions(resume_b).pinned({"size"}).size(96)); }) ==
        "--size 96 differs from the resumed run's 16; a resumed run keeps its recipe (drop the flag)");
  // More epochs extend the finished run: one more epoch's lines, the stretch announced.
  const Run c = run(train::RecipeOptions(resume_b).epochs(3));
  CHECK(c.result.epochs_done == 3);
  CHECK(std::regex_search(c.lines.at(1), std::regex("^--epochs 3 extends the run of 2 epochs")));
  CHECK(seed_lines(c.lines).size() == 4);

  // Evaluation of A's last checkpoint repeats its last accuracy line; predict gives the seed's lines.
  const train::EvalResult ev =
      train::evaluate_recipe(train::RecipeOptions().data((root / "data").string()).threads(2).progress(false),
                             (root / "A" / "last.safetensors").string());
  CHECK(ev.images == 8);
  CHECK(train::eval_line("test", ev).substr(0, 14) == "test images: 8");
  CHECK(seed_a.back() == "epoch 2 av_test_acc: " + train::detail::number_text(ev.acc, "%.3f"));
  const train::PredictReport rep = train::predict_recipe(
      best_file, {(root / "data" / "test" / "a").string(), (root / "nothing.png").string()},
      train::PredictOptions().top(2), Device::cpu());
  CHECK(rep.classified == 4);
  CHECK(rep.failed() == 1);
  for (const auto& r : rep.results)
    if (r.ok)
      CHECK(std::regex_match(train::prediction_line(r),
                             std::regex(R"(this picture might be: (a|b) , score: (0\.\d{1,3}|1\.0))")));
  const std::string csv = train::prediction_csv(rep);
  CHECK(csv.rfind("path,class,score,top_k,error\n", 0) == 0);
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 6);
  fs::remove_all(root);
}
