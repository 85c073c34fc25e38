// Augmentation policies and random erasing, on values: the policies' draws are spread as torchvision's
// (every operation, bin and sign about equally often), a sample's augmentation is fixed by its seed, erased
// boxes keep to their area and aspect bounds, and the recipe's flags reach the training transform. The
// operations themselves are compared with torchvision's in tests/interop/test_augment_torchvision.cpp.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "catch.hpp"
#include "resnet/data/data.hpp"
#include "resnet/train/recipe_data.hpp"
#include "resnet/train/recipe_fields.hpp"

using namespace resnet;
using namespace resnet::data;

namespace {

Image noise_image(int w, int h, uint64_t seed) {
  Image img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  SampleRng rng(seed);
  for (auto& p : img.pixels) p = static_cast<uint8_t>(rng.below(256));
  return img;
}

std::vector<float> transformed(const Image& img, const TransformOptions& t, uint64_t seed) {
  std::vector<float> out(static_cast<size_t>(3 * t.size() * t.size()));
  SampleRng rng(seed);
  apply_transform(img, t, rng, out.data());
  return out;
}

}  // namespace

TEST_CASE("auto augment: TrivialAugmentWide draws every operation, bin and sign about equally", "[augment]") {
  const auto o = AutoAugmentOptions().policy(AutoAugmentPolicy::TrivialAugmentWide);
  const int n = 28000;
  std::map<int, int> ops;
  std::map<double, int> rotate_bins;
  int signed_draws = 0, negative = 0;
  for (int i = 0; i < n; ++i) {
    SampleRng rng(combine_seed(11, static_cast<uint64_t>(i)));
    const std::vector<DrawnOp> d = draw_auto_augment(o, 64, 48, rng);
    REQUIRE(d.size() == 1);
    ++ops[static_cast<int>(d[0].op)];
    if (d[0].op == AugmentOp::Rotate) ++rotate_bins[std::abs(d[0].magnitude)];
    if (augment_magnitudes(o.policy(), d[0].op, 31, 64, 48).is_signed && d[0].magnitude != 0) {
      ++signed_draws;
      negative += d[0].magnitude < 0 ? 1 : 0;
    }
  }
  REQUIRE(ops.size() == static_cast<size_t>(kAugmentOps));
  for (const auto& kv : ops) {  // 2000 expected; 6 standard deviations is about 265
    INFO(augment_op_name(static_cast<AugmentOp>(kv.first)));
    CHECK(kv.second > 1700);
    CHECK(kv.second < 2300);
  }
  REQUIRE(rotate_bins.size() == 31);  // 0 to 135 degrees in 31 bins, each drawn
  CHECK(rotate_bins.begin()->first == 0.0);
  CHECK(rotate_bins.rbegin()->first == 135.0);
  for (const auto& kv : rotate_bins) CHECK(kv.second > 20);  // about 64 each
  CHECK(std::abs(static_cast<double>(negative) / signed_draws - 0.5) < 0.02);
}

TEST_CASE("auto augment: RandAugment applies num_ops operations at the chosen bin", "[augment]") {
  const auto o = AutoAugmentOptions().policy(AutoAugmentPolicy::RandAugment).num_ops(3).magnitude(9);
  std::map<int, int> ops;
  int negative = 0, signed_draws = 0;
  for (int i = 0; i < 5000; ++i) {
    SampleRng rng(combine_seed(12, static_cast<uint64_t>(i)));
    const std::vector<DrawnOp> d = draw_auto_augment(o, 64, 48, rng);
    REQUIRE(d.size() == 3);
    for (const DrawnOp& x : d) {
      ++ops[static_cast<int>(x.op)];
      const OpMagnitudes m = augment_magnitudes(o.policy(), x.op, 31, 64, 48);
      const double want = m.values.empty() ? 0.0 : static_cast<double>(m.values[9]);
      CHECK(std::abs(x.magnitude) == want);
      if (m.is_signed) {
        ++signed_draws;
        negative += x.magnitude < 0 ? 1 : 0;
      }
    }
  }
  REQUIRE(ops.size() == static_cast<size_t>(kAugmentOps));
  for (const auto& kv : ops) CHECK(std::abs(kv.second - 15000.0 / kAugmentOps) < 200);
  CHECK(std::abs(static_cast<double>(negative) / signed_draws - 0.5) < 0.03);
  // RandAugment's translation scales with the image: 150/331 of the width at the last bin.
  CHECK(augment_magnitudes(o.policy(), AugmentOp::TranslateX, 31, 331, 10).values.back() == 150.0f);
  CHECK_THROWS_WITH(AutoAugmentOptions().policy(AutoAugmentPolicy::RandAugment).magnitude(31).validate(),
                    Catch::Contains("magnitude 31 is not a bin"));
  CHECK_THROWS_WITH(parse_auto_augment("autoaugment"), Catch::Contains("unknown automatic augmentation"));
}

