// Tensor, storage, the tape and error messages.
#include "test_util.hpp"

using namespace resnet;

TEST_CASE("tensor: shape, strides, views share storage", "[tensor]") {
  auto t = Tensor<float>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(t.shape() == Shape({2, 3}));
  CHECK(t.strides() == std::vector<int64_t>({3, 1}));
  CHECK(t.is_contiguous());
  CHECK(t.device() == Device::cpu());
  CHECK(t.dtype() == DType::F32);
  auto v = t.view({3, 2});
  CHECK(v.same_storage(t));
  v.at({2, 1}) = 42.f;
  CHECK(t.at({1, 2}) == 42.f);
  auto c = t.clone();
  CHECK_FALSE(c.same_storage(t));
  c.at({0, 0}) = -1.f;
  CHECK(t.at({0, 0}) == 1.f);
}

TEST_CASE("tensor: strided copy makes a transposed view contiguous", "[tensor]") {
  auto t = Tensor<double>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  // A hand-made transposed view: shape [3, 2], strides [1, 3].
  auto impl = std::make_shared<TensorImpl>(*t.impl());
  impl->shape = Shape{3, 2};
  impl->strides = {1, 3};
  Tensor<double> tr{TensorBase(impl)};
  CHECK_FALSE(tr.is_contiguous());
  auto c = tr.contiguous();
  CHECK(c.to_vector() == std::vector<double>({1, 4, 2, 5, 3, 6}));
}

TEST_CASE("tensor: half and bfloat16 conversions round to nearest even", "[tensor]") {
  CHECK(static_cast<float>(half_t(1.0f)) == 1.0f);
  CHECK(static_cast<float>(half_t(65504.f)) == 65504.f);
  CHECK(std::isinf(static_cast<float>(half_t(70000.f))));
  CHECK(static_cast<float>(half_t(1e-7f)) == Approx(1.19209e-7f).epsilon(0.01));  // subnormal
  CHECK(static_cast<float>(half_t(1.0f + 1.0f / 2048)) == 1.0f);                  // tie to even
  CHECK(static_cast<float>(half_t(1.0f + 3.0f / 2048)) == 1.0f + 2.0f / 1024);    // tie to even (up)
  CHECK(static_cast<float>(bf16_t(1.0f)) == 1.0f);
  CHECK(static_cast<float>(bf16_t(3.14159f)) == Approx(3.140625f));
  for (float f : {-2.5f, 0.1f, 1000.f, -1e-3f}) {
    CHECK(static_cast<float>(half_t(f)) == Approx(f).epsilon(1e-3));
    CHECK(static_cast<float>(bf16_t(f)) == Approx(f).epsilon(8e-3));
  }
}

TEST_CASE("tensor: dtype and device mistakes are named", "[tensor][errors]") {
  auto t = Tensor<float>::zeros({2});
  testing::require_error_mentions(
      [&] {
        Tensor<double> d(static_cast<TensorBase>(t));
        (void)d;
      },
      {"float32", "float64"});
  testing::require_error_mentions(
      [&] {
        Tensor<float>::from_vector({1, 2, 3}, {2, 2});
      },
      {"3 values", "[2, 2]"});
  if (!cuda_compiled()) testing::require_error_mentions([&] { t.to(Device::cuda()); }, {"CUDA"});
  testing::require_error_mentions([] { Device::parse("tpu"); }, {"tpu"});
  testing::require_error_mentions([] { TensorBase().shape(); }, {"undefined"});
}

TEST_CASE("autograd: gradients accumulate across backward passes until zeroed", "[autograd]") {
  auto x = Tensor<double>::from_vector({1, -2, 3}, {3});
  x.requires_grad_();
  for (int i = 0; i < 2; ++i) {
    auto y = sum(mul(x, x));  // dy/dx = 2x
    y.backward();
  }
  CHECK(x.grad().to_vector() == std::vector<double>({4, -8, 12}));
  x.grad().zero_();
  sum(scale(x, 3.0)).backward();
  CHECK(x.grad().to_vector() == std::vector<double>({3, 3, 3}));
}

TEST_CASE("autograd: a tensor used twice gets the sum of both paths", "[autograd]") {
  auto x = Tensor<double>::from_vector({2.0}, {1});
  x.requires_grad_();
  auto y = add(mul(x, x), scale(x, 5.0));  // 2x + 5
  sum(y).backward();
  CHECK(x.grad().item() == Approx(9.0));
}

