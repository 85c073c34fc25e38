// ResNet builders (parameter counts, multiply-accumulates), the float32 fast paths against the double
// reference, BatchNorm's running statistics, and a small ResNet overfitting one batch.
#include "resnet/backend/cpu/definitions.hpp"
#include "test_util.hpp"

using namespace resnet;
using testing::convert;
using testing::random_tensor;
using testing::relative_error;

TEST_CASE("models: parameter counts with 1000 classes match torchvision exactly", "[models]") {
  const std::vector<std::pair<std::string, int64_t>> expected{{"resnet18", 11689512},
                                                              {"resnet34", 21797672},
                                                              {"resnet50", 25557032},
                                                              {"resnet101", 44549160},
                                                              {"resnet152", 60192808}};
  for (const auto& [arch, count] : expected) {
    INFO(arch);
    auto net = models::resnet<float>(arch);
    CHECK(net->num_parameters() == count);
    CHECK(models::summarize(*net, {1, 3, 224, 224}).total_params == count);
  }
}

TEST_CASE("models: multiply-accumulates at 224x224 (v1) within 2% of the paper's FLOPs", "[models]") {
  const std::vector<std::pair<std::string, double>> paper{{"resnet18", 1.8e9},
                                                          {"resnet34", 3.6e9},
                                                          {"resnet50", 3.8e9},
                                                          {"resnet101", 7.6e9},
                                                          {"resnet152", 11.3e9}};
  auto o = models::ResNetOptions().stride_on_1x1(true);
  for (const auto& [arch, flops] : paper) {
    auto net = models::resnet<float>(arch, o);
    auto s = models::summarize(*net, {1, 3, 224, 224});
    INFO(arch << ": " << s.total_macs << " MACs vs paper " << flops);
    CHECK(std::abs(static_cast<double>(s.total_macs) / flops - 1.0) < 0.02);
    CHECK(s.output == Shape({1, 1000}));
  }
}

TEST_CASE("models: builder layout follows torchvision names and the paper's stem", "[models]") {
  auto net = models::resnet50<float>();
  auto names = net->named_parameters();
  CHECK(names.front().first == "conv1.weight");
  CHECK(names.back().first == "fc.bias");
  bool has_down = false, has_stats = false;
  for (auto& kv : names) has_down = has_down || kv.first == "layer1.0.downsample.0.weight";
  for (auto& kv : net->named_buffers()) has_stats = has_stats || kv.first == "layer4.2.bn3.running_var";
  CHECK(has_down);
  CHECK(has_stats);
  CHECK(net->conv1->weight.shape() == Shape({64, 3, 7, 7}));
  CHECK(net->conv1->options().padding() == 3);
  auto s = models::summarize(*net, {2, 3, 224, 224});
  // stem 112x112 -> max pool 56x56 -> stages 56, 28, 14, 7
  CHECK(s.rows[0].output == Shape({2, 64, 112, 112}));
  CHECK(s.rows[2].output == Shape({2, 64, 56, 56}));
  // v1.5 puts the stride on the 3x3 conv, v1 on the first 1x1.
  auto& b = *net->blocks[3];  // layer2.0
  CHECK(b.conv2->options().stride() == 2);
  CHECK(b.conv1->options().stride() == 1);
  auto v1 = models::ResNetOptions().stride_on_1x1(true);
  auto net1 = models::resnet50<float>(v1);
  CHECK(net1->blocks[3]->conv1->options().stride() == 2);
  CHECK(net1->blocks[3]->conv2->options().stride() == 1);
}

