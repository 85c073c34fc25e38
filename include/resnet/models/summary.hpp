// Model summary: a layer table with output shapes, parameters and multiply-accumulates, from shape
// inference alone (nothing is computed, so ResNet-152 at 224x224 summarises instantly).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"

#include <string>

#include "resnet/nn/module.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace models {

struct ModelSummary {
  std::vector<nn::LayerSummary> rows;
  int64_t total_params = 0;
  int64_t total_macs = 0;  // per image
  Shape output;
};

template <typename T>
ModelSummary summarize(const nn::Module<T>& model, const Shape& input) {
  ModelSummary s;
  s.output = model.summarize(input, "", 0, s.rows);
  for (auto& r : s.rows) s.total_macs += r.macs;
  s.total_params = model.num_parameters();
  return s;
}

std::string with_commas(int64_t v);

std::string format_summary(const ModelSummary& s);

}  // namespace models
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/models/summary_inl.hpp"
#endif
