// Freezing part of a model, for fine-tuning: a frozen sub-module stops requiring grad (an optimizer built
// afterwards skips its parameters) and its BatchNorms stay in eval mode whatever train() says (keep_eval),
// so their running statistics stay the pretrained ones instead of drifting to the new data.
//
//   nn::freeze(*net, {"conv1", "bn1", "layer1"});   // dotted paths, as find_module takes
//   nn::freeze_all_but(*net, {"fc"});               // a ResNet's backbone: every top-level child but fc
//
// Build the optimizer after freezing.
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/nn/batchnorm.hpp"
#include "resnet/nn/module.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace nn {

template <typename T>
void freeze(Module<T>& model, const std::vector<std::string>& paths) {
  std::vector<std::shared_ptr<Module<T>>> found;
  for (const auto& p : paths) {  // every path checked before anything changes
    auto m = model.find_module(p);
    RESNET_CHECK(m != nullptr, "freeze: ", model.type_name(), " has no sub-module '", p, "'");
    found.push_back(std::move(m));
  }
  for (auto& m : found) {
    m->requires_grad_(false);
    if (dynamic_cast<BatchNorm2d<T>*>(m.get())) m->keep_eval();
    for (auto& kv : m->named_modules())
      if (dynamic_cast<BatchNorm2d<T>*>(kv.second.get())) kv.second->keep_eval();
  }
}

// Every top-level child except those named in `keep` (which must exist); refuses to freeze everything.
template <typename T>
void freeze_all_but(Module<T>& model, const std::vector<std::string>& keep) {
  std::vector<std::string> paths;
  for (const auto& k : keep)
    RESNET_CHECK(model.find_module(k) != nullptr, "freeze_all_but: ", model.type_name(), " has no child '", k,
                 "'");
  for (const auto& kv : model.named_children())
    if (std::find(keep.begin(), keep.end(), kv.first) == keep.end()) paths.push_back(kv.first);
  RESNET_CHECK(paths.size() < model.named_children().size(),
               "freeze_all_but: nothing is kept, so nothing would train");
  freeze(model, paths);
}

}  // namespace nn
}  // namespace RESNET_ABI
}  // namespace resnet
