// One contract per op (backend/contract/): the same bad input gets the same exception and the same message
// from the CPU backend and from the CUDA backend. Both check the contract before they touch data or ask
// which device a tensor is on, so the CUDA half runs here without a GPU, on the same host tensors: every
// case below calls cpu::fn and cuda::fn with identical arguments and compares the two messages byte for byte.
// A label out of range is the one check the GPU makes later (labels already on the device are read by the
// loss kernel): test_cuda checks that message on a GPU against the CPU's.
#include <functional>

#include "test_util.hpp"

using namespace resnet;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void check_bad(const char* op, const std::string& fragment, const std::function<void()>& cpu_call,
               const std::function<void()>& cuda_call) {
  INFO(op << ": expected an error mentioning '" << fragment << "'");
  const std::string on_cpu = error_of(cpu_call);
  INFO("CPU backend: " << (on_cpu.empty() ? "<no error>" : on_cpu));
  CHECK(on_cpu.find(fragment) != std::string::npos);
  CHECK(on_cpu.rfind(op, 0) == 0);  // the message starts with the op's name
  if (cuda_call) {
    const std::string on_cuda = error_of(cuda_call);
    INFO("CUDA backend: " << (on_cuda.empty() ? "<no error>" : on_cuda));
    CHECK(on_cuda == on_cpu);
  }
}

}  // namespace

#if RESNET_WITH_CUDA
#define CUDA_CALL(fn, ...) [&] { ::resnet::cuda::fn(__VA_ARGS__); }
#else
#define CUDA_CALL(fn, ...) std::function<void()>()
#endif
// BAD(op name in the message, fragment, backend function, arguments...)
#define BAD(op, fragment, fn, ...) \
  check_bad(                       \
      op, fragment, [&] { ::resnet::cpu::fn(__VA_ARGS__); }, CUDA_CALL(fn, __VA_ARGS__))

const Tensor<float>* const nob = nullptr;  // no bias

template <typename T>
Tensor<T> t(const Shape& s) {
  return Tensor<T>::zeros(s);
}

TEST_CASE("contracts: elementwise ops refuse mismatched shapes alike on both backends", "[contracts]") {
  auto a = t<float>({3}), b = t<float>({4}), y = t<float>({3}), y2 = t<float>({2}), dx = t<float>({5});
  Tensor<float> undefined;
  BAD("add", "second input shape [4] does not match [3]", add, a, b, y);
  BAD("add", "output shape [2] does not match [3]", add, a, a, y2);
  BAD("add", "output is an undefined tensor", add, a, a, undefined);
  BAD("mul", "second input shape [4]", mul, a, b, y, false);
  BAD("scale", "output shape [2]", scale, a, 2.0, y2);
  BAD("relu", "output shape [2]", relu_forward, a, y2);
  BAD("relu_backward", "output shape [5]", relu_backward, a, a, dx, false);
  BAD("add_inplace", "output shape [4]", add_inplace, b, a, 1.0);
  BAD("sum_all", "output must have one element", sum_all, a, y);
  BAD("broadcast_scalar", "gradient must have one element", broadcast_scalar, a, 1.0, dx, false);
  auto h = t<double>({4});
  check_bad(
      "cast", "output shape [4] does not match [3]", [&] { cpu::cast(a, h); }, CUDA_CALL(cast, a, h));
}

TEST_CASE("contracts: convolutions check strides, channels and shapes alike on both backends",
          "[contracts]") {
  auto x = t<float>({1, 3, 8, 8}), w = t<float>({4, 3, 3, 3}), y = t<float>({1, 4, 8, 8});
  auto w2 = t<float>({4, 2, 3, 3}), y_bad = t<float>({1, 4, 7, 7}), bias = t<float>({3});
  auto big_w = t<float>({4, 3, 11, 11});
  const ConvParams ok{1, 1, 1, 1}, stride0{0, 1, 1, 1}, negpad{1, 1, -1, 0};
  // A stride of 0 used to divide by zero in a direct CPU call (the check lived in the layer and the GPU).
  BAD("conv2d", "stride must be positive", conv2d_forward, x, w, nob, y, stride0);
  BAD("conv2d", "padding must be non-negative", conv2d_forward, x, w, nob, y, negpad);
  BAD("conv2d", "input has 3 channels but the weight expects 2", conv2d_forward, x, w2, nob, y, ok);
  BAD("conv2d", "output shape [1, 4, 7, 7] does not match [1, 4, 8, 8]", conv2d_forward, x, w, nob, y_bad,
      ok);
  BAD("conv2d", "bias shape [3] does not match 4 output channels", conv2d_forward, x, w, &bias, y, ok);
  BAD("conv2d", "is smaller than the kernel", conv2d_forward, x, big_w, nob, y, ok);
  BAD("conv2d_backward_data", "stride must be positive", conv2d_backward_data, y, w, x, stride0, false);
  BAD("conv2d_backward_weight", "output shape [1, 4, 7, 7]", conv2d_backward_weight, x, y_bad, w, ok, false);
  BAD("conv2d_backward_bias", "bias has 3 elements for 4 output channels", conv2d_backward_bias, y, bias,
      false);
}

