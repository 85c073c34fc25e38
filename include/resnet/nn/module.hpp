// Module: the base of every layer and network. A module registers its parameters, buffers and children by
// name, so optimizers and checkpoints walk them as "layer1.0.conv1.weight" (torchvision's state_dict
// names), and it has a training flag that train()/eval() set for the whole tree.
//
// Parameters and buffers have type P = acc_t<T> (float for 16-bit activations: master weights).
#pragma once

#include "resnet/core/abi.hpp"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "resnet/ops/ops.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace nn {

// One row of a model summary (see Module::summarize and models/summary.hpp).
struct LayerSummary {
  std::string name;
  std::string type;
  Shape output;
  int64_t params = 0;  // parameters owned by this layer itself
  int64_t macs = 0;    // multiply-accumulates per image
  int depth = 0;
};

template <typename T>
class Module {
 public:
  using value_type = T;
  using P = acc_t<T>;

  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor<T> forward(const Tensor<T>& x) = 0;
  Tensor<T> operator()(const Tensor<T>& x) { return forward(x); }
  virtual std::string type_name() const = 0;

  // Shape inference without computing: appends this module's rows and returns its output shape for an
  // input of shape `in` (batch dimension included). Containers recurse into their children.
  virtual Shape summarize(const Shape& in, const std::string& name, int depth,
                          std::vector<LayerSummary>& rows) const {
    (void)in;
    (void)name;
    (void)depth;
    (void)rows;
    RESNET_FAIL(type_name(), " does not implement summarize()");
  }

  // ---- modes ----
  void train(bool on = true) {
    training_ = on;
    for (auto& c : children_) c.second->train(on);
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // ---- traversal ----
  std::vector<std::pair<std::string, Tensor<P>>> named_parameters(const std::string& prefix = "") const {
    std::vector<std::pair<std::string, Tensor<P>>> out;
    collect_parameters(prefix, out);
    return out;
  }
  std::vector<Tensor<P>> parameters() const {
    std::vector<Tensor<P>> out;
    for (auto& kv : named_parameters()) out.push_back(kv.second);
    return out;
  }
  std::vector<std::pair<std::string, TensorBase>> named_buffers(const std::string& prefix = "") const {
    std::vector<std::pair<std::string, TensorBase>> out;
    collect_buffers(prefix, out);
    return out;
  }
  // Parameters and buffers together, each module's own entries before its children's (torchvision's order).
  std::vector<std::pair<std::string, TensorBase>> state_dict(const std::string& prefix = "") const {
    std::vector<std::pair<std::string, TensorBase>> out;
    collect_state(prefix, out);
    return out;
  }
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }

  int64_t num_parameters() const {
    int64_t n = 0;
    for (auto& kv : named_parameters()) n += kv.second.numel();
    return n;
  }
  int64_t own_parameter_count() const {
    int64_t n = 0;
    for (auto& kv : params_) n += kv.second.numel();
    return n;
  }

  // Sets every parameter gradient to zero (keeping the buffers: no allocation in the steady state).
  void zero_grad() {
    for (auto& kv : named_parameters()) {
      Tensor<P> g = kv.second.grad();
      if (g.defined()) g.zero_();
    }
  }

  // Moves parameters, their gradients and buffers to `device`, in place (optimizers keep their handles).
  void to(Device device) {
    for (auto& kv : params_) kv.second.move_storage_to(device);
    for (auto& b : buffers_)
      if (!b.host_only) b.tensor.move_storage_to(device);
    for (auto& c : children_) c.second->to(device);
    device_ = device;
  }
  Device device() const { return device_; }

 protected:
  Tensor<P>& register_parameter(const std::string& name, Tensor<P> t) {
    t.set_requires_grad(true);
    params_.emplace_back(name, std::move(t));
    return params_.back().second;
  }
  // host_only buffers (counters) stay on the CPU whatever device the module moves to.
  void register_buffer(const std::string& name, TensorBase t, bool host_only = false) {
    buffers_.push_back(Buffer{name, std::move(t), host_only});
  }
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    RESNET_CHECK(m != nullptr, "register_module: null module '", name, "'");
    m->train(training_);
    children_.emplace_back(name, m);
    return m;
  }
  // Summary row helper for leaf modules.
  void add_row(std::vector<LayerSummary>& rows, const std::string& name, int depth, const Shape& out,
               int64_t macs) const {
    rows.push_back(LayerSummary{name, type_name(), out, own_parameter_count(), macs, depth});
  }
  static std::string join(const std::string& prefix, const std::string& name) {
    return prefix.empty() ? name : prefix + "." + name;
  }

 private:
  struct Buffer {
    std::string name;
    TensorBase tensor;
    bool host_only;
  };
  void collect_parameters(const std::string& prefix,
                          std::vector<std::pair<std::string, Tensor<P>>>& out) const {
    for (auto& kv : params_) out.emplace_back(join(prefix, kv.first), kv.second);
    for (auto& c : children_) c.second->collect_parameters(join(prefix, c.first), out);
  }
  void collect_buffers(const std::string& prefix,
                       std::vector<std::pair<std::string, TensorBase>>& out) const {
    for (auto& b : buffers_) out.emplace_back(join(prefix, b.name), b.tensor);
    for (auto& c : children_) c.second->collect_buffers(join(prefix, c.first), out);
  }
  void collect_state(const std::string& prefix, std::vector<std::pair<std::string, TensorBase>>& out) const {
    for (auto& kv : params_) out.emplace_back(join(prefix, kv.first), kv.second);
    for (auto& b : buffers_) out.emplace_back(join(prefix, b.name), b.tensor);
    for (auto& c : children_) c.second->collect_state(join(prefix, c.first), out);
  }

  std::vector<std::pair<std::string, Tensor<P>>> params_;
  std::vector<Buffer> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  Device device_ = Device::cpu();
};

}  // namespace nn
}  // namespace RESNET_ABI
}  // namespace resnet