TEST_CASE("cpu: float32 fast convolution agrees with the double reference", "[fastpath]") {
  struct Case {
    Shape x, w;
    ConvParams p;
  };
  const std::vector<Case> cases{{{2, 3, 13, 11}, {8, 3, 7, 7}, {2, 2, 3, 3}},
                                {{2, 8, 9, 9}, {6, 8, 3, 3}, {1, 1, 1, 1}},
                                {{2, 8, 9, 9}, {6, 8, 3, 3}, {2, 2, 1, 1}},
                                {{3, 16, 5, 5}, {8, 16, 1, 1}, {1, 1, 0, 0}},
                                {{3, 16, 6, 6}, {32, 16, 1, 1}, {2, 2, 0, 0}}};
  uint64_t seed = 100;
  for (const auto& c : cases) {
    INFO("input " << c.x << " weight " << c.w << " stride " << c.p.stride_h << " pad " << c.p.pad_h);
    auto xd = random_tensor<double>(c.x, seed++), wd = random_tensor<double>(c.w, seed++);
    auto bd = random_tensor<double>({c.w[0]}, seed++);
    auto xf = convert<float>(xd), wf = convert<float>(wd), bf = convert<float>(bd);
    Shape ys = conv2d_output_shape(c.x, c.w, c.p);
    auto yd = Tensor<double>::empty(ys);
    auto yf = Tensor<float>::full(ys, 7.f);  // sentinel: every element must be written
    cpu::conv2d_forward_reference(xd, wd, &bd, yd, c.p);
    cpu::conv2d_forward(xf, wf, &bf, yf, c.p);
    CHECK(relative_error(yf.to_vector(), yd.to_vector()) < 1e-5);

    auto dyd = random_tensor<double>(ys, seed++);
    auto dyf = convert<float>(dyd);
    for (bool acc : {false, true}) {
      auto dxd = Tensor<double>::full(c.x, acc ? 0.5 : 0.0), dwd = Tensor<double>::full(c.w, acc ? 0.5 : 0.0);
      auto dxf = Tensor<float>::full(c.x, acc ? 0.5f : 9.f), dwf = Tensor<float>::full(c.w, acc ? 0.5f : 9.f);
      cpu::conv2d_backward_data_reference(dyd, wd, dxd, c.p, acc);
      cpu::conv2d_backward_weight_reference(xd, dyd, dwd, c.p, acc);
      cpu::conv2d_backward_data(dyf, wf, dxf, c.p, acc);
      cpu::conv2d_backward_weight(xf, dyf, dwf, c.p, acc);
      INFO("accumulate " << acc);
      CHECK(relative_error(dxf.to_vector(), dxd.to_vector()) < 1e-5);
      CHECK(relative_error(dwf.to_vector(), dwd.to_vector()) < 1e-5);
    }
  }
}

TEST_CASE("cpu: float32 network forward and backward agree with double", "[fastpath]") {
  auto o = models::ResNetOptions().num_classes(5).seed(11);
  auto nd = models::resnet18<double>(o);
  auto nf = models::resnet18<float>(o);
  // Same weights in both.
  auto pd = nd->state_dict(), pf = nf->state_dict();
  REQUIRE(pd.size() == pf.size());
  for (size_t i = 0; i < pd.size(); ++i) {
    if (pd[i].second.dtype() != DType::F64) continue;
    Tensor<float> dst(pf[i].second);
    auto v = Tensor<double>(pd[i].second).to_vector();
    std::copy(v.begin(), v.end(), dst.data());
  }
  auto xd = random_tensor<double>({4, 3, 40, 40}, 12);
  auto xf = convert<float>(xd);
  std::vector<int32_t> labels{0, 4, 2, 1};
  auto ld = cross_entropy(nd->forward(xd), labels);
  auto lf = cross_entropy(nf->forward(xf), labels);
  CHECK(lf.item() == Approx(ld.item()).epsilon(1e-4));
  ld.backward();
  lf.backward();
  auto gd = nd->named_parameters();
  auto gf = nf->named_parameters();
  for (size_t i = 0; i < gd.size(); ++i) {
    INFO(gd[i].first);
    CHECK(relative_error(gf[i].second.grad().to_vector(), gd[i].second.grad().to_vector()) < 2e-3);
  }
}

