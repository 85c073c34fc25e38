// The CPU backend's float32 fast paths against the double-precision reference: every convolution
// implementation (oneDNN when built with it, im2col + BLAS always), the vectorised BatchNorm (+ add + ReLU)
// forward and backward with every flag, and the pooling fast paths. Outputs are pre-filled with a sentinel so
// an element never written fails, and gradient outputs are checked both overwritten and accumulated.
#include "resnet/backend/cpu/definitions.hpp"
#include "test_util.hpp"

using namespace resnet;
using testing::convert;
using testing::random_tensor;
using testing::relative_error;

namespace {

struct ConvCase {
  Shape x, w;
  ConvParams p;
};

// Shapes of every kind of convolution in a ResNet, small: the stem (7x7/2, 3 channels), 3x3/1 and 3x3/2,
// 1x1/1 and the 1x1/2 downsample, plus odd sizes where floor division drops the last row or column, and
// sizes that make the GEMM path group several images per GEMM, with and without a short last group.
std::vector<ConvCase> conv_cases() {
  return {{{2, 3, 13, 11}, {8, 3, 7, 7}, {2, 2, 3, 3}},
          {{2, 8, 9, 9}, {6, 8, 3, 3}, {1, 1, 1, 1}},
          {{2, 8, 9, 9}, {6, 8, 3, 3}, {2, 2, 1, 1}},
          {{3, 16, 5, 5}, {8, 16, 1, 1}, {1, 1, 0, 0}},
          {{3, 16, 6, 6}, {32, 16, 1, 1}, {2, 2, 0, 0}},
          {{2, 32, 8, 8}, {32, 32, 3, 3}, {1, 1, 1, 1}},
          {{2, 32, 8, 8}, {64, 32, 3, 3}, {2, 2, 1, 1}},
          {{1, 17, 7, 10}, {19, 17, 3, 3}, {1, 1, 1, 1}},
          {{2, 64, 4, 4}, {128, 64, 1, 1}, {2, 2, 0, 0}},
          {{2, 5, 4, 4}, {3, 5, 3, 3}, {1, 1, 0, 0}},
          // Larger images: the GEMM path groups 2 images per GEMM with a short last group, or 1 image.
          {{3, 4, 32, 32}, {5, 4, 3, 3}, {1, 1, 1, 1}},
          {{3, 8, 32, 32}, {4, 8, 1, 1}, {1, 1, 0, 0}},
          {{1, 2, 48, 48}, {3, 2, 3, 3}, {1, 1, 1, 1}},
          {{2, 3, 48, 48}, {4, 3, 1, 1}, {1, 1, 0, 0}}};
}

void check_conv_impl(cpu::ConvImpl impl) {
  cpu::set_float_conv_impl(impl);
  uint64_t seed = 500;
  for (int round = 0; round < 2; ++round)  // the second round reuses cached primitives and buffers
    for (const auto& c : conv_cases()) {
      INFO("input " << c.x << " weight " << c.w << " stride " << c.p.stride_h << " pad " << c.p.pad_h
                    << " round " << round);
      auto xd = random_tensor<double>(c.x, seed++), wd = random_tensor<double>(c.w, seed++);
      auto bd = random_tensor<double>({c.w[0]}, seed++);
      auto xf = convert<float>(xd), wf = convert<float>(wd), bf = convert<float>(bd);
      Shape ys = conv2d_output_shape(c.x, c.w, c.p);
      for (bool with_bias : {false, true}) {
        auto yd = Tensor<double>::empty(ys);
        auto yf = Tensor<float>::full(ys, 7.f);
        cpu::conv2d_forward_reference(xd, wd, with_bias ? &bd : nullptr, yd, c.p);
        cpu::conv2d_forward(xf, wf, with_bias ? &bf : nullptr, yf, c.p);
        INFO("bias " << with_bias);
        CHECK(relative_error(yf.to_vector(), yd.to_vector()) < 1e-5);
      }
      auto dyd = random_tensor<double>(ys, seed++);
      auto dyf = convert<float>(dyd);
      for (bool acc : {false, true}) {
        INFO("accumulate " << acc);
        auto dxd = Tensor<double>::full(c.x, acc ? 0.5 : 0.0),
             dwd = Tensor<double>::full(c.w, acc ? 0.5 : 0.0);
        auto dxf = Tensor<float>::full(c.x, acc ? 0.5f : 9.f),
             dwf = Tensor<float>::full(c.w, acc ? 0.5f : 9.f);
        cpu::conv2d_backward_data_reference(dyd, wd, dxd, c.p, acc);
        cpu::conv2d_backward_weight_reference(xd, dyd, dwd, c.p, acc);
        cpu::conv2d_backward_data(dyf, wf, dxf, c.p, acc);
        cpu::conv2d_backward_weight(xf, dyf, dwf, c.p, acc);
        CHECK(relative_error(dxf.to_vector(), dxd.to_vector()) < 1e-5);
        CHECK(relative_error(dwf.to_vector(), dwd.to_vector()) < 1e-5);
      }
    }
}

// The settings as they were (the convolution choice and its chunk size among them), put back at scope exit.
struct ConvImplGuard {
  ConfigSnapshot saved = config().snapshot();
  ~ConvImplGuard() { config().restore(saved); }
};

}  // namespace