TEST_CASE("contracts: linear layers check features and gradients alike on both backends", "[contracts]") {
  auto x = t<float>({2, 5}), w = t<float>({3, 5}), y = t<float>({2, 3}), w_bad = t<float>({3, 4});
  auto b_bad = t<float>({2}), dw_bad = t<float>({5, 3});
  BAD("linear", "input has 5 features but the weight expects 4", linear_forward, x, w_bad, nob, y);
  BAD("linear", "bias has 2 elements for 3 output features", linear_forward, x, w, &b_bad, y);
  BAD("linear", "output shape [2, 5]", linear_forward, x, w, nob, x);
  Tensor<float>* none = nullptr;
  BAD("linear_backward", "weight gradient shape [5, 3] does not match [3, 5]", linear_backward, x, w, y, none,
      false, &dw_bad, none, false);
  BAD("linear_backward", "bias gradient has 2 elements", linear_backward, x, w, y, none, false, none, &b_bad,
      false);
}

TEST_CASE("contracts: pooling checks windows and shapes alike on both backends", "[contracts]") {
  auto x = t<float>({1, 2, 8, 8}), y = t<float>({1, 2, 4, 4}), y_bad = t<float>({1, 2, 3, 3});
  auto idx = Tensor<int32_t>::zeros({1, 2, 4, 4}), idx_bad = Tensor<int32_t>::zeros({1, 2, 2, 2});
  const PoolParams ok{2, 2, 2, 2, 0, 0, true}, stride0{2, 2, 0, 2, 0, 0, true}, pad{2, 2, 2, 2, 2, 0, true};
  const PoolParams big{9, 9, 1, 1, 0, 0, true};
  BAD("max_pool2d", "stride must be positive", maxpool2d_forward, x, y, idx, stride0);
  BAD("max_pool2d", "must be between 0 and half the window", maxpool2d_forward, x, y, idx, pad);
  BAD("max_pool2d", "output shape [1, 2, 3, 3] does not match [1, 2, 4, 4]", maxpool2d_forward, x, y_bad, idx,
      ok);
  BAD("max_pool2d", "indices shape [1, 2, 2, 2]", maxpool2d_forward, x, y, idx_bad, ok);
  BAD("max_pool2d", "is smaller than the window", maxpool2d_forward, x, y, idx, big);
  BAD("max_pool2d_backward", "indices shape [1, 2, 2, 2]", maxpool2d_backward, y, idx_bad, x, false);
  BAD("avg_pool2d", "output shape [1, 2, 3, 3]", avgpool2d_forward, x, y_bad, ok);
  BAD("avg_pool2d_backward", "stride must be positive", avgpool2d_backward, y, x, stride0, false);
  auto g_bad = t<float>({1, 3});
  BAD("global_avg_pool", "expected [1, 2]", global_avgpool_forward, x, g_bad);
  BAD("global_avg_pool_backward", "expected [1, 2]", global_avgpool_backward, g_bad, x, false);
}

