// Evaluation metrics as parts (Trainer::add_metric, EvalOptions::metrics). A metric is stateless: it adds a
// batch into a vector of counts that evaluate() keeps per rank, the counts of all ranks are summed by one
// all_reduce_host, and values() turns the global counts into its numbers. Sums of counts are what make a
// metric exact at any world size; a user's own metric follows the same shape.
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

class Metric {
 public:
  virtual ~Metric() = default;
  // The key of its values in EvalResult::metrics (and of its log line when it is one number).
  virtual std::string name() const = 0;
  // How many counts it keeps for a model of `classes` outputs.
  virtual size_t size(int64_t classes) const = 0;
  // One batch: `n` rows of `classes` logits (row-major, on the host) and their labels, into `counts`.
  virtual void add(const float* logits, const int32_t* labels, int64_t n, int64_t classes,
                   double* counts) const = 0;
  // Its values from the counts summed over every rank.
  virtual std::vector<double> values(const std::vector<double>& counts, int64_t classes) const = 0;
};

namespace detail {
// The predicted class: the first largest logit (ties go to the lower class, as top-1 accuracy counts).
inline int64_t argmax(const float* row, int64_t classes) {
  int64_t best = 0;
  for (int64_t c = 1; c < classes; ++c)
    if (row[c] > row[best]) best = c;
  return best;
}
inline double ratio(double num, double den) { return den > 0 ? num / den : std::nan(""); }
}  // namespace detail

// The share of samples whose label is among the k largest logits (a tie with the label's logit counts for
// the label). Values: one number; with k at least the number of classes it is 1.
class TopKAccuracy : public Metric {
 public:
  explicit TopKAccuracy(int64_t k) : k_(k) { RESNET_CHECK(k >= 1, "TopKAccuracy: k must be at least 1"); }
  std::string name() const override { return "top" + std::to_string(k_) + "_acc"; }
  size_t size(int64_t) const override { return 2; }  // hits, samples
  void add(const float* logits, const int32_t* labels, int64_t n, int64_t classes,
           double* counts) const override {
    for (int64_t i = 0; i < n; ++i) {
      const float* row = logits + i * classes;
      const float mine = row[labels[i]];
      int64_t above = 0;
      for (int64_t c = 0; c < classes; ++c) above += row[c] > mine ? 1 : 0;
      counts[0] += above < k_ ? 1 : 0;
      counts[1] += 1;
    }
  }
  std::vector<double> values(const std::vector<double>& c, int64_t) const override {
    return {detail::ratio(c[0], c[1])};
  }

 private:
  int64_t k_;
};

// Top-1 accuracy of each class (NaN for a class with no sample). Values: one per class.
class PerClassAccuracy : public Metric {
 public:
  std::string name() const override { return "per_class_acc"; }
  size_t size(int64_t classes) const override { return static_cast<size_t>(2 * classes); }
  void add(const float* logits, const int32_t* labels, int64_t n, int64_t classes,
           double* counts) const override {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t y = labels[i];
      counts[2 * y] += detail::argmax(logits + i * classes, classes) == y ? 1 : 0;
      counts[2 * y + 1] += 1;
    }
  }
  std::vector<double> values(const std::vector<double>& c, int64_t classes) const override {
    std::vector<double> v(static_cast<size_t>(classes));
    for (size_t k = 0; k < v.size(); ++k) v[k] = detail::ratio(c[2 * k], c[2 * k + 1]);
    return v;
  }
};

// Counts of (true class, predicted class). Values: classes x classes, row-major, row = the true class; the
// diagonal over a row's sum is that class's accuracy.
class ConfusionMatrix : public Metric {
 public:
  std::string name() const override { return "confusion"; }
  size_t size(int64_t classes) const override { return static_cast<size_t>(classes * classes); }
  void add(const float* logits, const int32_t* labels, int64_t n, int64_t classes,
           double* counts) const override {
    for (int64_t i = 0; i < n; ++i)
      counts[labels[i] * classes + detail::argmax(logits + i * classes, classes)] += 1;
  }
  std::vector<double> values(const std::vector<double>& c, int64_t) const override { return c; }
};

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
