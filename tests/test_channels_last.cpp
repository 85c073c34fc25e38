// Channels-last (NHWC) as a memory format of the tensor: the format itself, its conversions, and whole
// ResNets in NHWC against NCHW (equal in double, forward and backward; close in float). Every op in NHWC is
// checked against NCHW by the op registry (test_ops "[nhwc]").
#include "net_runs.hpp"
#include "test_util.hpp"

using namespace resnet;
using netruns::compare_nets;
using netruns::run_net;

TEST_CASE("channels_last: strides, predicates and conversions", "[channels_last]") {
  Generator g(3);
  auto x = Tensor<double>::randn({2, 3, 4, 5}, g);
  REQUIRE(x.is_contiguous());
  CHECK(!x.is_contiguous(MemoryFormat::ChannelsLast));
  CHECK(x.suggest_memory_format() == MemoryFormat::Contiguous);
  auto y = x.contiguous(MemoryFormat::ChannelsLast);
  CHECK(y.strides() == std::vector<int64_t>{60, 1, 15, 3});
  CHECK(!y.is_contiguous());  // is_contiguous() stays row-major
  CHECK(y.is_contiguous(MemoryFormat::ChannelsLast));
  CHECK(y.is_dense());
  CHECK(y.suggest_memory_format() == MemoryFormat::ChannelsLast);
  CHECK(y.shape() == x.shape());
  // Same logical values, at the NHWC offsets.
  CHECK(testing::relative_error(y.to_vector(), x.to_vector()) == 0.0);
  CHECK(y.at({1, 2, 3, 4}) == x.at({1, 2, 3, 4}));
  CHECK(y.data()[((1 * 4 + 3) * 5 + 4) * 3 + 2] == x.at({1, 2, 3, 4}));
  CHECK(y.clone().suggest_memory_format() == MemoryFormat::ChannelsLast);
  auto back = y.contiguous();
  CHECK(back.is_contiguous());
  CHECK(testing::relative_error(back.to_vector(), x.to_vector()) == 0.0);
  CHECK(y.to(MemoryFormat::ChannelsLast).same_storage(y));  // already so: no copy
  // Size-1 dimensions: both formats describe the same memory; made channels-last, the tensor says so.
  auto p = Tensor<float>::empty({2, 8, 1, 1}, Device::cpu(), MemoryFormat::ChannelsLast);
  CHECK(p.is_contiguous());
  CHECK(p.suggest_memory_format() == MemoryFormat::ChannelsLast);
  CHECK(Tensor<float>::zeros({2, 8, 1, 1}).suggest_memory_format() == MemoryFormat::Contiguous);
  testing::require_error_mentions(
      [] {
        Tensor<float>::empty({2, 3}, Device::cpu(), MemoryFormat::ChannelsLast);
      },
      {"channels_last", "rank 4"});
}

TEST_CASE("channels_last: ops keep the input's format and refuse mixed ones", "[channels_last]") {
  Generator g(5);
  auto x = Tensor<double>::randn({2, 3, 6, 6}, g).contiguous(MemoryFormat::ChannelsLast);
  auto w = Tensor<double>::randn({4, 3, 3, 3}, g);
  auto y = conv2d(x, w, ConvParams{1, 1, 1, 1});
  CHECK(y.suggest_memory_format() == MemoryFormat::ChannelsLast);
  CHECK(max_pool2d(y, PoolParams{3, 3, 2, 2, 1, 1, true}).suggest_memory_format() ==
        MemoryFormat::ChannelsLast);
  CHECK(relu(y).suggest_memory_format() == MemoryFormat::ChannelsLast);
  // A row-major second input is converted, not read as NHWC.
  auto r = Tensor<double>::randn({2, 4, 6, 6}, g);
  auto s = add(y, r);
  CHECK(s.suggest_memory_format() == MemoryFormat::ChannelsLast);
  CHECK(testing::relative_error(s.to_vector(), add(y.contiguous(), r).to_vector()) < 1e-15);
  // The backend refuses a mix instead of pairing the wrong elements.
  Tensor<double> out = Tensor<double>::empty(y.shape());
  testing::require_error_mentions([&] { cpu::add(y, r, out); }, {"add", "channels_last", "contiguous"});
  auto wrong = Tensor<double>::empty({2, 4, 6, 6});
  testing::require_error_mentions(
      [&] {
        cpu::conv2d_forward(x, w, static_cast<const Tensor<double>*>(nullptr), wrong, ConvParams{1, 1, 1, 1});
      },
      {"conv2d", "output", "channels_last"});
}

TEST_CASE("channels_last: state_dict stays torchvision's layout; loading into an NHWC model",
          "[channels_last]") {
  auto o = models::ResNetOptions().num_classes(5).seed(9);
  auto a = models::resnet18<float>(o);
  o.seed(10);
  auto b = models::resnet18<float>(o);
  b->to(MemoryFormat::ChannelsLast);
  for (auto& kv : a->state_dict()) {
    INFO(kv.first);
    CHECK(kv.second.is_contiguous());
  }
  const std::string path = "test_channels_last_ckpt.safetensors";
  io::save_checkpoint<float>(path, *a, nullptr, io::TrainingState{});
  io::load_checkpoint<float>(path, *b, nullptr);
  std::remove(path.c_str());
  for (auto& kv : b->state_dict()) CHECK(kv.second.is_contiguous());
  a->eval();
  b->eval();
  Generator g(1);
  auto x = Tensor<float>::randn({2, 3, 32, 32}, g);
  NoGradGuard ng;
  auto ya = a->forward(x), yb = b->forward(x);
  testing::check_close("logits NHWC vs NCHW", yb.to_vector(), ya.to_vector(), 1e-4);
}

TEST_CASE("channels_last: ResNet-18 and ResNet-50 in double equal NCHW, forward and backward",
          "[channels_last]") {
  for (const char* arch : {"resnet18", "resnet50"}) {
    INFO(arch);
    const auto ref = run_net<double>(arch, MemoryFormat::Contiguous, 2, 32);
    const auto cl = run_net<double>(arch, MemoryFormat::ChannelsLast, 2, 32);
    CHECK(ref.conv1_format == MemoryFormat::Contiguous);
    CHECK(cl.conv1_format == MemoryFormat::ChannelsLast);
    compare_nets(cl, ref, netruns::kDoubleBounds);
  }
}

TEST_CASE("channels_last: ResNet-18 in float NHWC (oneDNN nhwc, vectorised BN) against double",
          "[channels_last]") {
  const auto ref = run_net<double>("resnet18", MemoryFormat::Contiguous, 4, 64);
  const double nchw =
      compare_nets(run_net<float>("resnet18", MemoryFormat::Contiguous, 4, 64), ref, netruns::kFloatBounds);
  const double nhwc =
      compare_nets(run_net<float>("resnet18", MemoryFormat::ChannelsLast, 4, 64), ref, netruns::kFloatBounds);
  std::printf("float32 ResNet-18 least gradient cosine vs double: NCHW %.5f, NHWC %.5f\n", nchw, nhwc);
}
