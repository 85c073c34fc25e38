// Tensor, storage, the tape and error messages.
#include <cmath>
#include <limits>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>

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

TEST_CASE("random: the engine is std::mt19937_64 and the generator draws what <random> draws", "[random]") {
  for (uint64_t seed : {uint64_t{0}, uint64_t{5489}, uint64_t{0x5eed}, ~uint64_t{0}}) {
    Mt19937_64 ours(seed);
    std::mt19937_64 theirs(seed);
    for (int i = 0; i < 2000; ++i) REQUIRE(ours() == theirs());  // past the first twist of 312 values
  }
  Generator g(1234);
  std::mt19937_64 e(1234);
  for (int i = 0; i < 100; ++i) {
    // Within a rounding: the library and this unit may contract normal_distribution's scale and shift
    // into one FMA differently; the stream itself stays in step (the next draws are compared exactly).
    CHECK(g.normal(0.5, 2.0) == Approx(std::normal_distribution<double>(0.5, 2.0)(e)).epsilon(1e-14));
    CHECK(g.uniform(-1.0, 3.0) == std::uniform_real_distribution<double>(-1.0, 3.0)(e));
    CHECK(g.randint(7) == std::uniform_int_distribution<int64_t>(0, 6)(e));
    CHECK(g.next_u64() == e());
  }
  // manual_seed restarts the default generator's sequence.
  manual_seed(99);
  const double a = default_generator().normal();
  manual_seed(99);
  CHECK(default_generator().normal() == a);
}

namespace {
enum Plain { kPlainTwo = 2 };
enum class Scoped : uint8_t { kTwoHundred = 200 };
struct Streamed {
  int v;
};
std::ostream& operator<<(std::ostream& os, const Streamed& s) { return os << "streamed(" << s.v << ")"; }
template <typename T>
std::string streamed(const T& v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
}  // namespace

TEST_CASE("errors: message parts print as a stream prints them", "[errors]") {
  // Every kind of value a check names, against std::ostream's own text for it.
  for (double d : {0.0, -0.0, 1.0, 0.1, 1e-7, 123456789.0, 3.14159265, -2.5e300,
                   std::numeric_limits<double>::infinity(), std::nan("")})
    CHECK(detail::concat(d) == streamed(d));
  for (float f : {0.5f, 1e10f, -3.25f}) CHECK(detail::concat(f) == streamed(f));
  CHECK(detail::concat(static_cast<long double>(2.75)) == streamed(static_cast<long double>(2.75)));
  for (int64_t i : {int64_t{0}, int64_t{-7}, std::numeric_limits<int64_t>::min()})
    CHECK(detail::concat(i) == streamed(i));
  CHECK(detail::concat(std::numeric_limits<size_t>::max()) == streamed(std::numeric_limits<size_t>::max()));
  CHECK(detail::concat(true, false) == "10");
  CHECK(detail::concat('x', static_cast<unsigned char>('y')) == "xy");
  CHECK(detail::concat(static_cast<short>(-3), 40000u) == "-340000");
  char buf[] = "buffer";
  char* mutable_text = buf;
  const char* null_text = nullptr;
  CHECK(detail::concat("literal ", buf, " ", mutable_text, " ", null_text) == "literal buffer buffer (null)");
  CHECK(detail::concat(std::string("s"), std::string_view("v")) == "sv");
  CHECK(detail::concat(Shape{2, 3}) == streamed(Shape{2, 3}));
  CHECK(detail::concat(kPlainTwo) == "2");
  CHECK(detail::concat(Scoped::kTwoHundred) == "200");  // an enum prints its number
  CHECK(detail::concat(Streamed{4}) == "streamed(4)");
  int x = 0;
  CHECK(detail::concat(&x) == streamed(static_cast<const void*>(&x)));
  CHECK(detail::concat() == "");
  // And a check's message as a whole, with where it was detected.
  try {
    RESNET_CHECK(false, "shape ", Shape{4}, " and ", 2.5, " and ", int64_t{-1});
    FAIL("no throw");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK(m.rfind("shape [4] and 2.5 and -1 [test_tensor.cpp:", 0) == 0);
  }
}