TEST_CASE("contracts: softmax and cross-entropy check rows, labels and smoothing alike on both backends",
          "[contracts]") {
  auto x = t<float>({4, 3}), y = t<float>({4, 3}), x3 = t<float>({4, 3, 1}), loss = t<float>({}),
       loss2 = t<float>({2});
  auto labels = Tensor<int32_t>::zeros({4}), labels3 = Tensor<int32_t>::zeros({3}),
       labels2d = Tensor<int32_t>::zeros({4, 1});
  BAD("softmax", "expected input [N, K] of rank 2", softmax_forward, x3, y);
  BAD("softmax_backward", "output gradient shape [4, 3, 1]", softmax_backward, y, x3, y, false);
  BAD("cross_entropy", "3 labels for logits of shape [4, 3]", cross_entropy_forward, x, labels3, 0.0, loss,
      y);
  BAD("cross_entropy", "expected labels [N] of rank 1", cross_entropy_forward, x, labels2d, 0.0, loss, y);
  BAD("cross_entropy", "label_smoothing must be in [0, 1)", cross_entropy_forward, x, labels, 1.5, loss, y);
  BAD("cross_entropy", "loss must have one element", cross_entropy_forward, x, labels, 0.0, loss2, y);
  BAD("cross_entropy_backward", "loss gradient must have one element", cross_entropy_backward, y, labels, 0.0,
      loss2, x, false);
  // A label out of range: the CPU says so before computing anything, with the contract's message.
  auto bad_labels = Tensor<int32_t>::from_vector({0, 1, 5, 2}, {4});
  testing::require_error_mentions([&] { cpu::cross_entropy_forward(x, bad_labels, 0.0, loss, y); },
                                  {contract::label_out_of_range("cross_entropy", 5, 2, 3)});
  // Labels given as a host vector are checked on the host on every backend, before anything is uploaded.
  testing::require_error_mentions(
      [&] {
        cross_entropy(x, std::vector<int32_t>{0, 1, -1, 2});
      },
      {contract::label_out_of_range("cross_entropy", -1, 2, 3)});
}

TEST_CASE("contracts: optimizer updates check state shapes and hyper-parameters alike on both backends",
          "[contracts]") {
  auto p = t<float>({6}), g = t<float>({6}), g_bad = t<float>({5}), buf = t<float>({6});
  // The step state (backend/optim_math.hpp): [lr, step, skip, -].
  auto state = Tensor<double>::from_vector({0.1, 1, 0, 0}, {optim_state::kSize});
  SgdHyper sgd;
  sgd.momentum = 0.9;
  BAD("sgd_step", "gradient shape [5] does not match [6]", sgd_step, p, g_bad, buf, state, sgd);
  BAD("sgd_step", "momentum buffer shape [5]", sgd_step, p, g, g_bad, state, sgd);
  auto neg = Tensor<double>::from_vector({-0.1, 1, 0, 0}, {optim_state::kSize});
  BAD("sgd_step", "learning rate must be finite and >= 0", sgd_step, p, g, buf, neg, sgd);
  auto short_state = Tensor<double>::from_vector({0.1, 1}, {2});
  BAD("sgd_step", "the step state must be a contiguous float64 tensor of 4 values", sgd_step, p, g, buf,
      short_state, sgd);
  AdamHyper adam;
  BAD("adamw_step", "second moment shape [5]", adamw_step, p, g, buf, g_bad, state, adam);
  AdamHyper beta = adam;
  beta.beta2 = 1.0;
  BAD("adamw_step", "betas must be in [0, 1)", adamw_step, p, g, buf, buf, state, beta);
  auto step0 = Tensor<double>::from_vector({0.1, 0, 0, 0}, {optim_state::kSize});
  BAD("adamw_step", "step must count from 1", adamw_step, p, g, buf, buf, step0, adam);
}

TEST_CASE("contracts: BatchNorm checks channels and statistics alike on both backends", "[contracts]") {
  auto x = t<float>({2, 3, 4, 4}), y = t<float>({2, 3, 4, 4}), c3 = t<float>({3}), c2 = t<float>({2});
  auto one = t<float>({1, 3, 1, 1});
  const BatchNormParams bp;
  const Tensor<float>* none = nullptr;
  BAD("batch_norm", "3 channels but weight has 2 elements", batchnorm_forward_training, x, none, c2, c3, c3,
      c3, c3, c3, y, bp, Activation::ReLU);
  BAD("batch_norm", "3 channels but running_var has 2 elements", batchnorm_forward_inference, x, none, c3, c3,
      c3, c2, y, bp, Activation::None);
  BAD("batch_norm", "training needs more than one value per channel", batchnorm_forward_training, one, none,
      c3, c3, c3, c3, c3, c3, one, bp, Activation::None);
}