TEST_CASE("autograd: no-grad guard records nothing; intermediate grads are freed", "[autograd]") {
  auto x = Tensor<double>::from_vector({1, 2}, {2});
  x.requires_grad_();
  {
    NoGradGuard g;
    auto y = mul(x, x);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  auto h = scale(x, 2.0);
  auto l = sum(h);
  l.backward();
  CHECK_FALSE(h.has_grad());
  CHECK(x.has_grad());
  // The graph was freed: a second backward through it is an error that says why.
  testing::require_error_mentions([&] { l.backward(); }, {"second time"});
  // retain_grad keeps an intermediate's gradient.
  auto h2 = scale(x, 2.0);
  h2.retain_grad();
  sum(h2).backward();
  REQUIRE(h2.has_grad());
  CHECK(h2.grad().to_vector() == std::vector<double>({1, 1}));
}

TEST_CASE("autograd: backward needs a scalar or an explicit gradient", "[autograd][errors]") {
  auto x = Tensor<double>::from_vector({1, 2}, {2});
  x.requires_grad_();
  auto y = scale(x, 2.0);
  testing::require_error_mentions([&] { y.backward(); }, {"scalar", "[2]"});
  autograd::backward(y, Tensor<double>::from_vector({1, 10}, {2}));
  CHECK(x.grad().to_vector() == std::vector<double>({2, 20}));
  auto c = Tensor<double>::zeros({1});
  testing::require_error_mentions([&] { c.backward(); }, {"does not require grad"});
}

TEST_CASE("errors: mismatched shapes name the op and both shapes", "[errors]") {
  auto a = Tensor<float>::zeros({2, 3});
  auto b = Tensor<float>::zeros({3, 2});
  testing::require_error_mentions([&] { add(a, b); }, {"add", "[2, 3]", "[3, 2]"});
  testing::require_error_mentions([&] { mul(a, b); }, {"mul", "[2, 3]", "[3, 2]"});
  auto w = Tensor<float>::zeros({4, 3});
  testing::require_error_mentions([&] { linear(b, w, Tensor<float>()); }, {"linear", "[3, 2]", "[4, 3]"});
  testing::require_error_mentions([&] { reshape(a, {4, 2}); }, {"reshape", "[2, 3]", "[4, 2]"});
}

TEST_CASE("errors: wrong channel counts are named", "[errors]") {
  nn::Conv2d<float> conv(nn::Conv2dOptions(3, 8, 3).padding(1));
  auto x = Tensor<float>::zeros({1, 4, 8, 8});
  testing::require_error_mentions([&] { conv.forward(x); }, {"Conv2d", "[1, 4, 8, 8]", "3"});
  testing::require_error_mentions([&] { conv2d(x, conv.weight, ConvParams{}); }, {"conv2d", "4 channels"});
  nn::BatchNorm2d<float> bn(16);
  testing::require_error_mentions([&] { bn.forward(x); }, {"BatchNorm2d", "16", "[1, 4, 8, 8]"});
  auto net = models::resnet18<float>();
  testing::require_error_mentions(
      [&] {
        net->forward(Tensor<float>::zeros({1, 1, 32, 32}));
      },
      {"resnet18", "[1, 1, 32, 32]"});
  nn::Linear<float> fc(512, 10);
  testing::require_error_mentions(
      [&] {
        fc.forward(Tensor<float>::zeros({2, 256}));
      },
      {"Linear", "[2, 256]"});
}

TEST_CASE("errors: empty tensors and bad arguments are refused", "[errors]") {
  auto empty = Tensor<float>::zeros({0, 3, 8, 8});
  auto w = Tensor<float>::zeros({4, 3, 3, 3});
  testing::require_error_mentions([&] { conv2d(empty, w, ConvParams{}); },
                                  {"conv2d", "empty", "[0, 3, 8, 8]"});
  testing::require_error_mentions([&] { relu(Tensor<float>()); }, {"relu", "undefined"});
  testing::require_error_mentions([&] { max_pool2d(empty, PoolParams{}); }, {"max_pool2d", "empty"});
  testing::require_error_mentions([&] { sum(Tensor<float>::zeros({0})); }, {"sum", "empty"});
  auto small = Tensor<float>::zeros({1, 3, 2, 2});
  testing::require_error_mentions(
      [&] {
        conv2d(small, Tensor<float>::zeros({4, 3, 5, 5}), ConvParams{});
      },
      {"conv2d", "smaller than the kernel"});
  auto logits = Tensor<float>::zeros({2, 3});
  testing::require_error_mentions(
      [&] {
        cross_entropy(logits, std::vector<int32_t>{0, 3});
      },
      {"label 3", "[0, 3)"});
  testing::require_error_mentions([&] { cross_entropy(logits, std::vector<int32_t>{0}); },
                                  {"1 labels", "[2, 3]"});
  auto one = Tensor<float>::zeros({1, 4, 1, 1});
  nn::BatchNorm2d<float> bn(4);
  testing::require_error_mentions([&] { bn.forward(one); }, {"more than one value per channel"});
  testing::require_error_mentions([] { models::resnet<float>("resnet19"); }, {"resnet19"});
}
