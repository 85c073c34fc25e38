// Shared test helpers: random tensors, error measures and the finite-difference gradient check.
#pragma once

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "resnet/resnet.hpp"

namespace testing {

using resnet::Shape;
using resnet::Tensor;

// max |a - b| / max(max |b|, floor): a scale-relative error that does not blow up on tiny elements.
template <typename A, typename B>
double relative_error(const std::vector<A>& a, const std::vector<B>& b, double floor = 1e-12) {
  REQUIRE(a.size() == b.size());
  double diff = 0.0, scale = floor;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return diff / scale;
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