TEST_CASE("cpu fast: im2col + GEMM convolution agrees with the double reference", "[fastpath]") {
  ConvImplGuard g;
  check_conv_impl(cpu::ConvImpl::Gemm);
}

TEST_CASE("cpu fast: oneDNN convolution agrees with the double reference", "[fastpath]") {
  ConvImplGuard g;
  if (!cpu::onednn_available()) {
    // Built without oneDNN: asking for it must fail loudly, not fall back silently.
    testing::require_error_mentions([] { cpu::set_float_conv_impl(cpu::ConvImpl::OneDnn); }, {"oneDNN"});
    WARN("built without oneDNN (libdnnl-dev): only the error path is tested");
    return;
  }
  check_conv_impl(cpu::ConvImpl::OneDnn);
#if defined(RESNET_HAVE_DNNL)
  // Tiny chunks: every batch runs in pieces (1 or 2 images, with a short last one: 80 KiB holds two of the
  // 36 KiB images of 3x4x32x32 -> 5x32x32), which must not change any result, the weight gradient summed
  // over chunks included. The guard puts the chunk size back.
  for (int64_t kb : {1, 4, 80}) {
    INFO("chunk KiB " << kb);
    config().set_cpu_conv_chunk_kb(kb);
    check_conv_impl(cpu::ConvImpl::OneDnn);
  }
#endif
}

