// The definitions of evaluate.hpp: included by it in header-only mode, and compiled once into the library
// in the compiled mode (src/train/parts.cpp). Not for direct inclusion.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "resnet/core/abi.hpp"
#include "resnet/train/evaluate.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {
namespace detail {

RESNET_INLINE void reduce_metrics(const std::vector<std::shared_ptr<const Metric>>& metrics,
                                  std::vector<std::vector<double>>& counts, int64_t classes,
                                  dist::ProcessGroup& pg, EvalResult& r) {
  const std::vector<double> k = pg.all_reduce_host({static_cast<double>(classes), classes > 0 ? 1.0 : 0.0});
  r.classes = k[1] > 0 ? static_cast<int64_t>(k[0] / k[1]) : 0;
  std::vector<double> flat;
  for (size_t m = 0; m < metrics.size(); ++m) {
    counts[m].resize(metrics[m]->size(r.classes), 0.0);  // a rank without samples holds zeros
    flat.insert(flat.end(), counts[m].begin(), counts[m].end());
  }
  flat = pg.all_reduce_host(flat);
  size_t at = 0;
  for (size_t m = 0; m < metrics.size(); ++m) {
    std::vector<double> c(flat.begin() + static_cast<std::ptrdiff_t>(at),
                          flat.begin() + static_cast<std::ptrdiff_t>(at + counts[m].size()));
    at += c.size();
    r.metrics[metrics[m]->name()] = metrics[m]->values(c, r.classes);
  }
}
}  // namespace detail
}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
