// dp_timeline: when, in one rank's training step, each parameter's gradient becomes final, measured on one
// process without communication. tools/scaling_model.py --timeline reads it in place of its assumption
// (backward = 2/3 of the step, each layer's share of it = its share of the multiply-accumulates), since on
// a CPU small late layers run far below the early layers' rate per MAC.
//
//   dp_timeline [--arch resnet18] [--batch 8] [--size 128] [--threads 1] [--steps 5] [--warmup 2] > t.csv
//
// CSV on stdout: "# forward_ms F backward_ms B optimizer_ms O step_ms S", then "name,numel,ready_ms" per
// parameter (ready_ms from the start of backward, the median over the steps), in registration order.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "resnet/autograd/hooks.hpp"
#include "resnet/resnet.hpp"
#include "resnet/train/recipe_fields.hpp"
#include "flags.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

int run(int argc, char** argv) {
  int64_t batch = 8;
  flags::NetworkLoop shape;
  shape.steps = 5;
  shape.warmup = 2;
  CLI::App app("Per-parameter gradient-ready times of one training step.", "dp_timeline");
  flags::setup(app);
  flags::add_network_loop(app, shape, resnet::train::recipe_archs());
  app.add_option("--batch", batch, "batch (one rank's share)")
      ->option_text("N")
      ->check(flags::int_in(2, 1 << 20))
      ->capture_default_str();
  const int parsed = flags::parse(app, argc, argv);
  if (parsed >= 0) return parsed;
  const std::string& arch = shape.arch;
  const int64_t size = shape.size, classes = shape.classes, steps = shape.steps, warmup = shape.warmup;
  const int threads = shape.threads;
  resnet::set_num_threads(threads);
  auto mo = resnet::models::ResNetOptions().num_classes(classes).seed(1);
  auto model = resnet::models::resnet<float>(arch, mo);
  model->train();
  auto so = resnet::optim::SGDOptions().lr(0.01).momentum(0.9).weight_decay(1e-4);
  resnet::optim::SGD<float> opt(model->named_parameters(), so);
  resnet::Generator gen(100);
  auto x = resnet::Tensor<float>::randn(resnet::Shape{batch, 3, size, size}, gen);
  std::vector<int32_t> labels_v(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i)
    labels_v[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7) % classes);
  auto labels = resnet::Tensor<int32_t>::from_vector(labels_v, resnet::Shape{batch});

  auto params = model->named_parameters();
  std::vector<std::vector<double>> ready(params.size());
  Clock::time_point backward_start;
  bool timed = false;
  std::vector<resnet::autograd::GradHookHandle> hooks;
  for (size_t i = 0; i < params.size(); ++i)
    hooks.push_back(resnet::autograd::add_grad_ready_hook(params[i].second, [&, i](resnet::TensorBase&) {
      if (timed) ready[i].push_back(ms_between(backward_start, Clock::now()));
    }));
  std::vector<double> fwd, bwd, upd;
  for (int64_t s = 0; s < warmup + steps; ++s) {
    timed = s >= warmup;
    opt.zero_grad();
    const auto t0 = Clock::now();
    auto loss = resnet::cross_entropy(model->forward(x), labels);
    backward_start = Clock::now();
    loss.backward();
    const auto t2 = Clock::now();
    opt.step();
    const auto t3 = Clock::now();
    if (timed) {
      fwd.push_back(ms_between(t0, backward_start));
      bwd.push_back(ms_between(backward_start, t2));
      upd.push_back(ms_between(t2, t3));
    }
  }
  std::printf(
      "# forward_ms %.2f backward_ms %.2f optimizer_ms %.2f step_ms %.2f (%s batch %lld %lldpx, median of "
      "%lld)\n",
      median(fwd), median(bwd), median(upd), median(fwd) + median(bwd) + median(upd), arch.c_str(),
      static_cast<long long>(batch), static_cast<long long>(size), static_cast<long long>(steps));
  std::printf("name,numel,ready_ms\n");
  for (size_t i = 0; i < params.size(); ++i)
    std::printf("%s,%lld,%.3f\n", params[i].first.c_str(), static_cast<long long>(params[i].second.numel()),
                median(ready[i]));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dp_timeline: %s\n", e.what());
    return 1;
  }
}
