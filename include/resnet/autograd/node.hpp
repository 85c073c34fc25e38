// The tape's nodes. Each op that needs gradients records one node: it remembers the autograd slots of
// its inputs (not their data), the tensors its backward needs (saved explicitly in a closure), and a raw
// pointer to its output's slot. The output owns the node (grad_fn); consumers own their inputs' slots, so
// a node reachable from the loss always has a live output slot.
//
// Gradient rule (once, here): gradients ACCUMULATE. A node adds its contribution into each input's
// gradient; a slot that holds no gradient yet is created by the first contribution. Parameter gradients
// therefore sum across backward passes until the optimizer's zero_grad(). Backend functions get
// `accumulate = true` exactly when the slot already holds a gradient (see backend/params.hpp).
#pragma once

#include "resnet/core/abi.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "resnet/autograd/grad_mode.hpp"
#include "resnet/backend/dispatch.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace autograd {

class BackwardContext;

class Node {
 public:
  using BackwardFn = std::function<void(BackwardContext&)>;

  struct Input {
    std::shared_ptr<AutogradMeta> meta;  // null when this input needs no gradient
    Shape shape;
    DType dtype = DType::F32;
    Device device;
  };

  Node(std::string name, std::vector<Input> inputs, AutogradMeta* output, BackwardFn fn)
      : name_(std::move(name)), inputs_(std::move(inputs)), output_(output), fn_(std::move(fn)) {
    for (auto& in : inputs_)
      if (in.meta && in.meta->grad_fn) next_.push_back(in.meta->grad_fn);
  }

  const std::string& name() const { return name_; }
  const std::vector<std::shared_ptr<Node>>& next() const { return next_; }
  const std::vector<Input>& inputs() const { return inputs_; }
  AutogradMeta* output() const { return output_; }
  bool released() const { return !fn_; }

  // Runs the backward closure (the output's gradient must be set).
  inline void apply();
  // Frees saved tensors; the graph cannot be walked again afterwards.
  void release() { fn_ = nullptr; }

 private:
  std::string name_;
  std::vector<Input> inputs_;
  AutogradMeta* output_;
  BackwardFn fn_;
  std::vector<std::shared_ptr<Node>> next_;
};

// What a backward closure sees: the output's gradient and a way to deliver each input's gradient.
class BackwardContext {
 public:
  explicit BackwardContext(Node& node) : node_(node) {}

  const TensorBase& grad_output() const { return *node_.output()->grad; }
  template <typename T>
  Tensor<T> grad_output_as() const {
    return Tensor<T>(grad_output());
  }
  bool needs(size_t i) const { return i < node_.inputs().size() && node_.inputs()[i].meta != nullptr; }

  // The tensor to write input i's gradient into. *accumulate is true when the slot already has a gradient
  // (add into it), false when the returned tensor is new and uninitialised (overwrite it).
  template <typename T>
  Tensor<T> grad_slot(size_t i, bool* accumulate) {
    RESNET_CHECK(needs(i), node_.name(), " backward: input ", i, " needs no gradient");
    const auto& in = node_.inputs()[i];
    auto& meta = *in.meta;
    if (meta.grad) {
      *accumulate = true;
      return Tensor<T>(*meta.grad);
    }
    *accumulate = false;
    Tensor<T> g = Tensor<T>::empty(in.shape, in.device);
    meta.grad = std::make_shared<TensorBase>(g);
    return g;
  }

  // Adds g into input i's gradient. When `exclusive` (nobody else holds g's data) and the slot is empty,
  // the slot takes g itself instead of a copy.
  void accumulate(size_t i, const TensorBase& g, bool exclusive) {
    if (!needs(i)) return;
    const auto& in = node_.inputs()[i];
    RESNET_CHECK(g.shape() == in.shape, node_.name(), " backward: gradient shape ", g.shape(),
                 " does not match input shape ", in.shape);
    auto& meta = *in.meta;
    if (!meta.grad) {
      if (exclusive) {
        meta.grad = std::make_shared<TensorBase>(g);
      } else {
        TensorBase copy = TensorBase::empty(g.shape(), g.dtype(), g.device());
        copy_into(copy, g);
        meta.grad = std::make_shared<TensorBase>(copy);
      }
      return;
    }
    backend::add_inplace_any(*meta.grad, g);
  }

  // Whether the output's gradient may be handed to an input without a copy: the output is an
  // intermediate whose gradient is dropped right after this node runs.
  bool grad_output_disposable() const {
    AutogradMeta* out = node_.output();
    return !out->retains_grad && !out->is_leaf();
  }

 private:
  Node& node_;
};

inline void Node::apply() {
  RESNET_CHECK(fn_ != nullptr, "backward through ", name_,
               " a second time: its saved tensors were freed by the first backward");
  BackwardContext ctx(*this);
  fn_(ctx);
}

inline bool needs_grad(const TensorBase& t) { return t.defined() && t.requires_grad(); }

// Records an op on the tape when grad mode is on and any input needs a gradient. `inputs` lists every
// tensor input in a fixed order (BackwardContext indices follow it); undefined entries are allowed for
// optional inputs. Returns true when recorded.
inline bool record(const char* name, std::initializer_list<TensorBase> inputs, TensorBase& output,
                   Node::BackwardFn fn) {
  if (!grad_enabled()) return false;
  bool any = false;
  for (const auto& t : inputs) any = any || needs_grad(t);
  if (!any) return false;
  std::vector<Node::Input> ins;
  ins.reserve(inputs.size());
  for (auto t : inputs) {
    Node::Input in;
    if (needs_grad(t)) {
      in.meta = t.meta_ptr();
      in.shape = t.shape();
      in.dtype = t.dtype();
      in.device = t.device();
    }
    ins.push_back(std::move(in));
  }
  AutogradMeta& out = output.meta();
  out.requires_grad = true;
  out.grad_fn = std::make_shared<Node>(name, std::move(ins), &out, std::move(fn));
  return true;
}

}  // namespace autograd
}  // namespace RESNET_ABI
}  // namespace resnet
