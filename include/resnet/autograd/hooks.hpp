// Gradient-ready hooks: "this leaf's gradient is final for this backward pass". Data parallelism needs it
// to start averaging a bucket of gradients while the rest of the backward pass still runs.
//
// The rule (with the tape's gradient rule, autograd/node.hpp: gradients ACCUMULATE):
// - A hook registered on a leaf (a tensor without grad_fn, normally a parameter) fires once per backward()
//   that reaches the leaf, right after the LAST node of that pass that delivers a gradient to it has run,
//   so the leaf's .grad then holds every earlier pass's sum plus all of this pass's contributions.
//   "Last" is by the pass's topological order, computed before any node runs; a node that is skipped
//   (its output received no gradient) still counts, so the hook fires at its place in the order and the
//   gradient passed may be unchanged by this pass, or undefined if the leaf never had one.
// - Leaves no node of the pass reaches get no call. backward() on a leaf itself fires its hooks once.
// - Hooks run on the thread that called backward(), in registration order per leaf; they must not call
//   backward(). retain_graph passes fire again (once per pass).
// - queue_backward_end_callback(fn), called from a hook (or node) during backward(), runs fn once after
//   the last node of this pass, before backward() returns; callbacks of a pass that threw are dropped.
// Cost when no hook exists: one check of an empty table per backward().
#pragma once

#include "resnet/core/abi.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace autograd {

using GradReadyHook = std::function<void(TensorBase& grad)>;

namespace detail {

struct HookTable {
  std::mutex mutex;
  uint64_t next_id = 1;
  // Keyed by the leaf's autograd slot (kept alive by the handle, so the address cannot be reused).
  std::unordered_map<const AutogradMeta*, std::vector<std::pair<uint64_t, GradReadyHook>>> hooks;
};
inline HookTable& hook_table() {
  static HookTable t;
  return t;
}

// What the running backward() on this thread exposes (progress, end-of-pass callbacks).
struct BackwardState {
  uint64_t id = 0;          // 0: no backward() running
  int64_t nodes_run = 0;    // nodes of the order processed so far (run or skipped)
  int64_t nodes_total = 0;  // nodes in this pass's order
  std::vector<std::function<void()>> end_callbacks;
};
inline BackwardState& backward_state() {
  static thread_local BackwardState s;
  return s;
}
inline uint64_t next_backward_id() {
  static std::atomic<uint64_t> n{0};
  return ++n;
}

}  // namespace detail

// Removes its hook when destroyed or on remove(); movable, not copyable.
class GradHookHandle {
 public:
  GradHookHandle() = default;
  GradHookHandle(std::shared_ptr<AutogradMeta> meta, uint64_t id) : meta_(std::move(meta)), id_(id) {}
  GradHookHandle(GradHookHandle&& o) noexcept : meta_(std::move(o.meta_)), id_(o.id_) { o.id_ = 0; }
  GradHookHandle& operator=(GradHookHandle&& o) noexcept {
    if (this != &o) {
      remove();
      meta_ = std::move(o.meta_);
      id_ = o.id_;
      o.id_ = 0;
    }
    return *this;
  }
  GradHookHandle(const GradHookHandle&) = delete;
  GradHookHandle& operator=(const GradHookHandle&) = delete;
  ~GradHookHandle() { remove(); }

  void remove() {
    if (!meta_ || id_ == 0) return;
    auto& t = detail::hook_table();
    std::lock_guard<std::mutex> lock(t.mutex);
    auto it = t.hooks.find(meta_.get());
    if (it != t.hooks.end()) {
      auto& v = it->second;
      for (size_t i = 0; i < v.size(); ++i)
        if (v[i].first == id_) {
          v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
          break;
        }
      if (v.empty()) t.hooks.erase(it);
    }
    meta_.reset();
    id_ = 0;
  }
  bool active() const { return meta_ != nullptr && id_ != 0; }

 private:
  std::shared_ptr<AutogradMeta> meta_;
  uint64_t id_ = 0;
};

// Registers fn to run when `leaf`'s gradient is final in each backward pass (see the rule above).
inline GradHookHandle add_grad_ready_hook(TensorBase& leaf, GradReadyHook fn) {
  RESNET_CHECK(leaf.defined(), "add_grad_ready_hook: undefined tensor");
  RESNET_CHECK(leaf.is_leaf(), "add_grad_ready_hook: tensor ", leaf.describe(),
               " is not a leaf (it has a grad_fn); hooks watch parameters and other leaves");
  RESNET_CHECK(leaf.requires_grad(), "add_grad_ready_hook: tensor ", leaf.describe(),
               " does not require grad, so no backward pass gives it a gradient");
  RESNET_CHECK(fn != nullptr, "add_grad_ready_hook: empty function");
  auto& t = detail::hook_table();
  std::lock_guard<std::mutex> lock(t.mutex);
  const uint64_t id = t.next_id++;
  t.hooks[leaf.meta_ptr().get()].emplace_back(id, std::move(fn));
  return GradHookHandle(leaf.meta_ptr(), id);
}

// Runs fn once at the end of the backward() now running on this thread.
inline void queue_backward_end_callback(std::function<void()> fn) {
  auto& s = detail::backward_state();
  RESNET_CHECK(s.id != 0, "queue_backward_end_callback: called outside a backward pass");
  s.end_callbacks.push_back(std::move(fn));
}

// The running pass on this thread: a unique id (0 outside backward()), nodes processed so far and in all.
inline uint64_t current_backward_id() { return detail::backward_state().id; }
inline int64_t backward_nodes_run() { return detail::backward_state().nodes_run; }
inline int64_t backward_nodes_total() { return detail::backward_state().nodes_total; }

}  // namespace autograd
}  // namespace RESNET_ABI
}  // namespace resnet