TEST_CASE("batchnorm: running statistics follow PyTorch's update, eval uses them", "[models]") {
  nn::BatchNorm2d<double> bn(nn::BatchNorm2dOptions(2).momentum(0.25));
  // channel 0 values 1..4, channel 1 values 10, 10, 10, 14
  auto x = Tensor<double>::from_vector({1, 2, 10, 10, 3, 4, 10, 14}, {2, 2, 1, 2});
  auto y = bn.forward(x);
  // channel 0: mean 2.5, biased var 1.25, unbiased 5/3
  CHECK(bn.running_mean.at({0}) == Approx(0.75 * 0 + 0.25 * 2.5));
  CHECK(bn.running_var.at({0}) == Approx(0.75 * 1 + 0.25 * (5.0 / 3.0)));
  CHECK(bn.running_mean.at({1}) == Approx(0.25 * 11.0));
  CHECK(y.at({0, 0, 0, 0}) == Approx((1 - 2.5) / std::sqrt(1.25 + 1e-5)));
  CHECK(bn.num_batches_tracked.item() == 1);
  bn.eval();
  auto ye = bn.forward(x);
  const double rm = bn.running_mean.at({0}), rv = bn.running_var.at({0});
  CHECK(ye.at({0, 0, 0, 1}) == Approx((2 - rm) / std::sqrt(rv + 1e-5)));
  CHECK(bn.running_mean.at({0}) == rm);  // eval does not update
  CHECK(bn.num_batches_tracked.item() == 1);
}

TEST_CASE("models: train() and eval() reach every layer", "[models]") {
  for (const char* arch : {"resnet18", "resnet50"}) {
    INFO(arch);
    auto net = models::resnet<float>(arch);
    const auto modules = net->named_modules();
    // Every convolution, BatchNorm, ReLU, pool, block, stage and the head (59 modules in 18, 134 in 50).
    CHECK(modules.size() >= (std::string(arch) == "resnet18" ? 59u : 134u));
    for (bool training : {false, true, false}) {
      net->train(training);
      size_t reached = 0;
      for (const auto& [name, m] : modules) {
        INFO("module '" << name << "' (" << m->type_name() << ")");
        CHECK(m->is_training() == training);
        reached += m->is_training() == training;
      }
      CHECK(reached == modules.size());
    }
  }
}

TEST_CASE("training: a small ResNet overfits one fixed batch with SGD", "[training]") {
  manual_seed(5);
  auto o = models::ResNetOptions().num_classes(4).seed(5);
  auto net = models::resnet18<float>(o);
  auto x = random_tensor<float>({8, 3, 32, 32}, 6);
  std::vector<int32_t> labels{0, 1, 2, 3, 3, 2, 1, 0};
  auto so = optim::SGDOptions().lr(0.05).momentum(0.9);
  optim::SGD<float> opt(net->named_parameters(), so);
  double first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    opt.zero_grad();
    auto loss = cross_entropy(net->forward(x), labels);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  INFO("loss " << first << " -> " << last);
  CHECK(last < first / 10);
  // The batch is now classified correctly (batch statistics: the running ones lag after 40 steps).
  NoGradGuard ng;
  auto logits = net->forward(x);
  int correct = 0;
  for (int n = 0; n < 8; ++n) {
    int best = 0;
    for (int k = 1; k < 4; ++k)
      if (logits.at({n, k}) > logits.at({n, best})) best = k;
    correct += best == labels[static_cast<size_t>(n)];
  }
  CHECK(correct == 8);
}

// A Sequential from its modules in one expression equals one built by push_back: the same children, names,
// parameters and output.
TEST_CASE("nn::Sequential from a list of modules in one expression", "[models]") {
  Generator g(21);
  auto conv = std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(3, 4, 3).padding(1));
  auto bn = std::make_shared<nn::BatchNorm2d<float>>(4);
  auto pool = std::make_shared<nn::GlobalAvgPool2d<float>>();
  auto fc = std::make_shared<nn::Linear<float>>(4, 2);
  nn::Sequential<float> listed{conv, bn, std::make_shared<nn::ReLU<float>>(), pool, fc};
  nn::Sequential<float> pushed;
  pushed.push_back(conv);
  pushed.push_back(bn);
  pushed.push_back(std::make_shared<nn::ReLU<float>>());
  pushed.push_back(pool);
  pushed.push_back(fc);
  REQUIRE(listed.size() == 5);
  const auto a = listed.named_parameters(), b = pushed.named_parameters();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].first == b[i].first);
    CHECK(a[i].second.data() == b[i].second.data());  // the same modules, shared
  }
  CHECK(a.front().first == "0.weight");
  CHECK(a.back().first == "4.bias");
  auto x = Tensor<float>::randn({2, 3, 8, 8}, g);
  CHECK(listed.forward(x).to_vector() == pushed.forward(x).to_vector());
  auto shared = std::make_shared<nn::Sequential<float>>(std::make_shared<nn::ReLU<float>>());
  CHECK(shared->size() == 1);
}
