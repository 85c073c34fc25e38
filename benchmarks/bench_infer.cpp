// bench_infer: inference images/s of our ResNets in eval mode, unfused and with every BatchNorm folded into
// its convolution (models::fuse_for_inference, what infer::Classifier does), beside PyTorch's torchvision
// model unfused and fx-fused (benchmarks/bench_infer_torch.py) in the same invocation, same shapes and
// threads. Also reports the largest difference between our fused and unfused logits.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "flags.hpp"
#include "resnet/resnet.hpp"
#include "resnet/train/recipe_fields.hpp"

#ifndef RESNET_BENCH_DIR
#define RESNET_BENCH_DIR "benchmarks"
#endif

using namespace resnet;

namespace {

double images_per_s(models::ResNet<float>& net, const Tensor<float>& x, int warmup, int steps) {
  NoGradGuard guard;
  for (int i = 0; i < warmup; ++i) net.forward(x);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) net.forward(x);
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(x.dim(0)) * steps / dt;
}

}  // namespace

int main(int argc, char** argv) {
  std::string archs = "resnet18,resnet50", no_torch = "off", python = "/usr/bin/python3";
  int64_t batch = 16, size = 128, classes = 1000;
  int threads = 2, steps = 10, warmup = 3;
  CLI::App app("Inference images/s: ours unfused and fused, PyTorch unfused and fused.", "bench_infer");
  flags::setup(app);
  app.add_option("--arch", archs, "architectures")
      ->option_text("LIST")
      ->check(flags::list_of(flags::one_of(train::recipe_archs())))
      ->capture_default_str();
  app.add_option("--batch", batch, "images per forward")
      ->option_text("N")
      ->check(flags::int_in(1, 4096))
      ->capture_default_str();
  app.add_option("--size", size, "input height = width")
      ->option_text("S")
      ->check(flags::int_in(32, 1024))
      ->capture_default_str();
  app.add_option("--threads", threads, "CPU threads for us and PyTorch")
      ->option_text("N")
      ->check(flags::int_in(1, 1024))
      ->capture_default_str();
  app.add_option("--steps", steps, "timed forwards")
      ->option_text("N")
      ->check(flags::int_in(1, 100000))
      ->capture_default_str();
  app.add_option("--warmup", warmup, "untimed forwards first")
      ->option_text("N")
      ->check(flags::int_in(0, 100000))
      ->capture_default_str();
  app.add_option("--classes", classes, "classifier outputs")
      ->option_text("N")
      ->check(flags::int_in(1, 100000))
      ->capture_default_str();
  app.add_option("--no-torch", no_torch, "skip the PyTorch baseline")
      ->option_text("on|off")
      ->check(flags::on_off())
      ->capture_default_str();
  app.add_option("--python", python, "Python with torch")->option_text("EXE")->capture_default_str();
  const int parsed = flags::parse(app, argc, argv);
  if (parsed >= 0) return parsed;
  try {
    set_num_threads(threads);
    std::printf("%-10s %5s %5s  %-14s %12s %10s\n", "arch", "batch", "size", "impl", "images/s", "vs torch");
    for (const auto& arch : flags::split_list(archs)) {
      auto o = models::ResNetOptions().num_classes(classes).seed(1);
      auto net = models::resnet<float>(arch, o);
      // Random running statistics: folding fresh (identity) BatchNorms would prove nothing.
      Generator gen(2);
      for (auto& kv : net->named_buffers())
        if (kv.first.find("running_var") != std::string::npos)
          copy_into(kv.second, Tensor<float>::uniform(kv.second.shape(), 0.5, 1.5, gen));
      net->eval();
      auto x = Tensor<float>::randn({batch, 3, size, size}, gen);
      std::vector<float> want;
      {
        NoGradGuard g;
        want = net->forward(x).to_vector();
      }
      const double unfused = images_per_s(*net, x, warmup, steps);
      models::fuse_for_inference(*net);
      const double fused = images_per_s(*net, x, warmup, steps);
      std::vector<float> got;
      {
        NoGradGuard g;
        got = net->forward(x).to_vector();
      }
      double diff = 0, scale = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        diff = std::max(diff, std::fabs(static_cast<double>(got[i]) - want[i]));
        scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
      }
      double t_unfused = 0, t_fused = 0;
      if (!flags::is_on(no_torch)) {
        const std::string cmd = python + " " RESNET_BENCH_DIR "/bench_infer_torch.py --arch " + arch +
                                " --batch " + std::to_string(batch) + " --size " + std::to_string(size) +
                                " --threads " + std::to_string(threads) + " --steps " +
                                std::to_string(steps) + " --warmup " + std::to_string(warmup) +
                                " --classes " + std::to_string(classes);
        FILE* p = popen(cmd.c_str(), "r");
        char line[256];
        while (p && std::fgets(line, sizeof line, p)) {
          char which[32];
          double v = 0;
          if (std::sscanf(line, "torch %31s %lf", which, &v) == 2)
            (std::string(which) == "fused" ? t_fused : t_unfused) = v;
        }
        if (p) pclose(p);
      }
      auto row = [&](const char* impl, double v, double ref) {
        char r[32] = "-";
        if (ref > 0) std::snprintf(r, sizeof r, "%.2fx", v / ref);
        std::printf("%-10s %5lld %5lld  %-14s %12.2f %10s\n", arch.c_str(), static_cast<long long>(batch),
                    static_cast<long long>(size), impl, v, r);
      };
      row("ours", unfused, t_unfused);
      row("ours-fused", fused, t_fused);
      if (t_unfused > 0) row("torch", t_unfused, 0);
      if (t_fused > 0) row("torch-fused", t_fused, 0);
      std::printf("%-10s fused vs unfused: %.2fx; max |fused - unfused| / max |logit| = %.2e\n", arch.c_str(),
                  fused / unfused, diff / scale);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_infer: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
