// backward(): walks the tape from a scalar loss in reverse topological order. Each node runs once, after
// every consumer of its output has delivered its gradient. Intermediate gradients and saved tensors are
// freed as soon as their node has run, so a backward pass holds little more than the forward did.
#pragma once

#include "resnet/core/abi.hpp"

#include <unordered_set>
#include <vector>

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
    if (!root.device().is_cpu()) {
      TensorBase d = TensorBase::empty(root.shape(), root.dtype(), root.device());
      copy_into(d, seed);
      seed = d;
    }
  }
  check_same_shape("backward (seed)", root, seed);
  AutogradMeta& rm = root.meta();
  if (rm.is_leaf()) {  // d(root)/d(root): just accumulate
    if (rm.grad)
      backend::add_inplace_any(*rm.grad, seed);
    else
      rm.grad = std::make_shared<TensorBase>(seed);
    return;
  }
  Node* root_node = rm.grad_fn.get();
  std::vector<Node*> order = topological_order(root_node);
  const bool root_kept = rm.retains_grad;
  if (rm.grad && root_kept)
    backend::add_inplace_any(*rm.grad, seed);
  else
    rm.grad = std::make_shared<TensorBase>(seed);
  for (Node* n : order) {
    AutogradMeta* out = n->output();
    if (out->grad) n->apply();
    if (!retain_graph) n->release();
    if (!out->retains_grad) out->grad = nullptr;  // intermediate: its consumers are done with it
  }
}

}  // namespace autograd

template <typename T>
void Tensor<T>::backward() const {
  autograd::backward(*this);
}

}  // namespace RESNET_ABI
}  // namespace resnet
