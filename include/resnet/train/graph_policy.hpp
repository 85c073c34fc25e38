// When a CUDA-graphed step (train/graph_step.hpp) runs eagerly, captures or replays, host-only: per batch
// shape `warmup` eager steps, then one capture, then replays, at most `max_graphs` shapes holding a graph.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"
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

  explicit GraphPolicy(int warmup = 2, int max_graphs = 2);
  // What the step with `key` does; the state moves on as if it did it.
  Decision next(const Key& key);
  // The key's graph was dropped (a value frozen into it changed): its next step captures again.
  void invalidate(const Key& key);
  int graphs() const;

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

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/train/graph_policy_inl.hpp"
#endif
