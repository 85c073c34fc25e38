// The comparator every numeric test is built on (test_util.hpp): it must fail on one bad value among many,
// name where it is, and never let a NaN or an infinity through.
#include <limits>

#include "test_util.hpp"

using testing::compare_values;
using testing::relative_error;

namespace {
std::vector<double> ramp(size_t n) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::sin(0.001 * static_cast<double>(i)) + 0.5;
  return v;
}
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();
}  // namespace

TEST_CASE("compare: equal arrays have zero error", "[compare]") {
  const auto a = ramp(1000);
  const auto c = compare_values(a, a);
  CHECK(c.error == 0.0);
  CHECK(c.within(0.0));
  CHECK(c.why.empty());
}

TEST_CASE("compare: one NaN among a million values fails and is named", "[compare]") {
  const auto want = ramp(1000000);
  auto got = want;
  got[765432] = kNaN;
  const auto c = compare_values(got, want);
  CHECK_FALSE(c.within(1e30));
  CHECK(std::isinf(c.error));
  CHECK(c.first_bad == 765432);
  CHECK(c.why.find("765432") != std::string::npos);
  CHECK(c.why.find("nan") != std::string::npos);
  CHECK_FALSE(relative_error(got, want) < 1.0);  // the old idiom fails too
  // The reverse: a NaN in the reference where the result has a number.
  const auto r = compare_values(want, got);
  CHECK(r.first_bad == 765432);
  CHECK_FALSE(r.within(1e30));
}

TEST_CASE("compare: an infinity fails, and so does an infinity of the other sign", "[compare]") {
  const auto want = ramp(100);
  auto got = want;
  got[3] = kInf;
  CHECK(compare_values(got, want).first_bad == 3);
  CHECK_FALSE(compare_values(got, want).within(1e300));
  auto w2 = want;
  w2[3] = -kInf;
  CHECK_FALSE(compare_values(got, w2).within(1e300));
  w2[3] = kInf;
  CHECK(compare_values(got, w2).within(1e-15));  // the same infinity in both places agrees
}

TEST_CASE("compare: all-NaN output fails against a finite reference", "[compare]") {
  const auto want = ramp(64);
  const std::vector<double> got(64, kNaN);
  CHECK(compare_values(got, want).first_bad == 0);
  CHECK_FALSE(relative_error(got, want) < 1e-6);
}

TEST_CASE("compare: a sign flip and a single wrong element are found", "[compare]") {
  const auto want = ramp(10000);
  auto flipped = want;
  flipped[42] = -flipped[42];
  auto c = compare_values(flipped, want);
  CHECK(c.first_bad == 42);
  CHECK(c.error == Approx(2 * std::abs(want[42]) / 1.5).epsilon(1e-2));  // scale: max |want| is 1.5
  CHECK_FALSE(c.within(1e-3));
  auto nudged = want;
  nudged[9999] += 1e-6;
  c = compare_values(nudged, want);
  CHECK(c.first_bad == 9999);
  CHECK(c.within(1e-6));
  CHECK_FALSE(c.within(1e-7));
}

TEST_CASE("compare: arrays of different sizes never compare equal", "[compare]") {
  const auto c = compare_values(ramp(3), ramp(4));
  CHECK_FALSE(c.within(1e300));
  CHECK(c.why.find("sizes differ") != std::string::npos);
}

// [!shouldfail]: this case passes only if the gradient check records a failure. An op that returns NaN
// everywhere makes numeric and analytic gradients both NaN, which a comparison could call equal; the
// check refuses the NaN loss first.
TEST_CASE("compare: the gradient check refuses a NaN loss instead of matching NaN with NaN",
          "[compare][!shouldfail]") {
  auto x = testing::leaf<double>({3}, 1);
  auto nan_loss = [&] { return resnet::sum(resnet::scale(x, kNaN)); };
  testing::require_gradients_match(testing::gradcheck(nan_loss, {{"x", x}}));
}
