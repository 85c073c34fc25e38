// What the Trainer tests share: a tiny two-class image set, a small model and fresh output folders.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "resnet/resnet.hpp"

namespace trainer_fixtures {

using namespace resnet;

// Two classes of 8x8 images: bright top half or bright bottom half, noise from the sample's generator.
class Halves : public data::Dataset {
 public:
  explicit Halves(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  Shape sample_shape() const override { return Shape{1, 8, 8}; }
  int32_t label(int64_t i) const override { return static_cast<int32_t>((i * 7) % 3 == 0 ? 1 : 0); }
  std::string name(int64_t i) const override { return "halves#" + std::to_string(i); }
  void load(int64_t i, data::SampleRng& rng, float* out) const override {
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x)
        *out++ = static_cast<float>(((y < 4) == (label(i) == 0) ? 0.5 : -0.5) + rng.uniform(-1, 1));
  }

 private:
  int64_t n_;
};

inline std::shared_ptr<nn::Sequential<float>> small_model(uint64_t seed) {
  Generator gen(seed);
  auto m = std::make_shared<nn::Sequential<float>>();
  m->push_back(std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(1, 4, 3).padding(1), gen));
  m->push_back(std::make_shared<nn::BatchNorm2d<float>>(4));
  m->push_back(std::make_shared<nn::ReLU<float>>());
  m->push_back(std::make_shared<nn::GlobalAvgPool2d<float>>());
  m->push_back(std::make_shared<nn::Linear<float>>(4, 2, true, gen));
  return m;
}

// An empty folder under the system's temporary directory, unique to this process and `name`.
inline std::filesystem::path fresh_dir(const std::string& prefix, const std::string& name) {
  std::filesystem::path d =
      std::filesystem::temp_directory_path() / (prefix + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  return d;
}

// The tests' Trainer options: a batch of 8, a log line every 2 batches, a fixed seed, loading on the
// calling thread, no progress line and no signal handlers.
inline train::TrainerOptions quiet_options(const std::filesystem::path& out, int64_t epochs = 2) {
  return train::TrainerOptions()
      .epochs(epochs)
      .batch(8)
      .log_every(2)
      .out_dir(out.string())
      .seed(5)
      .workers(0)
      .progress(false)
      .handle_signals(false);
}

}  // namespace trainer_fixtures
