// The definitions of graph_policy.hpp: included by it in header-only mode, and compiled once into the
// library in the compiled mode (src/train/parts.cpp). Not for direct inclusion.
#pragma once

#include <map>
#include <vector>

#include "resnet/core/abi.hpp"
#include "resnet/core/error.hpp"
#include "resnet/train/graph_policy.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

RESNET_INLINE GraphPolicy::GraphPolicy(int warmup, int max_graphs)
    : warmup_(warmup), max_graphs_(max_graphs) {
  RESNET_CHECK(warmup >= 1, "cuda graph: at least one eager warm-up step is needed before a capture (cuDNN ",
               "chooses its algorithms and the gradients get their buffers there), got warmup ", warmup);
  RESNET_CHECK(max_graphs >= 1, "cuda graph: max_graphs must be at least 1, got ", max_graphs);
}

RESNET_INLINE GraphPolicy::Decision GraphPolicy::next(const Key& key) {
  State& s = keys_[key];
  s.last_used = ++clock_;
  Decision d;
  if (s.has_graph) {
    d.action = GraphAction::Replay;
    return d;
  }
  if (s.eager_steps < warmup_) {
    ++s.eager_steps;
    d.action = GraphAction::Eager;
    return d;
  }
  d.action = GraphAction::Capture;
  if (graphs() >= max_graphs_) {
    auto lru = keys_.end();
    for (auto it = keys_.begin(); it != keys_.end(); ++it)
      if (it->second.has_graph && (lru == keys_.end() || it->second.last_used < lru->second.last_used))
        lru = it;
    lru->second.has_graph = false;
    d.evict = true;
    d.evicted = lru->first;
  }
  s.has_graph = true;
  return d;
}

RESNET_INLINE void GraphPolicy::invalidate(const Key& key) {
  auto it = keys_.find(key);
  if (it != keys_.end()) it->second.has_graph = false;
}

RESNET_INLINE int GraphPolicy::graphs() const {
  int n = 0;
  for (auto& kv : keys_) n += kv.second.has_graph ? 1 : 0;
  return n;
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
