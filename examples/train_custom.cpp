// train_custom: your own model on your own data with the library's training loop (resnet/train). The
// part a user writes is main(): a dataset, a model, an optimizer, then a train::Trainer does the rest
// (schedule, the seed's log lines, progress, metrics.csv, curves.svg, checkpoints, resume, Ctrl-C).
//
//   train_custom [OUT_DIR]           trains for 6 epochs, writes OUT_DIR (default runs/custom)
//   train_custom OUT_DIR --check     the same, then exits 1 unless the loss fell and the files are there
//
// Under `mpirun -np N` (built with resnet::dist) the same program trains over N ranks.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "resnet/dist/init.hpp"
#include "resnet/resnet.hpp"
#include "resnet/train/train.hpp"

using namespace resnet;

// A dataset of your own: 16x16 images of horizontal (class 0) or vertical (class 1) stripes under noise
// drawn from the loader's per-sample generator (so every epoch sees fresh noise, reproducibly).
class Stripes : public data::Dataset {
 public:
  explicit Stripes(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  Shape sample_shape() const override { return Shape{3, 16, 16}; }
  int32_t label(int64_t i) const override { return static_cast<int32_t>(i % 2); }
  std::string name(int64_t i) const override { return "stripes#" + std::to_string(i); }
  void load(int64_t i, data::SampleRng& rng, float* out) const override {
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 16; ++y)
        for (int x = 0; x < 16; ++x)
          *out++ = static_cast<float>((((label(i) == 0 ? y : x) / 2) % 2 ? 0.5 : -0.5) + rng.uniform(-1, 1));
  }

 private:
  int64_t n_;
};

int main(int argc, char** argv) try {
  const std::string out = argc > 1 ? argv[1] : "runs/custom";
  auto group = dist::init();  // one process, or this rank's place under mpirun / srun
  manual_seed(1);

  // ---- the ~20 lines: data, model, optimizer, Trainer ----
  auto train_set = std::make_shared<Stripes>(256), test_set = std::make_shared<Stripes>(64);
  auto model = std::make_shared<nn::Sequential<float>>();
  model->push_back(std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(3, 8, 3).padding(1)));
  model->push_back(std::make_shared<nn::BatchNorm2d<float>>(8));
  model->push_back(std::make_shared<nn::ReLU<float>>());
  model->push_back(std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(8, 16, 3).stride(2).padding(1)));
  model->push_back(std::make_shared<nn::BatchNorm2d<float>>(16));
  model->push_back(std::make_shared<nn::ReLU<float>>());
  model->push_back(std::make_shared<nn::GlobalAvgPool2d<float>>());
  model->push_back(std::make_shared<nn::Linear<float>>(16, 2));
  auto optimizer = std::make_shared<optim::SGD<float>>(model->named_parameters(),
                                                       optim::SGDOptions().lr(0.05).momentum(0.9));

  train::TrainerOptions o;
  o.epochs = 6;
  o.batch = 32;  // global: 32 / N a rank
  o.schedule = train::schedule("cosine", 0.05);
  o.log_every = 4;
  o.out_dir = out;
  o.class_names = {"top", "bottom"};
  train::Trainer<float> trainer(model, optimizer, train_set, test_set, o, {}, group);
  train::FitResult r = trainer.fit();
  // ---- end of the ~20 lines ----

  if (argc > 2 && std::string(argv[2]) == "--check") {
    namespace fs = std::filesystem;
    const bool fell =
        r.history.size() == 6 && r.history.back().train_loss < 0.7 * r.history.front().train_loss;
    const bool files = fs::exists(out + "/last.safetensors") && fs::exists(out + "/metrics.csv") &&
                       fs::exists(out + "/curves.svg") && r.best_epoch > 0;
    if (group->rank() == 0)
      std::printf("check: train loss %.3f -> %.3f, best test accuracy %.3f at epoch %lld, files %s\n",
                  r.history.empty() ? 0.0 : r.history.front().train_loss,
                  r.history.empty() ? 0.0 : r.history.back().train_loss, r.best_acc,
                  static_cast<long long>(r.best_epoch), files ? "written" : "MISSING");
    if (!fell || !files || r.best_acc < 0.9) return 1;
  }
  return r.exit_code();
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_custom: error: %s\n", e.what());
  return 1;
}