TEST_CASE("cpu fast: BatchNorm forward (training and eval) agrees with the double reference", "[fastpath]") {
  const std::vector<Shape> shapes{{3, 5, 7, 6}, {4, 3, 1, 1}, {2, 16, 9, 9}};
  uint64_t seed = 900;
  for (const auto& s : shapes)
    for (bool with_res : {false, true})
      for (Activation act : {Activation::None, Activation::ReLU}) {
        INFO("shape " << s << " residual " << with_res << " relu " << (act == Activation::ReLU));
        const int64_t C = s[1];
        // A large mean offset checks that the variance is computed around the mean (no cancellation).
        auto xd = random_tensor<double>(s, seed++, 2.0);
        for (int64_t i = 0; i < xd.numel(); ++i) xd.data()[i] += 30.0;
        auto rd = random_tensor<double>(s, seed++);
        auto gd = random_tensor<double>({C}, seed++), bd = random_tensor<double>({C}, seed++);
        auto rmd = random_tensor<double>({C}, seed++), rvd = Tensor<double>::full({C}, 1.5);
        auto xf = convert<float>(xd), rf = convert<float>(rd), gf = convert<float>(gd),
             bf = convert<float>(bd);
        auto rmf = convert<float>(rmd), rvf = convert<float>(rvd);
        BatchNormParams bp;
        auto yd = Tensor<double>::empty(s);
        auto yf = Tensor<float>::full(s, 7.f);
        auto md = Tensor<double>::empty({C}), isd = Tensor<double>::empty({C});
        auto mf = Tensor<float>::full({C}, 7.f), isf = Tensor<float>::full({C}, 7.f);
        cpu::batchnorm_forward_training_reference(xd, with_res ? &rd : nullptr, gd, bd, rmd, rvd, md, isd, yd,
                                                  bp, act);
        cpu::batchnorm_forward_training(xf, with_res ? &rf : nullptr, gf, bf, rmf, rvf, mf, isf, yf, bp, act);
        CHECK(relative_error(yf.to_vector(), yd.to_vector()) < 1e-5);
        CHECK(relative_error(mf.to_vector(), md.to_vector()) < 1e-6);
        CHECK(relative_error(isf.to_vector(), isd.to_vector()) < 1e-5);
        CHECK(relative_error(rmf.to_vector(), rmd.to_vector()) < 1e-6);
        CHECK(relative_error(rvf.to_vector(), rvd.to_vector()) < 1e-5);

        auto yd2 = Tensor<double>::empty(s);
        auto yf2 = Tensor<float>::full(s, 7.f);
        cpu::batchnorm_forward_inference_reference(xd, with_res ? &rd : nullptr, gd, bd, rmd, rvd, yd2, bp,
                                                   act);
        cpu::batchnorm_forward_inference(xf, with_res ? &rf : nullptr, gf, bf, rmf, rvf, yf2, bp, act);
        CHECK(relative_error(yf2.to_vector(), yd2.to_vector()) < 1e-5);
      }
}

TEST_CASE("cpu fast: BatchNorm backward agrees with the double reference for every flag", "[fastpath]") {
  const Shape s{3, 4, 5, 6};
  const int64_t C = s[1];
  uint64_t seed = 1300;
  for (bool training : {true, false})
    for (Activation act : {Activation::None, Activation::ReLU})
      for (int outputs = 0; outputs < 4; ++outputs)  // bit 0: dx, bit 1: dresidual; 0 = parameters only
        for (bool acc : {false, true}) {
          const bool want_dx = outputs & 1, want_dr = outputs & 2;
          INFO("training " << training << " relu " << (act == Activation::ReLU) << " dx " << want_dx
                           << " dres " << want_dr << " accumulate " << acc);
          auto xd = random_tensor<double>(s, seed++), dyd = random_tensor<double>(s, seed++);
          auto yd = random_tensor<double>(s, seed++);  // only its sign (the ReLU mask) matters
          auto gd = random_tensor<double>({C}, seed++), md = random_tensor<double>({C}, seed++, 0.3);
          auto isd = Tensor<double>::full({C}, 1.3);
          auto xf = convert<float>(xd), dyf = convert<float>(dyd), yf = convert<float>(yd),
               gf = convert<float>(gd);
          auto mf = convert<float>(md), isf = convert<float>(isd);
          const double fill_d = acc ? 0.25 : 0.0;
          const float fill_f = acc ? 0.25f : 9.f;
          auto dxd = Tensor<double>::full(s, fill_d), drd = Tensor<double>::full(s, fill_d);
          auto dgd = Tensor<double>::full({C}, fill_d), dbd = Tensor<double>::full({C}, fill_d);
          auto dxf = Tensor<float>::full(s, fill_f), drf = Tensor<float>::full(s, fill_f);
          auto dgf = Tensor<float>::full({C}, fill_f), dbf = Tensor<float>::full({C}, fill_f);
          cpu::batchnorm_backward_reference(xd, yd, dyd, gd, md, isd, training, act, want_dx ? &dxd : nullptr,
                                            acc, want_dr ? &drd : nullptr, acc, &dgd, &dbd, acc);
          cpu::batchnorm_backward(xf, yf, dyf, gf, mf, isf, training, act, want_dx ? &dxf : nullptr, acc,
                                  want_dr ? &drf : nullptr, acc, &dgf, &dbf, acc);
          if (want_dx) CHECK(relative_error(dxf.to_vector(), dxd.to_vector()) < 1e-5);
          if (want_dr) CHECK(relative_error(drf.to_vector(), drd.to_vector()) < 1e-6);
          CHECK(relative_error(dgf.to_vector(), dgd.to_vector()) < 1e-5);
          CHECK(relative_error(dbf.to_vector(), dbd.to_vector()) < 1e-5);
        }
}

