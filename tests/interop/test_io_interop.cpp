// Weights move between torchvision and resnet: torchvision ResNet-18/50 with random weights and random
// BatchNorm statistics, saved by tests/interop/torchvision_interop.py, load into our model and give
// torchvision's eval logits; our weights, saved with save_checkpoint, load into torchvision and give ours.
// The Python side runs under RESNET_PYTHON (Debian's /usr/bin/python3 with python3-torch): when it lacks
// torch the program exits 77, which ctest reports as skipped.
#include "catch.hpp"
#include "catch_session.hpp"  // our own main(): skip (exit 77) when Python lacks torch

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "resnet/io/checkpoint.hpp"
#include "test_util.hpp"

using namespace resnet;
namespace fs = std::filesystem;

namespace {

std::string quote(const std::string& s) { return "'" + s + "'"; }

int run_python(const std::string& args) {
  const std::string cmd = quote(RESNET_PYTHON) + " " + quote(RESNET_INTEROP_SCRIPT) + " " + args;
  std::cout << "running: " << cmd << std::endl;
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

struct WorkDir {
  fs::path path;
  explicit WorkDir(const std::string& arch) {
    path = fs::temp_directory_path() / ("resnet_interop_" + arch + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~WorkDir() {
    std::error_code ec;
    fs::remove_all(path, ec);  // ~100 MB of ResNet-50 weights per direction
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// Random BN weights and statistics, as the export script does, so a swapped statistic cannot hide.
void randomize_batchnorm(models::ResNet<float>& net, uint64_t seed) {
  Generator g(seed);
  for (auto& kv : net.state_dict()) {
    const std::string& n = kv.first;
    auto ends_with = [&](const std::string& s) {
      return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
    };
    bool bn = n.find("bn") != std::string::npos || n.find("downsample.1") != std::string::npos;
    if (!bn) continue;
    if (ends_with("num_batches_tracked")) {
      Tensor<int64_t>(kv.second).data()[0] = 17;
      continue;
    }
    Tensor<float> t(kv.second);
    float* p = t.data();
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (ends_with("running_var")) p[i] = static_cast<float>(g.uniform(0.5, 2.0));
      if (ends_with("running_mean")) p[i] = static_cast<float>(g.normal(0.0, 0.2));
      if (ends_with(".weight")) p[i] = static_cast<float>(g.uniform(0.5, 1.5));
      if (ends_with(".bias")) p[i] = static_cast<float>(g.normal(0.0, 0.2));
    }
  }
}

void torchvision_to_ours(const std::string& arch) {
  WorkDir dir(arch);
  REQUIRE(run_python("export --arch " + arch + " --out " + quote(dir.path.string())) == 0);
  auto net = models::resnet<float>(arch);
  io::TrainingState st =
      io::load_checkpoint<float>(dir.file(arch + "_torch_weights.safetensors"), *net, nullptr);
  CHECK(st.arch.empty());  // plain state_dict, no training metadata
  auto io_file = io::SafetensorsReader::open(dir.file(arch + "_torch_io.safetensors"));
  Tensor<float> x(io_file.read("input"));
  Tensor<float> want(io_file.read("logits"));
  net->eval();
  NoGradGuard ng;
  Tensor<float> got = net->forward(x);
  REQUIRE(got.shape() == want.shape());
  double err = testing::relative_error(got.to_vector(), want.to_vector());
  INFO("torchvision " << arch << " weights in resnet: relative error of the logits " << err);
  std::cout << "torchvision " << arch << " weights in resnet: relative error " << err << " (limit 1e-4)\n";
  CHECK(err < 1e-4);
}

void ours_to_torchvision(const std::string& arch) {
  WorkDir dir(arch);
  auto o = models::ResNetOptions().seed(2024);
  auto net = models::resnet<float>(arch, o);
  randomize_batchnorm(*net, 7);
  // Save with optimizer state and metadata, as training does: the script must pick the model's tensors.
  auto so = optim::SGDOptions().momentum(0.9);
  optim::SGD<float> opt(net->named_parameters(), so);
  io::TrainingState st;
  st.arch = arch;
  st.class_names = {"a", "b"};
  const std::string weights = dir.file(arch + "_ours.safetensors");
  io::save_checkpoint<float>(weights, *net, &opt, st);

  Tensor<float> x = testing::random_tensor<float>({2, 3, 64, 64}, 99);
  net->eval();
  NoGradGuard ng;
  Tensor<float> logits = net->forward(x);
  io::write_safetensors(
      dir.file(arch + "_ours_io.safetensors"),
      {{"input", DType::F32, x.shape(), x.data()}, {"logits", DType::F32, logits.shape(), logits.data()}});
  CHECK(run_python("check --arch " + arch + " --weights " + quote(weights) + " --io " +
                   quote(dir.file(arch + "_ours_io.safetensors"))) == 0);
}

}  // namespace

TEST_CASE("interop: torchvision ResNet-18 weights give torchvision's logits in resnet", "[interop]") {
  torchvision_to_ours("resnet18");
}
TEST_CASE("interop: torchvision ResNet-50 weights give torchvision's logits in resnet", "[interop]") {
  torchvision_to_ours("resnet50");
}
TEST_CASE("interop: our ResNet-18 checkpoint gives our logits in torchvision", "[interop]") {
  ours_to_torchvision("resnet18");
}
TEST_CASE("interop: our ResNet-50 checkpoint gives our logits in torchvision", "[interop]") {
  ours_to_torchvision("resnet50");
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
