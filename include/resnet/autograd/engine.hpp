// backward(): walks the tape from a scalar loss in reverse topological order. Each node runs once, after
// every consumer of its output has delivered its gradient. Intermediate gradients and saved tensors are
// freed as soon as their node has run, so a backward pass holds little more than the forward did.
// Gradient-ready hooks and end-of-pass callbacks (autograd/hooks.hpp) fire from here.
#pragma once

#include "resnet/core/abi.hpp"

#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "resnet/autograd/hooks.hpp"
#include "resnet/backend/async_copy.hpp"
#include "resnet/autograd/node.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace autograd {

// Nodes reachable from root, consumers before producers.
inline std::vector<Node*> topological_order(Node* root) {
  std::vector<Node*> post;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<Node*, size_t>> stack;
  stack.emplace_back(root, 0);
  seen.insert(root);
  while (!stack.empty()) {
    auto& top = stack.back();
    Node* n = top.first;
    if (top.second < n->next().size()) {
      Node* child = n->next()[top.second++].get();
      if (seen.insert(child).second) stack.emplace_back(child, 0);
    } else {
      post.push_back(n);
      stack.pop_back();
    }
  }
  return std::vector<Node*>(post.rbegin(), post.rend());
}

namespace detail {

// Marks a backward pass as running on this thread for its lifetime (restoring an outer one), and drops the
// end callbacks of a pass that threw.
class BackwardScope {
 public:
  BackwardScope() : saved_(std::move(backward_state())) {
    backward_state() = BackwardState{};
    backward_state().id = next_backward_id();
  }
  ~BackwardScope() { backward_state() = std::move(saved_); }
  BackwardScope(const BackwardScope&) = delete;
  BackwardScope& operator=(const BackwardScope&) = delete;

  // Runs (and clears) the callbacks queued so far, including ones queued by these callbacks.
  static void run_end_callbacks() {
    auto& cbs = backward_state().end_callbacks;
    for (size_t i = 0; i < cbs.size(); ++i) {
      auto fn = std::move(cbs[i]);
      fn();
    }
    cbs.clear();
  }

 private:
  BackwardState saved_;
};

// The hooks of one pass: for each position of the order, the hooked leaves whose last contributor it is.
struct PassHooks {
  std::vector<std::vector<std::pair<AutogradMeta*, std::vector<GradReadyHook>>>> after;
  bool empty = true;
};

inline PassHooks plan_hooks(const std::vector<Node*>& order) {
  PassHooks ph;
  auto& table = hook_table();
  std::lock_guard<std::mutex> lock(table.mutex);
  if (table.hooks.empty()) return ph;
  std::unordered_map<AutogradMeta*, size_t> last;
  for (size_t i = 0; i < order.size(); ++i)
    for (const auto& in : order[i]->inputs())
      if (in.meta && in.meta->is_leaf() && table.hooks.count(in.meta.get())) last[in.meta.get()] = i;
  if (last.empty()) return ph;
  ph.after.resize(order.size());
  ph.empty = false;
  // Leaves in order of first appearance at each position, so firing order is deterministic.
  for (size_t i = 0; i < order.size(); ++i)
    for (const auto& in : order[i]->inputs()) {
      AutogradMeta* m = in.meta.get();
      auto it = m ? last.find(m) : last.end();
      if (it == last.end() || it->second != i) continue;
      std::vector<GradReadyHook> fns;
      for (auto& h : table.hooks[m]) fns.push_back(h.second);
      ph.after[i].emplace_back(m, std::move(fns));
      last.erase(it);
    }
  return ph;
}

inline void fire(AutogradMeta* m, const std::vector<GradReadyHook>& fns) {
  for (const auto& fn : fns) {
    if (m->grad) {
      fn(*m->grad);
    } else {
      TensorBase none;
      fn(none);
    }
  }
}

inline void fire_leaf_hooks(AutogradMeta* m) {
  std::vector<GradReadyHook> fns;
  {
    auto& table = hook_table();
    std::lock_guard<std::mutex> lock(table.mutex);
    auto it = table.hooks.find(m);
    if (it == table.hooks.end()) return;
    for (auto& h : it->second) fns.push_back(h.second);
  }
  fire(m, fns);
}

}  // namespace detail

// Backward from `root` with gradient `seed` (ones for a scalar loss when omitted).
inline void backward(TensorBase root, TensorBase seed = TensorBase(), bool retain_graph = false) {
  RESNET_CHECK(root.defined(), "backward: undefined tensor");
  RESNET_CHECK(
      root.requires_grad(), "backward: tensor ", root.describe(),
      " does not require grad (no parameter or input that requires grad was used, or it was computed "
      "under NoGradGuard)");
  if (!seed.defined()) {
    RESNET_CHECK(root.numel() == 1, "backward: implicit gradient needs a scalar, got shape ", root.shape(),
                 "; pass a gradient tensor");
    seed = TensorBase::empty(root.shape(), root.dtype(), Device::cpu());
    switch (root.dtype()) {
      case DType::F32:
        *static_cast<float*>(seed.raw_data()) = 1.f;
        break;
      case DType::F64:
        *static_cast<double*>(seed.raw_data()) = 1.0;
        break;
      case DType::F16:
        *static_cast<half_t*>(seed.raw_data()) = half_t(1.f);
        break;
      case DType::BF16:
        *static_cast<bf16_t*>(seed.raw_data()) = bf16_t(1.f);
        break;
      default:
        RESNET_FAIL("backward: unsupported dtype ", dtype_name(root.dtype()));
    }
    if (!root.device().is_cpu()) {  // without waiting for the device (a copy from pageable memory may)
      TensorBase d = TensorBase::empty(root.shape(), root.dtype(), root.device());
      write_bytes_async(d, seed.raw_data(), seed.nbytes());
      seed = d;
    }
  }
  check_same_shape("backward (seed)", root, seed);
  AutogradMeta& rm = root.meta();
  detail::BackwardScope scope;
  if (rm.is_leaf()) {  // d(root)/d(root): just accumulate
    if (rm.grad)
      backend::add_inplace_any(*rm.grad, seed);
    else
      rm.grad = std::make_shared<TensorBase>(seed);
    detail::fire_leaf_hooks(&rm);
    detail::BackwardScope::run_end_callbacks();
    return;
  }
  Node* root_node = rm.grad_fn.get();
  std::vector<Node*> order = topological_order(root_node);
  const detail::PassHooks hooks = detail::plan_hooks(order);
  detail::backward_state().nodes_total = static_cast<int64_t>(order.size());
  const bool root_kept = rm.retains_grad;
  if (rm.grad && root_kept)
    backend::add_inplace_any(*rm.grad, seed);
  else
    rm.grad = std::make_shared<TensorBase>(seed);
  for (size_t i = 0; i < order.size(); ++i) {
    Node* n = order[i];
    AutogradMeta* out = n->output();
    if (out->grad) n->apply();
    if (!retain_graph) n->release();
    if (!out->retains_grad) out->grad = nullptr;  // intermediate: its consumers are done with it
    detail::backward_state().nodes_run = static_cast<int64_t>(i + 1);
    if (!hooks.empty)
      for (const auto& leaf : hooks.after[i]) detail::fire(leaf.first, leaf.second);
  }
  detail::BackwardScope::run_end_callbacks();
}

}  // namespace autograd

template <typename T>
void Tensor<T>::backward() const {
  autograd::backward(*this);
}

}  // namespace RESNET_ABI
}  // namespace resnet
