// Mixup and CutMix on a host batch, as timm's Mixup in its "batch" mode (timm/data/mixup.py): with
// probability `prob` a batch is mixed, by CutMix with probability `switch_prob` when both alphas are set
// (else by the one that is), with lambda ~ Beta(alpha, alpha). Sample i is mixed with sample n-1-i (timm's
// x.flip(0)); an odd batch's middle sample meets itself and stays as it was. Mixup: x_i <- lam x_i +
// (1 - lam) x_{n-1-i}. CutMix: a box of side sqrt(1 - lam) times the image's, centred uniformly and clipped
// to the image, is taken from the partner, and lam becomes 1 - box area / image area (timm's correct_lam).
// The targets are lam smooth(y_i) + (1 - lam) smooth(y_{n-1-i}) with smooth(y) = (1 - e) onehot(y) + e / K
// (timm's mixup_target), for soft_cross_entropy without further smoothing.
//
// Every draw is a function of (seed, step) alone, so a resumed run mixes its batches as the first did.
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

#include "resnet/core/arg.hpp"
#include "resnet/core/error.hpp"
#include "resnet/core/random.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

struct MixupOptions {
  RESNET_ARG(double, mixup_alpha) = 1.0;   // 0: no mixup
  RESNET_ARG(double, cutmix_alpha) = 0.0;  // 0: no cutmix
  RESNET_ARG(double, prob) = 1.0;          // chance that a batch is mixed at all
  RESNET_ARG(double, switch_prob) = 0.5;   // with both alphas: chance of cutmix over mixup
  RESNET_ARG(double, label_smoothing) = 0.1;
  RESNET_ARG(bool, correct_lam) = true;  // lam from the clipped box's area
  RESNET_ARG(uint64_t, seed) = 0;
};

// One batch's draw: lam (1: left as it is), and for cutmix the box [y0, y1) x [x0, x1).
struct MixDraw {
  double lam = 1.0;
  bool cutmix = false;
  int64_t y0 = 0, y1 = 0, x0 = 0, x1 = 0;
};

namespace detail {
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
// Gamma(a, 1) by Marsaglia and Tsang, boosted for a < 1 (G(a) = G(a + 1) U^(1/a)).
inline double gamma_draw(Generator& g, double a) {
  if (a < 1.0) {
    const double u = g.uniform();
    return gamma_draw(g, a + 1.0) * std::pow(u, 1.0 / a);
  }
  const double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = g.normal();
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = g.uniform();
    if (u < 1.0 - 0.0331 * x * x * x * x || std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v)))
      return d * v;
  }
}
}  // namespace detail

inline double beta_draw(Generator& g, double a, double b) {
  const double x = detail::gamma_draw(g, a), y = detail::gamma_draw(g, b);
  return x / (x + y);
}

class Mixup {
 public:
  Mixup(MixupOptions o, int64_t num_classes) : o_(o), classes_(num_classes) {
    RESNET_CHECK(o.mixup_alpha() >= 0 && o.cutmix_alpha() >= 0 && std::isfinite(o.mixup_alpha()) &&
                     std::isfinite(o.cutmix_alpha()),
                 "Mixup: mixup_alpha and cutmix_alpha must be finite and non-negative, got ", o.mixup_alpha(),
                 " and ", o.cutmix_alpha());
    RESNET_CHECK(o.mixup_alpha() > 0 || o.cutmix_alpha() > 0,
                 "Mixup: mixup_alpha or cutmix_alpha must be positive (both are 0)");
    for (double p : {o.prob(), o.switch_prob()})
      RESNET_CHECK(p >= 0 && p <= 1, "Mixup: prob and switch_prob must be in [0, 1], got ", o.prob(), " and ",
                   o.switch_prob());
    RESNET_CHECK(o.label_smoothing() >= 0 && o.label_smoothing() < 1,
                 "Mixup: label_smoothing must be in [0, 1), got ", o.label_smoothing());
    RESNET_CHECK(num_classes >= 1, "Mixup: num_classes must be at least 1, got ", num_classes);
  }
  const MixupOptions& options() const { return o_; }
  int64_t num_classes() const { return classes_; }

