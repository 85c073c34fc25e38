// Our automatic-augmentation operations against torchvision's own: the same 8-bit images through every
// operation of data/augment_ops.hpp at every magnitude of TrivialAugmentWide's bins (both signs) and
// RandAugment's default bin, and the same again through tests/interop/torchvision_augment.py
// (torchvision.transforms.autoaugment._apply_op on uint8 tensors, nearest interpolation); and the two
// policies' magnitude tables against torchvision's. Colour operations must match exactly. The geometric ones
// and Sharpness sum float32 products in the order torch's bmm and conv2d take (this build mirrors the ones
// on the build machine, where all match exactly); another BLAS may round a source coordinate within an
// ulp of a half-pixel the other way, so they may differ in at most 0.5% of the values. The program exits
// 77 (skipped) when RESNET_PYTHON cannot import torchvision.
#include "catch_session.hpp"  // our own main(): skip (exit 77) when Python lacks torchvision
#include "catch.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "resnet/data/auto_augment.hpp"

using namespace resnet;
using namespace resnet::data;
namespace fs = std::filesystem;

namespace {

std::string quote(const std::string& s) { return "'" + s + "'"; }

int run_python(const std::string& args) {
  const std::string cmd = quote(RESNET_PYTHON) + " " + quote(RESNET_AUGMENT_SCRIPT) + " " + args;
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

struct WorkDir {
  fs::path path;
  WorkDir() {
    path = fs::temp_directory_path() / ("resnet_augment_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~WorkDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// Gradients, a bright box, a dark stripe and noise: every operation changes it, no channel is flat.
Image test_image(int w, int h, uint64_t seed) {
  Image img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  SampleRng rng(seed);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &img.pixels[(static_cast<size_t>(y) * w + x) * 3];
      const bool box = x > w / 4 && x < w / 2 && y > h / 3 && y < 2 * h / 3, stripe = x % 9 == 4;
      p[0] = static_cast<uint8_t>(box ? 230 : 20 + (200 * x) / w + rng.below(20));
      p[1] = static_cast<uint8_t>(stripe ? 10 : 30 + (180 * y) / h + rng.below(30));
      p[2] = static_cast<uint8_t>(60 + ((x * y) % 97) + rng.below(40));
    }
  return img;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

struct Worst {
  int max_diff = 0;
  double worst_fraction = 0;  // of the pixels (values) that differ, in the worst case
  int cases = 0;
};

// Every operation at every TrivialAugmentWide magnitude (both signs) and RandAugment's bin 9, through us
// and through torchvision; the worst differences per operation.
std::map<std::string, Worst> compare_all(int w, int h, const Fill* fill) {
  WorkDir dir;
  const Image img = test_image(w, h, 7);
  write_bytes(dir.file("in.raw"), img.pixels);
  std::vector<std::pair<AugmentOp, double>> cases;
  for (int k = 0; k < kAugmentOps; ++k) {
    const AugmentOp op = static_cast<AugmentOp>(k);
    const OpMagnitudes ta = augment_magnitudes(AutoAugmentPolicy::TrivialAugmentWide, op, 31, w, h);
    const OpMagnitudes ra = augment_magnitudes(AutoAugmentPolicy::RandAugment, op, 31, w, h);
    if (ta.values.empty()) cases.push_back({op, 0.0});
    std::vector<float> mags = ta.values;
    if (!ra.values.empty()) mags.push_back(ra.values[9]);
    for (float m : mags) {
      cases.push_back({op, static_cast<double>(m)});
      if (ta.is_signed && m != 0) cases.push_back({op, -static_cast<double>(m)});
    }
  }
  {
    std::ofstream ops(dir.file("ops.txt"));
    char buf[64];
    for (auto& c : cases) {
      std::snprintf(buf, sizeof buf, "%.17g", c.second);
      ops << augment_op_name(c.first) << " " << buf << "\n";
    }
  }
  std::string args = "ops --image " + quote(dir.file("in.raw")) + " --width " + std::to_string(w) +
                     " --height " + std::to_string(h) + " --ops " + quote(dir.file("ops.txt")) + " --out " +
                     quote(dir.path.string());
  if (fill)
    args += " --fill " + std::to_string((*fill)[0]) + "," + std::to_string((*fill)[1]) + "," +
            std::to_string((*fill)[2]);
  REQUIRE(run_python(args) == 0);
  std::map<std::string, Worst> worst;
  for (size_t k = 0; k < cases.size(); ++k) {
    Image ours = img;
    apply_augment_op(ours, cases[k].first, cases[k].second, fill ? *fill : Fill{0, 0, 0});
    const std::vector<uint8_t> theirs = read_bytes(dir.file(std::to_string(k) + ".raw"));
    REQUIRE(theirs.size() == ours.pixels.size());
    int max_diff = 0, differ = 0;
    for (size_t i = 0; i < theirs.size(); ++i) {
      const int d = std::abs(static_cast<int>(theirs[i]) - static_cast<int>(ours.pixels[i]));
      max_diff = std::max(max_diff, d);
      differ += d > 0 ? 1 : 0;
    }
    Worst& wo = worst[augment_op_name(cases[k].first)];
    wo.max_diff = std::max(wo.max_diff, max_diff);
    wo.worst_fraction = std::max(wo.worst_fraction, static_cast<double>(differ) / theirs.size());
    ++wo.cases;
  }
  return worst;
}

void check_worst(const std::map<std::string, Worst>& worst, const std::string& what) {
  REQUIRE(worst.size() == static_cast<size_t>(kAugmentOps));
  for (const auto& kv : worst) {
    std::printf("%s %-12s cases %3d  max |diff| %3d  worst case: %.4f%% of values differ\n", what.c_str(),
                kv.first.c_str(), kv.second.cases, kv.second.max_diff, 100.0 * kv.second.worst_fraction);
    const bool rounding = kv.first.rfind("Shear", 0) == 0 || kv.first.rfind("Translate", 0) == 0 ||
                          kv.first == "Rotate" || kv.first == "Sharpness";
    INFO(what << " " << kv.first);
    if (rounding)
      CHECK(kv.second.worst_fraction <= 0.005);
    else
      CHECK(kv.second.max_diff == 0);
  }
}

}  // namespace

TEST_CASE("augment ops: every operation and magnitude as torchvision's, odd-sized image", "[torchvision]") {
  check_worst(compare_all(41, 30, nullptr), "41x30");
}

TEST_CASE("augment ops: every operation and magnitude as torchvision's, square image", "[torchvision]") {
  check_worst(compare_all(32, 32, nullptr), "32x32");
}

TEST_CASE("augment ops: geometric operations fill as torchvision's", "[torchvision]") {
  const Fill fill{128, 64, 32};
  check_worst(compare_all(37, 44, &fill), "37x44 fill");
}

TEST_CASE("augment policies: magnitude tables as torchvision's", "[torchvision]") {
  WorkDir dir;
  for (int bins : {31, 11}) {
    const int w = 57, h = 40;
    REQUIRE(run_python("bins --width " + std::to_string(w) + " --height " + std::to_string(h) + " --bins " +
                       std::to_string(bins) + " --out " + quote(dir.file("bins.txt"))) == 0);
    std::ifstream f(dir.file("bins.txt"));
    std::string line;
    int rows = 0;
    while (std::getline(f, line)) {
      std::istringstream in(line);
      std::string policy, name;
      int is_signed = 0;
      in >> policy >> name >> is_signed;
      int k = 0;
      while (k < kAugmentOps && name != augment_op_name(static_cast<AugmentOp>(k))) ++k;
      REQUIRE(k < kAugmentOps);
      REQUIRE(k == rows % kAugmentOps);  // torchvision's order is ours: a policy's index means the same op
      const OpMagnitudes m =
          augment_magnitudes(parse_auto_augment(policy), static_cast<AugmentOp>(k), bins, w, h);
      INFO(policy << " " << name << " bins " << bins);
      CHECK(m.is_signed == (is_signed != 0));
      std::vector<double> theirs;
      std::string v;
      while (in >> v)
        if (v != "-") theirs.push_back(std::strtod(v.c_str(), nullptr));
      REQUIRE(theirs.size() == m.values.size());
      for (size_t i = 0; i < theirs.size(); ++i) CHECK(static_cast<double>(m.values[i]) == theirs[i]);
      ++rows;
    }
    CHECK(rows == 2 * kAugmentOps);
  }
}

int main(int argc, char* argv[]) {
  const std::string probe = quote(RESNET_PYTHON) + " -c 'import torch, torchvision' >/dev/null 2>&1";
  if (std::system(probe.c_str()) != 0) {
    std::cout << "SKIPPED: " << RESNET_PYTHON
              << " cannot import torch and torchvision (apt-get install python3-torch python3-torchvision)\n";
    return 77;
  }
  return run_catch_session(argc, argv);
}