TEST_CASE("cpu fast: max pooling matches the reference exactly, ties and padding included", "[fastpath]") {
  struct Case {
    Shape x;
    PoolParams p;
  };
  auto pool = [](int64_t k, int64_t s, int64_t pad) {
    PoolParams p;
    p.kernel_h = p.kernel_w = k;
    p.stride_h = p.stride_w = s;
    p.pad_h = p.pad_w = pad;
    return p;
  };
  // Rows wider than 16 outputs too (the vectorised path does 16 outputs at a time, masking the rest).
  const std::vector<Case> cases{{{2, 3, 9, 9}, pool(3, 2, 1)},
                                {{1, 4, 8, 7}, pool(2, 2, 0)},
                                {{2, 2, 6, 5}, pool(3, 1, 1)},
                                {{1, 2, 11, 40}, pool(3, 2, 1)},
                                {{1, 1, 5, 37}, pool(3, 1, 1)}};
  uint64_t seed = 2000;
  for (const auto& c : cases) {
    INFO("input " << c.x << " kernel " << c.p.kernel_h << " stride " << c.p.stride_h << " pad " << c.p.pad_h);
    // Values on a coarse grid, so windows hold ties: the first maximum (row-major) must win in both.
    auto x = random_tensor<float>(c.x, seed++);
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = std::round(x.data()[i] * 2.f) / 2.f;
    Shape ys{c.x[0], c.x[1], c.p.out_h(c.x[2]), c.p.out_w(c.x[3])};
    auto y_ref = Tensor<float>::full(ys, 7.f), y_fast = Tensor<float>::full(ys, 8.f);
    auto i_ref = Tensor<int32_t>::full(ys, -5), i_fast = Tensor<int32_t>::full(ys, -6);
    cpu::maxpool2d_forward_reference(x, y_ref, i_ref, c.p);
    cpu::maxpool2d_forward(x, y_fast, i_fast, c.p);
    CHECK(y_fast.to_vector() == y_ref.to_vector());
    CHECK(i_fast.to_vector() == i_ref.to_vector());
    // Inference passes no index tensor: the same output, nothing else written.
    Tensor<int32_t> no_indices;
    auto y_inf = Tensor<float>::full(ys, 9.f), y_inf_ref = Tensor<float>::full(ys, 9.f);
    cpu::maxpool2d_forward(x, y_inf, no_indices, c.p);
    cpu::maxpool2d_forward_reference(x, y_inf_ref, no_indices, c.p);
    CHECK(y_inf.to_vector() == y_ref.to_vector());
    CHECK(y_inf_ref.to_vector() == y_ref.to_vector());
  }
}

TEST_CASE("max_pool2d under NoGradGuard gives the same output and still refuses a backward", "[fastpath]") {
  auto x = random_tensor<float>({2, 3, 9, 9}, 2100);
  x.requires_grad_();
  PoolParams p{3, 3, 2, 2, 1, 1, true};
  auto with_grad = max_pool2d(x, p);
  Tensor<float> without;
  {
    NoGradGuard ng;
    without = max_pool2d(x, p);
  }
  CHECK(without.to_vector() == with_grad.to_vector());
  CHECK_FALSE(without.requires_grad());
  sum(with_grad).backward();  // the recorded op kept its indices
  CHECK(x.grad().defined());
}
