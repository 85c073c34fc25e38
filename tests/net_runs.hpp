// One training step of a whole ResNet (forward, loss, backward) recorded for comparison between dtypes and
// memory formats, with the bounds test_cuda.cpp uses for the GPU against the CPU in double: the forward
// pass and statistics by relative error, each gradient by relative error (double) or by its direction
// (float and below: a few ReLU / max-pool decisions flip between any two roundings).
#pragma once

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "test_util.hpp"

namespace netruns {

using namespace resnet;

struct NetRun {
  double loss = 0;
  std::vector<double> logits, input_grad;
  std::vector<std::pair<std::string, std::vector<double>>> grads, buffers;
  MemoryFormat conv1_format = MemoryFormat::Contiguous;  // the format the stem's output came out in
};

template <typename V>
std::vector<double> as_doubles(const std::vector<V>& v) {
  std::vector<double> d;
  d.reserve(v.size());
  for (const V& e : v) d.push_back(static_cast<double>(static_cast<acc_t<V>>(e)));
  return d;
}

// The same float32 input (widened exactly for double) and seed for every dtype, format and device.
template <typename T>
// residual_gain scales each block's last BatchNorm weight (1: as initialised), as training leaves them: an
// untrained deep network amplifies rounding chaotically (ResNet-50's layer4 differs from its double by 1e-4
// in float32, so bfloat16's 2^16 times coarser rounding decorrelates it), a trained one does not.
NetRun run_net(const std::string& arch, MemoryFormat fmt, int64_t batch, int64_t size,
               Device dev = Device::cpu(), double residual_gain = 1.0) {
  auto o = models::ResNetOptions().num_classes(10).seed(1234);
  auto net = models::resnet<T>(arch, o);
  if (residual_gain != 1.0)
    for (auto block : net->blocks) {
      auto& w = block->last_bn().weight;
      auto v = w.to_vector();
      for (auto& e : v) e = static_cast<acc_t<T>>(e * residual_gain);
      w = Tensor<acc_t<T>>::from_vector(v, w.shape()).requires_grad_(true);
    }
  net->to(dev);
  net->to(fmt);
  net->train();
  Generator g(80);
  auto xf = Tensor<float>::randn({batch, 3, size, size}, g);
  auto x = cast<T>(xf).detach().to(dev);
  x.requires_grad_(true);
  std::vector<int32_t> labels;
  for (int64_t i = 0; i < batch; ++i) labels.push_back(static_cast<int32_t>(i % 10));
  NetRun r;
  {
    NoGradGuard ng;
    r.conv1_format = net->conv1->forward(x.contiguous(fmt)).suggest_memory_format();
  }
  auto logits = net->forward(x);
  auto loss = cross_entropy(logits, labels);
  loss.backward();
  r.loss = static_cast<double>(static_cast<acc_t<T>>(loss.item()));
  r.logits = as_doubles(logits.to_vector());
  r.input_grad = as_doubles(x.grad().to_vector());
  for (auto& kv : net->named_parameters()) {
    INFO(kv.first);
    REQUIRE(kv.second.grad().defined());
    r.grads.emplace_back(kv.first, as_doubles(kv.second.grad().to_vector()));
  }
  for (auto& kv : net->named_buffers()) {
    if (kv.second.dtype() == DType::F32)
      r.buffers.emplace_back(kv.first, as_doubles(Tensor<float>(kv.second).to_vector()));
    if (kv.second.dtype() == DType::F64)
      r.buffers.emplace_back(kv.first, Tensor<double>(kv.second).to_vector());
  }
  return r;
}

inline double cosine(const std::vector<double>& a, const std::vector<double>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return aa == 0 && bb == 0 ? 1.0 : ab / std::sqrt(aa * bb + 1e-300);
}

struct NetBounds {
  double forward;     // loss, logits, running statistics: relative error
  double gradient;    // each gradient, relative error (0: not checked)
  double min_cosine;  // each gradient, cosine with the reference (0: not checked)
};
// In double, every op of the network on the GPU must agree with the CPU to rounding: gradients too.
// In float32 and the 16-bit types a whole network cannot be compared element by element: a handful of
// pre-activations lie within rounding of zero (or of a max-pool neighbour), and any two roundings of the
// same network send their gradients different ways. The CPU's own float32 paths differ from its double
// by up to 29% in single gradients of these networks (max-relative; norm 4.5%, cosine >= 0.999), while
// the forward pass, which is continuous, stays within 1e-4. So the forward pass and the statistics are
// compared by relative error, and each gradient by its direction. The same bounds serve the GPU against
// the CPU (test_cuda.cpp) and the CPU's own float and bfloat16 against its double or float.
const NetBounds kDoubleBounds{1e-9, 1e-9, 0};
const NetBounds kFloatBounds{1e-3, 0, 0.995};  // TF32 off
// Measured on an H200 against the CPU in double (2026-11-26): the least cosine of any gradient was 0.9892
// in float16 and 0.906 in bfloat16 (8 significant bits against 11: eight times the rounding noise).
const NetBounds kHalfBounds{2e-2, 0, 0.98};
const NetBounds kBf16Bounds{5e-2, 0, 0.85};

// Returns the least gradient cosine seen (for the report).
inline double compare_nets(const NetRun& g, const NetRun& c, const NetBounds& b) {
  CHECK(std::abs(g.loss - c.loss) <= b.forward * std::abs(c.loss));
  CHECK(testing::relative_error(g.logits, c.logits) < b.forward);
  double least = 1.0;
  auto grad = [&](const std::string& name, const std::vector<double>& got, const std::vector<double>& want) {
    INFO("gradient of " << name);
    REQUIRE(got.size() == want.size());
    if (b.gradient > 0) CHECK(testing::relative_error(got, want) < b.gradient);
    const double cs = cosine(got, want);
    least = std::min(least, cs);
    if (b.min_cosine > 0) CHECK(cs > b.min_cosine);
  };
  grad("the input", g.input_grad, c.input_grad);
  REQUIRE(g.grads.size() == c.grads.size());
  for (size_t i = 0; i < g.grads.size(); ++i) grad(g.grads[i].first, g.grads[i].second, c.grads[i].second);
  REQUIRE(g.buffers.size() == c.buffers.size());
  for (size_t i = 0; i < g.buffers.size(); ++i) {
    INFO("buffer " << g.buffers[i].first);
    CHECK(testing::relative_error(g.buffers[i].second, c.buffers[i].second) < b.forward);
  }
  return least;
}

}  // namespace netruns
