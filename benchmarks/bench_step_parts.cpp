// bench_step_parts: what each optional part of the Trainer's step costs, all measured in one process on the
// same model and batch, in interleaved rounds (so drift in the machine's speed hits every variant alike):
//   plain        train::train_step (the step as it was before the options existed)
//   eager-off    train::EagerStep with every option off (what the Trainer runs by default now)
//   ema          eager-off, then a ModelEma update
//   mixup        the batch mixed on the host (Mixup::apply), soft_cross_entropy on its targets
//   clip         StepOptions::clip_grad_norm (one host read of the norm a step)
//   accumulate2  StepOptions::accumulate(2): two half batches, one update
// Prints the median milliseconds per step of each and its ratio to plain.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "flags.hpp"
#include "resnet/train/recipe_fields.hpp"
#include "resnet/train/trainer.hpp"

namespace {

using namespace resnet;

struct BenchConfig {
  std::string arch = "resnet18";
  int64_t batch = 16, size = 64, classes = 10, threads = 2, steps = 3, warmup = 2, rounds = 5;
};

struct Variant {
  std::string name;
  std::function<void()> step;
  std::vector<double> ms;  // per round, per step
};

int run(const BenchConfig& c) {
  set_num_threads(static_cast<int>(c.threads));
  auto mo = models::ResNetOptions().num_classes(c.classes).seed(1);
  auto net = std::shared_ptr<nn::Module<float>>(models::resnet<float>(c.arch, mo));
  net->train();
  auto opt = std::make_shared<optim::SGD<float>>(
      net->named_parameters(), optim::SGDOptions().lr(0.01).momentum(0.9).weight_decay(5e-4));
  Generator gen(2);
  const Tensor<float> images = Tensor<float>::randn({c.batch, 3, c.size, c.size}, gen);
  std::vector<int32_t> labels(static_cast<size_t>(c.batch));
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>((i * 7919) % c.classes);
  const Tensor<int32_t> y = Tensor<int32_t>::from_vector(labels, {c.batch});
  const double n = static_cast<double>(c.batch);

  Tensor<double> stats = Tensor<double>::zeros({loss_stats::kSize});
  Tensor<float> targets;
  train::StepParts<float> parts{net.get(), opt.get(), train::cross_entropy_loss<float>(), &stats,
                                Device::cpu()};
  train::StepParts<float> soft = parts;
  soft.soft_targets = &targets;
  soft.loss = [&targets](const Tensor<float>& logits, const Tensor<int32_t>&) {
    return soft_cross_entropy(logits, targets);
  };
  train::EagerStep<float> off, clip(train::StepOptions().clip_grad_norm(1.0)),
      acc(train::StepOptions().accumulate(2)), mixed;
  off.bind(parts);
  clip.bind(parts);
  acc.bind(parts);
  mixed.bind(soft);
  train::ModelEma<float> ema(*net, train::EmaOptions().decay(0.999));
  train::Mixup mixup(train::MixupOptions().mixup_alpha(0.8).cutmix_alpha(1.0), c.classes);
  int64_t step_no = 0;

  std::vector<Variant> vs;
  vs.push_back({"plain", [&] { train::train_step(parts, images, y, n, n); }, {}});
  vs.push_back({"eager-off", [&] { off.run(images, y, n, n); }, {}});
  vs.push_back({"ema",
                [&] {
                  off.run(images, y, n, n);
                  ema.update(*net);
                },
                {}});
  vs.push_back({"mixup",
                [&] {
                  Tensor<float> x = images.clone();
                  targets = mixup.apply(x, labels, step_no++);
                  mixed.run(x, y, n, n);
                },
                {}});
  vs.push_back({"clip", [&] { clip.run(images, y, n, n); }, {}});
  vs.push_back({"accumulate2", [&] { acc.run(images, y, n, n); }, {}});

  for (auto& v : vs)
    for (int64_t i = 0; i < c.warmup; ++i) v.step();
  for (int64_t r = 0; r < c.rounds; ++r)
    for (auto& v : vs) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < c.steps; ++i) v.step();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      v.ms.push_back(1000.0 * s / static_cast<double>(c.steps));
    }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("%s batch %lld size %lld classes %lld threads %lld: median of %lld rounds of %lld steps\n",
              c.arch.c_str(), static_cast<long long>(c.batch), static_cast<long long>(c.size),
              static_cast<long long>(c.classes), static_cast<long long>(c.threads),
              static_cast<long long>(c.rounds), static_cast<long long>(c.steps));
  const double base = median(vs.front().ms);
  for (auto& v : vs) {
    const double m = median(v.ms);
    std::printf("  %-12s %9.2f ms/step   %.3fx plain\n", v.name.c_str(), m, m / base);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  BenchConfig c;
  CLI::App app(
      "The Trainer step's optional parts (EMA, mixup, clipping, accumulation) against the plain step.",
      "bench_step_parts");
  flags::setup(app);
  const auto positive = flags::int_in(1, int64_t(1) << 40);
  app.add_option("--arch", c.arch, "network")
      ->option_text("A")
      ->check(flags::one_of(train::recipe_archs()))
      ->capture_default_str();
  app.add_option("--batch", c.batch, "images per step")
      ->option_text("N")
      ->check(positive)
      ->capture_default_str();
  app.add_option("--size", c.size, "image side")->option_text("N")->check(positive)->capture_default_str();
  app.add_option("--classes", c.classes, "classifier outputs")
      ->option_text("N")
      ->check(positive)
      ->capture_default_str();
  app.add_option("--threads", c.threads, "CPU threads")
      ->option_text("N")
      ->check(positive)
      ->capture_default_str();
  app.add_option("--steps", c.steps, "timed steps per variant and round")
      ->option_text("N")
      ->check(positive)
      ->capture_default_str();
  app.add_option("--warmup", c.warmup, "untimed steps per variant first")
      ->option_text("N")
      ->check(flags::int_in(0, 1000000))
      ->capture_default_str();
  app.add_option("--rounds", c.rounds, "interleaved rounds; the median is reported")
      ->option_text("N")
      ->check(positive)
      ->capture_default_str();
  const int parsed = flags::parse(app, argc, argv);
  if (parsed >= 0) return parsed;
  try {
    return run(c);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_step_parts: %s\n", e.what());
    return 1;
  }
}
