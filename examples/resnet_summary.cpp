// resnet_summary ARCH [--classes N] [--size S] [--v1]: the layer table of a ResNet with output shapes,
// parameters and multiply-accumulates per image, and the totals.
#include <cstdio>
#include <string>

#include "flags.hpp"
#include "resnet/resnet.hpp"
#include "resnet/train/recipe_fields.hpp"

int main(int argc, char** argv) {
  std::string arch;
  int64_t classes = 1000, size = 224;
  bool v1 = false;
  CLI::App app("The layer table of a ResNet: output shapes, parameters and multiply-accumulates per image.",
               "resnet_summary");
  flags::setup(app);
  app.add_option("ARCH", arch, "resnet18 | resnet34 | resnet50 | resnet101 | resnet152")
      ->option_text("ARCH")
      ->required()
      ->check(flags::one_of(resnet::train::recipe_archs()));
  app.add_option("--classes", classes, "number of output classes")
      ->option_text("N")
      ->check(flags::int_in(1, 1000000))
      ->capture_default_str();
  app.add_option("--size", size, "input height and width")
      ->option_text("S")
      ->check(flags::int_in(1, 4096))
      ->capture_default_str();
  app.add_flag("--v1", v1, "bottleneck stride on the first 1x1 conv (the paper) instead of the 3x3 (v1.5)");
  const int parsed = flags::parse(app, argc, argv);
  if (parsed >= 0) return parsed;
  try {
    auto net = resnet::models::resnet<float>(
        arch, resnet::models::ResNetOptions().num_classes(classes).stride_on_1x1(v1));
    auto s = resnet::models::summarize(*net, {1, 3, size, size});
    std::printf("%s%s, %lld classes, input 3x%lldx%lld\n\n", arch.c_str(), v1 ? " (v1)" : " (v1.5)",
                static_cast<long long>(classes), static_cast<long long>(size), static_cast<long long>(size));
    std::fputs(resnet::models::format_summary(s).c_str(), stdout);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "resnet_summary: %s\n", e.what());
    return 1;
  }
}
