// When a CUDA-graphed step (train/graph_step.hpp) runs eagerly, captures or replays, host-only: per batch
// shape `warmup` eager steps, then one capture, then replays, at most `max_graphs` shapes holding a graph.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/arg.hpp"

#include <cstdint>
#include <map>
#include <vector>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

// What one step does with its graph.
enum class GraphAction { Eager, Capture, Replay };
inline const char* graph_action_name(GraphAction a) {
  return a == GraphAction::Eager ? "eager" : a == GraphAction::Capture ? "capture" : "replay";
}

struct GraphedStepOptions {
  RESNET_ARG(int, warmup) = 2;      // eager steps of each batch shape before it is captured (at least 1)
  RESNET_ARG(int, max_graphs) = 2;  // batch shapes that keep a graph at once (at least 1)
  // Return the caching allocator's idle blocks (the warm-up's activations) to the driver before a capture,
  // so the graph's private pool does not come on top of them.
  RESNET_ARG(bool, release_cache_before_capture) = true;
};

// The decision of GraphedStep, host-only: per key (the batch's shapes), `warmup` eager steps, then a capture,
// then replays; at most max_graphs keys hold a graph, the least recently used is evicted. A key whose graph
// was evicted or invalidated captures again at its next step without new warm-up (it is warm).
class GraphPolicy {
 public:
  using Key = std::vector<int64_t>;
  struct Decision {
    GraphAction action = GraphAction::Eager;
    bool evict = false;  // action is Capture and `evicted`'s graph must be dropped first
    Key evicted;
  };

  explicit GraphPolicy(int warmup = 2, int max_graphs = 2) : warmup_(warmup), max_graphs_(max_graphs) {
    RESNET_CHECK(warmup >= 1,
                 "cuda graph: at least one eager warm-up step is needed before a capture (cuDNN ",
                 "chooses its algorithms and the gradients get their buffers there), got warmup ", warmup);
    RESNET_CHECK(max_graphs >= 1, "cuda graph: max_graphs must be at least 1, got ", max_graphs);
  }

  // What the step with `key` does; the state moves on as if it did it.
  Decision next(const Key& key) {
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
  // The key's graph was dropped (a value frozen into it changed): its next step captures again.
  void invalidate(const Key& key) {
    auto it = keys_.find(key);
    if (it != keys_.end()) it->second.has_graph = false;
  }
  int graphs() const {
    int n = 0;
    for (auto& kv : keys_) n += kv.second.has_graph ? 1 : 0;
    return n;
  }

 private:
  struct State {
    int eager_steps = 0;
    bool has_graph = false;
    uint64_t last_used = 0;
  };
  int warmup_, max_graphs_;
  uint64_t clock_ = 0;
  std::map<Key, State> keys_;
};

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