TEST_CASE("transform: automatic augmentation and erasing are fixed by the sample's seed", "[augment]") {
  const Image img = noise_image(40, 30, 3);
  auto plain = TransformOptions().size(24).augment(Augment::ResizedCrop);
  TransformOptions ta = plain;
  ta.auto_augment(AutoAugmentOptions().policy(AutoAugmentPolicy::TrivialAugmentWide));
  ta.erasing(RandomErasingOptions().p(0.5).random_value(true));
  int changed = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const std::vector<float> a = transformed(img, ta, seed);
    CHECK(a == transformed(img, ta, seed));  // the same seed, the same image
    CHECK(a != transformed(img, ta, seed + 1000));
    changed += a != transformed(img, plain, seed) ? 1 : 0;
  }
  CHECK(changed >= 30);  // Identity without an erase leaves about 1 in 28 unchanged
  // The evaluation transform ignores both: they augment.
  TransformOptions eval = ta;
  eval.augment(Augment::None);
  TransformOptions eval_plain = plain;
  eval_plain.augment(Augment::None);
  CHECK(transformed(img, eval, 1) == transformed(img, eval_plain, 1));
}

TEST_CASE("random erasing: probability, area and aspect bounds, values", "[augment]") {
  const int c = 3, h = 40, w = 50;
  const auto o = RandomErasingOptions().p(0.5);
  int erased = 0;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    std::vector<float> img(static_cast<size_t>(c * h * w), 1.0f);
    SampleRng rng(seed);
    const ErasedBox b = random_erase(img.data(), c, h, w, o, rng);
    int zeros = 0, wrong = 0;  // inside the box 0, outside untouched
    for (int ch = 0; ch < c; ++ch)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const bool inside = y >= b.top && y < b.top + b.height && x >= b.left && x < b.left + b.width;
          const float v = img[(static_cast<size_t>(ch) * h + y) * w + x];
          wrong += v != (inside ? 0.0f : 1.0f) ? 1 : 0;
          zeros += v == 0.0f ? 1 : 0;
        }
    REQUIRE(wrong == 0);
    if (b.height == 0) continue;
    ++erased;
    REQUIRE(zeros == c * b.height * b.width);
    REQUIRE(b.top + b.height <= h);
    REQUIRE(b.left + b.width <= w);
    // h = round(sqrt(area * r)), w = round(sqrt(area / r)): the target area and ratio within half a pixel.
    const double area = static_cast<double>(h) * w, bh = b.height, bw = b.width;
    CHECK((bh - 0.5) * (bw - 0.5) <= 0.33 * area);
    CHECK((bh + 0.5) * (bw + 0.5) >= 0.02 * area);
    CHECK((bh - 0.5) / (bw + 0.5) <= 3.3);
    CHECK((bh + 0.5) / (bw - 0.5) >= 0.3);
  }
  CHECK(std::abs(erased - 1000) < 100);  // p = 0.5; a box that fits is almost always found
  // Noise: standard normal values.
  double sum = 0, sq = 0, count = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    std::vector<float> img(static_cast<size_t>(c * h * w), 7.0f);
    SampleRng rng(seed);
    random_erase(img.data(), c, h, w, RandomErasingOptions().p(1).random_value(true), rng);
    for (float v : img)
      if (v != 7.0f) sum += v, sq += static_cast<double>(v) * v, ++count;
  }
  REQUIRE(count > 10000);
  CHECK(std::abs(sum / count) < 0.02);
  CHECK(std::abs(sq / count - 1.0) < 0.03);
  CHECK_THROWS_WITH(RandomErasingOptions().p(1.5).validate(),
                    Catch::Contains("probability must be in [0, 1]"));
}

TEST_CASE("recipe: the augmentation flags reach the training transform, bad values named", "[augment]") {
  train::RecipeOptions r;
  train::set_recipe_value(r, "auto-augment", "randaugment");
  train::set_recipe_value(r, "ra-ops", "3");
  train::set_recipe_value(r, "ra-magnitude", "12");
  train::set_recipe_value(r, "erase", "0.3");
  train::set_recipe_value(r, "sizes", "64@0-4,96@5-");
  const TransformOptions t = train::recipe_train_transform(r);
  CHECK(t.auto_augment().policy() == AutoAugmentPolicy::RandAugment);
  CHECK(t.auto_augment().num_ops() == 3);
  CHECK(t.auto_augment().magnitude() == 12);
  CHECK(t.erasing().p() == 0.3);
  CHECK(train::recipe_field("sizes").text(r) == "64@0-4,96@5-");
  CHECK(train::recipe_train_transform(train::RecipeOptions()).auto_augment().enabled() == false);
  CHECK(train::recipe_train_transform(train::RecipeOptions()).erasing().enabled() == false);
  CHECK_THROWS_WITH(train::set_recipe_value(r, "sizes", "64@0-4,96@6-"),
                    Catch::Contains("--sizes: expected none or SIZE@FIRST-LAST"));
  CHECK_THROWS_WITH(train::set_recipe_value(r, "auto-augment", "autoaugment"),
                    Catch::Contains("--auto-augment: expected none, trivialaugment or randaugment"));
  CHECK_THROWS_AS(train::set_recipe_value(r, "erase", "1.5"), train::OptionError);
}