  // The draw for batch `step` of images H x W (timm's _params_per_batch and cutmix_bbox_and_lam).
  MixDraw draw(int64_t step, int64_t H, int64_t W) const {
    Generator g(detail::splitmix64(o_.seed() ^ detail::splitmix64(static_cast<uint64_t>(step))));
    MixDraw d;
    if (g.uniform() >= o_.prob()) return d;
    const bool both = o_.mixup_alpha() > 0 && o_.cutmix_alpha() > 0;
    d.cutmix = both ? g.uniform() < o_.switch_prob() : o_.cutmix_alpha() > 0;
    const double alpha = d.cutmix ? o_.cutmix_alpha() : o_.mixup_alpha();
    d.lam = beta_draw(g, alpha, alpha);
    if (!d.cutmix) return d;
    const double ratio = std::sqrt(1.0 - d.lam);
    const int64_t cut_h = static_cast<int64_t>(static_cast<double>(H) * ratio),
                  cut_w = static_cast<int64_t>(static_cast<double>(W) * ratio);
    const int64_t cy = g.randint(H), cx = g.randint(W);
    auto clip = [](int64_t v, int64_t hi) { return v < 0 ? 0 : v > hi ? hi : v; };
    d.y0 = clip(cy - cut_h / 2, H);
    d.y1 = clip(cy + cut_h / 2, H);
    d.x0 = clip(cx - cut_w / 2, W);
    d.x1 = clip(cx + cut_w / 2, W);
    if (o_.correct_lam())
      d.lam = 1.0 - static_cast<double>((d.y1 - d.y0) * (d.x1 - d.x0)) / static_cast<double>(H * W);
    return d;
  }

  // Mixes host images [n, C, H, W] (any dense memory format) in place and returns the targets [n, K].
  Tensor<float> apply(Tensor<float>& images, const std::vector<int32_t>& labels, int64_t step) const {
    RESNET_CHECK(images.defined() && images.device().is_cpu() && images.rank() == 4 && images.is_dense(),
                 "Mixup: images must be a dense host tensor [n, C, H, W], got ",
                 images.defined() ? images.describe() : "an undefined tensor");
    const int64_t n = images.dim(0);
    RESNET_CHECK(static_cast<int64_t>(labels.size()) == n, "Mixup: ", labels.size(), " labels for ", n,
                 " images");
    const MixDraw d = draw(step, images.dim(2), images.dim(3));
    if (d.lam < 1.0) mix_images(images, d);
    return targets(labels, d.lam);
  }

  // lam smooth(y_i) + (1 - lam) smooth(y_{n-1-i}).
  Tensor<float> targets(const std::vector<int32_t>& labels, double lam) const {
    const int64_t n = static_cast<int64_t>(labels.size()), K = classes_;
    const double off = o_.label_smoothing() / static_cast<double>(K), on = 1.0 - o_.label_smoothing() + off;
    Tensor<float> t = Tensor<float>::full({n, K}, static_cast<float>(off));
    for (int64_t i = 0; i < n; ++i) {
      const int32_t a = labels[static_cast<size_t>(i)], b = labels[static_cast<size_t>(n - 1 - i)];
      RESNET_CHECK(a >= 0 && a < K, "Mixup: label ", a, " is outside [0, ", K, ")");
      float* row = t.data() + i * K;
      for (int64_t k = 0; k < K; ++k)
        row[k] = static_cast<float>(lam * (k == a ? on : off) + (1.0 - lam) * (k == b ? on : off));
    }
    return t;
  }

 private:
  static void mix_images(Tensor<float>& x, const MixDraw& d) {
    const int64_t n = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
    const auto& s = x.strides();
    float* p = x.data();
    const float lam = static_cast<float>(d.lam), rest = static_cast<float>(1.0 - d.lam);
    const int64_t h0 = d.cutmix ? d.y0 : 0, h1 = d.cutmix ? d.y1 : H;
    const int64_t w0 = d.cutmix ? d.x0 : 0, w1 = d.cutmix ? d.x1 : W;
    for (int64_t i = 0; i < n / 2; ++i) {
      float* a = p + i * s[0];
      float* b = p + (n - 1 - i) * s[0];
      for (int64_t c = 0; c < C; ++c)
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) {
            const int64_t o = c * s[1] + h * s[2] + w * s[3];
            const float va = a[o], vb = b[o];
            a[o] = d.cutmix ? vb : lam * va + rest * vb;
            b[o] = d.cutmix ? va : lam * vb + rest * va;
          }
    }
  }

  MixupOptions o_;
  int64_t classes_;
};

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
