// bfloat16 training on the CPU (issue 16): ResNet<bf16_t> with float32 master weights and float32
// BatchNorm statistics, against the float32 network with the bounds the GPU's bfloat16 is held to
// (test_cuda.cpp: forward error 5e-2, each gradient's cosine > 0.85), in NCHW and NHWC. Each bfloat16
// kernel against the double reference is the op registry's job (test_ops "[bf16]").
#include <algorithm>

#include "net_runs.hpp"
#include "test_util.hpp"

using namespace resnet;
using netruns::compare_nets;
using netruns::run_net;

TEST_CASE("cpu bf16: conversions round to nearest even, vectorised path equals bf16_t", "[bf16]") {
  const std::vector<float> v{1.0f, 1.00390625f, 1.01171875f, -3.5e-3f, 65504.f, 1e-40f, 3.4e38f, 0.f, -0.f};
  for (float f : v) {
    INFO(f);
    CHECK(cpu::bf16::round(f).bits == bf16_t(f).bits);
    CHECK(cpu::bf16::load(bf16_t(f)) == static_cast<float>(bf16_t(f)));
  }
  // 1 + 2^-8 is halfway between two bfloat16 values: ties go to the even one (1.0).
  CHECK(static_cast<float>(cpu::bf16::round(1.00390625f)) == 1.0f);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(cpu::bf16::load(cpu::bf16::round(nan))));
  Generator g(4);
  auto x = Tensor<float>::randn({1000}, g);
  auto b = cast<bf16_t>(x);
  auto back = cast<float>(b);
  for (int64_t i = 0; i < x.numel(); ++i) CHECK(b.data()[i].bits == bf16_t(x.data()[i]).bits);
  CHECK(testing::relative_error(back.to_vector(), x.to_vector()) < 4e-3);
}

TEST_CASE("cpu bf16: master weights and statistics stay float32", "[bf16]") {
  models::ResNetOptions o;
  o.num_classes = 4;
  o.seed = 3;
  auto net = models::resnet18<bf16_t>(o);
  for (auto& kv : net->state_dict()) {
    INFO(kv.first);
    CHECK((kv.second.dtype() == DType::F32 || kv.second.dtype() == DType::I64));
  }
  // One SGD step moves the float32 weights.
  net->train();
  optim::SGDOptions so;
  so.lr = 0.1;
  optim::SGD<float> opt(net->named_parameters(), so);
  const auto before = net->fc->weight.to_vector();
  Generator g(6);
  auto x = cast<bf16_t>(Tensor<float>::randn({2, 3, 32, 32}, g));
  auto loss = cross_entropy(net->forward(x), std::vector<int32_t>{0, 1});
  CHECK(std::isfinite(static_cast<float>(loss.item())));
  loss.backward();
  opt.step();
  const auto after = net->fc->weight.to_vector();
  CHECK(testing::relative_error(after, before) > 0.0);
}

// The bfloat16 convolution implementation the process started with, put back at scope exit.
struct Bf16ConvGuard {
  cpu::Bf16Conv saved = cpu::bf16_conv_impl();
  ~Bf16ConvGuard() { cpu::bf16_conv_impl() = saved; }
};

// Both convolution paths where the CPU has both: the default picks one by measurement (conv.hpp), so the
// other is checked here rather than left untested on the machines that do not default to it.
TEST_CASE("cpu bf16: ResNet-18 training step against float32 with the GPU's bfloat16 bounds, NCHW and NHWC",
          "[bf16]") {
  Bf16ConvGuard guard;
  const auto ref = run_net<float>("resnet18", MemoryFormat::Contiguous, 4, 64);
  std::vector<cpu::Bf16Conv> impls{cpu::Bf16Conv::ViaFloat};
  if (cpu::bf16_native_available())
    impls.push_back(cpu::Bf16Conv::Native);
  else
    std::printf("no oneDNN bfloat16 convolutions on this CPU: the native path is not checked here\n");
  for (cpu::Bf16Conv impl : impls) {
    cpu::set_bf16_conv_impl(impl);
    const char* impl_name = impl == cpu::Bf16Conv::Native ? "oneDNN bfloat16" : "float32 convolutions";
    for (MemoryFormat f : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
      INFO(memory_format_name(f) << ", " << impl_name);
      const auto got = run_net<bf16_t>("resnet18", f, 4, 64);
      CHECK(got.conv1_format == f);
      const double least = compare_nets(got, ref, netruns::kBf16Bounds);
      std::printf("bfloat16 resnet18 %s (%s): least gradient cosine vs float32 %.4f, loss %.5f vs %.5f\n",
                  memory_format_name(f), impl_name, least, got.loss, ref.loss);
    }
  }
}

// ResNet-50 as initialised is chaotic in rounding: its layer4 differs from its own double by 1e-4 in float32
// (ResNet-18: < 5e-5), so bfloat16's 2^16 times coarser rounding leaves logits 50% off and gradient cosines
// near 0, in both formats, while every bfloat16 kernel matches the double reference in test_ops [bf16] and
// each convolution is within 0.3% (bfloat16's rounding of its inputs). With each block's last BatchNorm
// weight at 0.25, as training leaves them, the activations drift ~1.5% through the stages and the loss
// stays within 0.1%, but the logits (max-relative) are 7-11% off and four BatchNorm weights and biases of
// layer1-2 (sums of many cancelling terms) have gradient cosines of 0.77-0.85 (measured here). Bounds for
// this deeper net: logits 20%, cosine 0.7; a broken kernel gives logits ~50% off and cosines ~0.1.
const netruns::NetBounds kDeepBf16Bounds{0.2, 0, 0.7};
TEST_CASE(
    "cpu bf16: ResNet-50 training step against float32 within deep-network bfloat16 bounds (residual gain "
    "0.25)",
    "[bf16]") {
  const auto ref = run_net<float>("resnet50", MemoryFormat::Contiguous, 4, 64, Device::cpu(), 0.25);
  for (MemoryFormat f : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
    INFO(memory_format_name(f));
    const auto got = run_net<bf16_t>("resnet50", f, 4, 64, Device::cpu(), 0.25);
    const double least = compare_nets(got, ref, kDeepBf16Bounds);
    std::printf(
        "bfloat16 resnet50 (residual gain 0.25) %s: least gradient cosine vs float32 %.4f, loss %.5f vs "
        "%.5f\n",
        memory_format_name(f), least, got.loss, ref.loss);
  }
}
