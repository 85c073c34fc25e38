// resnet_summary ARCH [--classes N] [--size S] [--v1]: the layer table of a ResNet with output shapes,
// parameters and multiply-accumulates per image, and the totals.
#include <cstdio>
#include <cstring>
#include <string>

#include "resnet/resnet.hpp"
#include "resnet/tools/cli.hpp"

namespace {
void usage(FILE* f) {
  std::fprintf(
      f,
      "usage: resnet_summary ARCH [--classes N] [--size S] [--v1]\n"
      "  ARCH         resnet18 | resnet34 | resnet50 | resnet101 | resnet152\n"
      "  --classes N  number of output classes (default 1000)\n"
      "  --size S     input height and width (default 224)\n"
      "  --v1         bottleneck stride on the first 1x1 conv (the paper) instead of the 3x3 (v1.5)\n");
}
}  // namespace

int main(int argc, char** argv) {
  try {
    std::string arch;
    resnet::models::ResNetOptions o;
    int64_t size = 224;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto value = [&]() -> const char* {
        if (i + 1 >= argc) throw resnet::tools::UsageError(a + ": missing value");
        return argv[++i];
      };
      if (a == "--help" || a == "-h") {
        usage(stdout);
        return 0;
      } else if (a == "--classes") {
        o.num_classes = resnet::tools::parse_positive("--classes", value());
      } else if (a == "--size") {
        size = resnet::tools::parse_positive("--size", value());
      } else if (a == "--v1") {
        o.stride_on_1x1 = true;
      } else if (!a.empty() && a[0] == '-') {
        throw resnet::tools::UsageError("unknown flag '" + a + "'");
      } else if (arch.empty()) {
        arch = a;
      } else {
        throw resnet::tools::UsageError("unexpected argument '" + a + "'");
      }
    }
    if (arch.empty()) {
      usage(stderr);
      return 2;
    }
    auto net = resnet::models::resnet<float>(arch, o);
    auto s = resnet::models::summarize(*net, {1, 3, size, size});
    std::printf("%s%s, %lld classes, input 3x%lldx%lld\n\n", arch.c_str(),
                o.stride_on_1x1 ? " (v1)" : " (v1.5)", static_cast<long long>(o.num_classes),
                static_cast<long long>(size), static_cast<long long>(size));
    std::fputs(resnet::models::format_summary(s).c_str(), stdout);
    return 0;
  } catch (const resnet::tools::UsageError& e) {
    std::fprintf(stderr, "resnet_summary: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "resnet_summary: %s\n", e.what());
    return 1;
  }
}
