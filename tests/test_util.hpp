// Shared test helpers: random tensors, error measures and the finite-difference gradient check.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <functional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "resnet/resnet.hpp"

namespace testing {

using resnet::Shape;
using resnet::Tensor;

// How two arrays of values compare: max |a - b| / max(max |b|, floor) (a scale-relative error that does
// not blow up on tiny elements), and the first element that fails. A NaN or an infinity in one array where
// the other has none (or another one) is a mismatch of infinite error: std::max(diff, NaN) keeps diff, so a
// plain maximum would let an op that returns all NaN pass every comparison.
struct Comparison {
  double error = 0.0;      // scale-relative error; +inf on a non-finite mismatch
  int64_t first_bad = -1;  // first non-finite mismatch, else the element of the largest difference
  std::string why;         // what went wrong at first_bad ("" when nothing did)
  bool within(double tol) const { return error <= tol && std::isfinite(error); }
};

template <typename A, typename B>
Comparison compare_values(const std::vector<A>& a, const std::vector<B>& b, double floor = 1e-12) {
  Comparison c;
  if (a.size() != b.size()) {
    c.error = std::numeric_limits<double>::infinity();
    c.why = "sizes differ: " + std::to_string(a.size()) + " vs " + std::to_string(b.size());
    return c;
  }
  double diff = 0.0, scale = floor;
  int64_t worst = -1;
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
    if (!std::isfinite(x) || !std::isfinite(y)) {
      // Matching non-finite values (NaN and NaN, +inf and +inf) agree; anything else fails here.
      const bool same =
          (std::isnan(x) && std::isnan(y)) || (std::isinf(x) && std::isinf(y) && (x > 0) == (y > 0));
      if (!same) {
        c.error = std::numeric_limits<double>::infinity();
        c.first_bad = static_cast<int64_t>(i);
        std::ostringstream os;
        os << "element " << i << " is " << x << " where the reference has " << y;
        c.why = os.str();
        return c;
      }
      continue;
    }
    const double d = std::abs(x - y);
    if (d > diff) {
      diff = d;
      worst = static_cast<int64_t>(i);
    }
    scale = std::max(scale, std::abs(y));
  }
  c.error = diff / scale;
  c.first_bad = worst;
  if (worst >= 0) {
    std::ostringstream os;
    os << "largest difference at element " << worst << ": "
       << static_cast<double>(a[static_cast<size_t>(worst)]) << " vs "
       << static_cast<double>(b[static_cast<size_t>(worst)]) << " (scale " << scale << ")";
    c.why = os.str();
  }
  return c;
}

// The error of compare_values (+inf on a NaN/Inf mismatch, so `relative_error(..) < tol` fails on one).
template <typename A, typename B>
double relative_error(const std::vector<A>& a, const std::vector<B>& b, double floor = 1e-12) {
  REQUIRE(a.size() == b.size());
  return compare_values(a, b, floor).error;
}

// CHECKs that `got` is within `tol` of `want` (scale-relative), naming the first failing element.
template <typename A, typename B>
bool check_close(const std::string& what, const std::vector<A>& got, const std::vector<B>& want, double tol) {
  const Comparison c = compare_values(got, want);
  INFO(what << ": relative error " << c.error << " (tolerance " << tol << "); " << c.why);
  CHECK(c.within(tol));
  return c.within(tol);
}

template <typename T>
Tensor<T> random_tensor(const Shape& s, uint64_t seed, double stddev = 1.0) {
  resnet::Generator g(seed);
  return Tensor<T>::randn(s, g, 0.0, stddev);
}

template <typename T>
Tensor<T> leaf(const Shape& s, uint64_t seed, double stddev = 1.0) {
  Tensor<T> t = random_tensor<T>(s, seed, stddev);
  t.requires_grad_(true);
  return t;
}

template <typename D, typename S>
Tensor<D> convert(const Tensor<S>& t) {
  std::vector<S> v = t.to_vector();
  std::vector<D> out(v.begin(), v.end());
  return Tensor<D>::from_vector(out, t.shape());
}

// Projects an op's output onto fixed random weights so every output element gets its own gradient.
inline Tensor<double> project(const Tensor<double>& y, uint64_t seed = 777) {
  Tensor<double> r = random_tensor<double>(y.shape(), seed);
  return resnet::sum(resnet::mul(y, r));
}

struct GradCheckResult {
  std::string name;
  double error;
};

// Central-difference gradient check in double precision. `loss` recomputes the scalar from the current
// values of the tensors in `wrt`; each must be a leaf that requires grad. Returns the relative error
// (max abs difference over the largest numeric gradient) of each tensor.
inline std::vector<GradCheckResult> gradcheck(const std::function<Tensor<double>()>& loss,
                                              std::vector<std::pair<std::string, Tensor<double>>> wrt,
                                              double h = 1e-6) {
  for (auto& kv : wrt) kv.second.set_grad_base(resnet::TensorBase());
  Tensor<double> l = loss();
  INFO("loss of the gradient check: " << l.item());
  REQUIRE(std::isfinite(l.item()));  // a NaN loss makes NaN numeric gradients, which would match NaN ones
  l.backward();
  std::vector<GradCheckResult> out;
  for (auto& kv : wrt) {
    Tensor<double> t = kv.second;
    Tensor<double> g = t.grad();
    INFO("gradient of " << kv.first);
    REQUIRE(g.defined());
    std::vector<double> analytic = g.to_vector(), numeric(static_cast<size_t>(t.numel()));
    resnet::NoGradGuard ng;
    double* p = t.data();
    for (int64_t i = 0; i < t.numel(); ++i) {
      const double saved = p[i];
      p[i] = saved + h;
      const double fp = loss().item();
      p[i] = saved - h;
      const double fm = loss().item();
      p[i] = saved;
      numeric[static_cast<size_t>(i)] = (fp - fm) / (2 * h);
    }
    const auto bad = std::find_if(numeric.begin(), numeric.end(), [](double v) { return !std::isfinite(v); });
    INFO("numeric gradient of " << kv.first << " is not finite at element " << (bad - numeric.begin()));
    REQUIRE(bad == numeric.end());
    out.push_back({kv.first, relative_error(analytic, numeric)});
  }
  return out;
}

inline void require_gradients_match(const std::vector<GradCheckResult>& results, double tol = 1e-6) {
  for (const auto& r : results) {
    INFO("gradient check of " << r.name << ": relative error " << r.error);
    CHECK(r.error < tol);
  }
}

// Throws-with-message matcher: the call must throw resnet::Error whose message contains every fragment.
template <typename Fn>
void require_error_mentions(Fn&& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
  } catch (const resnet::Error& e) {
    std::string msg = e.what();
    for (const auto& f : fragments) {
      INFO("error message: " << msg << "\nexpected to mention: " << f);
      CHECK(msg.find(f) != std::string::npos);
    }
    return;
  }
  FAIL("expected a resnet::Error mentioning "
       << (fragments.empty() ? std::string("anything") : fragments[0]));
}

}  // namespace testing
