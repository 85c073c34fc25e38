// Module: the base of every layer and network. A module registers its parameters, buffers and children by
// name, so optimizers and checkpoints walk them as "layer1.0.conv1.weight" (torchvision's state_dict
// names), and it has a training flag that train()/eval() set for the whole tree.
//
// The registry is the only place a child lives: a typed member is a Child<M>, a handle that reads its
// module from the registry, and assigning to it (`net->fc = std::make_shared<nn::Linear<float>>(512, 3)`)
// is replace_module("fc", ...). Parameter and buffer members are registered by address, so assigning a new
// tensor to `conv->weight` is what named_parameters() and state_dict() see. Nothing can go stale.
//
// Parameters and buffers have type P = acc_t<T> (float for 16-bit activations: master weights).
#pragma once

#include "resnet/core/abi.hpp"

#include <deque>
#include <memory>
#include <string>
#include <type_traits>
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

template <typename M>
class Child;

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
                          std::vector<LayerSummary>& rows) const;

  // ---- modes ----
  // A module pinned with keep_eval() stays in eval mode (with its subtree) whatever train() says: frozen
  // BatchNorm keeps using, and no longer updates, its running statistics while the rest trains.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void keep_eval(bool on = true);
  bool keeps_eval() const { return keep_eval_; }

  // Sets requires_grad on every parameter of the subtree (false: frozen; optimizers skip it).
  Module& requires_grad_(bool on = true);

  // Whether this module was changed for inference only (a BatchNorm folded into its convolution): such a
  // model computes the same outputs but its state_dict is not the trained model's, so checkpoints refuse it.
  virtual bool inference_only() const { return false; }
  bool any_inference_only() const;

  // ---- traversal ----
  std::vector<std::pair<std::string, Tensor<P>>> named_parameters(const std::string& prefix = "") const;
  std::vector<Tensor<P>> parameters() const;
  std::vector<std::pair<std::string, TensorBase>> named_buffers(const std::string& prefix = "") const;
  // Parameters and buffers together, each module's own entries before its children's (torchvision's order).
  std::vector<std::pair<std::string, TensorBase>> state_dict(const std::string& prefix = "") const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }
  // Every module of the subtree with its dotted name, this one first (as "" or `prefix`), parents before
  // children.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules(const std::string& prefix = "");
  // The child at a dotted path ("layer1.0.conv1"), or null.
  std::shared_ptr<Module> find_module(const std::string& path) const;

  // Replaces the child at a dotted path ("fc", "layer4.1.bn2"). Every path sees the new module at once:
  // forward, parameters, buffers, state_dict, train()/eval(), summaries, checkpoints. The new module takes
  // this module's training mode and device. A typed member (Child<Linear<T>>) only takes a module of its
  // type; optimizers built before hold the old parameters, so build them after replacing.
  template <typename M>
  std::shared_ptr<M> replace_module(const std::string& path, std::shared_ptr<M> m);

  int64_t num_parameters() const;
  int64_t own_parameter_count() const;

  // Sets every parameter gradient to zero (keeping the buffers: no allocation in the steady state).
  void zero_grad();

  // Moves parameters, their gradients and buffers to `device`, in place (optimizers keep their handles).
  void to(Device device);
  Device device() const { return device_; }
  // The memory format the module computes in (MemoryFormat::ChannelsLast: NHWC activations on the CPU, as
  // PyTorch's model.to(memory_format=torch.channels_last)). A model converts its input once (ResNet's
  // forward); every op then keeps its input's format. Parameters stay row-major (OIHW convolution weights,
  // torchvision's layout: oneDNN reorders weights into its own blocked layout from either), so state_dict
  // and checkpoints are the same in both formats. CUDA devices compute in NHWC only with
  // cuda::set_channels_last(true) (off by default); off, they compute in NCHW whatever this says.
  void to(MemoryFormat format);
  MemoryFormat memory_format() const { return memory_format_; }

 protected:
  // Registers the member `slot` (set to `value`): the member is the registry entry, so assigning a new
  // tensor to it later is what every traversal sees.
  Tensor<P>& register_parameter(const std::string& name, Tensor<P>& slot, Tensor<P> value);
  // A parameter without a member of its own (kept here).
  Tensor<P>& register_parameter(const std::string& name, Tensor<P> value);
  // host_only buffers (counters) stay on the CPU whatever device the module moves to. `slot` is a member.
  template <typename B>
  void register_buffer(const std::string& name, B& slot, bool host_only = false);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m);
  // Registers `m` and binds the typed member `handle` to its registry slot.
  template <typename M, typename M2>
  std::shared_ptr<M> register_module(const std::string& name, Child<M>& handle, std::shared_ptr<M2> m);
  // Summary row helper for leaf modules.
  void add_row(std::vector<LayerSummary>& rows, const std::string& name, int depth, const Shape& out,
               int64_t macs) const {
    rows.push_back(LayerSummary{name, type_name(), out, own_parameter_count(), macs, depth});
  }
  static std::string join(const std::string& prefix, const std::string& name) {
    return prefix.empty() ? name : prefix + "." + name;
  }

 private:
  template <typename M>
  friend class Child;

  struct Buffer {
    std::string name;
    TensorBase* tensor;
    bool host_only;
  };
  void check_new_name(const std::string& name) const;
  // A new child follows its parent's mode and device.
  void adopt(Module& m);
  void collect_parameters(const std::string& prefix,
                          std::vector<std::pair<std::string, Tensor<P>>>& out) const;
  void collect_buffers(const std::string& prefix, std::vector<std::pair<std::string, TensorBase>>& out) const;
  void collect_state(const std::string& prefix, std::vector<std::pair<std::string, TensorBase>>& out) const;
  void collect_modules(const std::string& prefix,
                       std::vector<std::pair<std::string, std::shared_ptr<Module>>>& out) const;

  std::vector<std::pair<std::string, Tensor<P>*>> params_;
  std::deque<Tensor<P>> owned_params_;  // a deque: addresses stay put as it grows
  std::vector<Buffer> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::vector<bool (*)(const Module*)> accepts_;  // per child: null (any module) or the typed member's check
  bool training_ = true;
  bool keep_eval_ = false;
  Device device_ = Device::cpu();
  MemoryFormat memory_format_ = MemoryFormat::Contiguous;
};

template <typename T>
Shape Module<T>::summarize(const Shape& in, const std::string& name, int depth,
                           std::vector<LayerSummary>& rows) const {
  (void)in;
  (void)name;
  (void)depth;
  (void)rows;
  RESNET_FAIL(type_name(), " does not implement summarize()");
}

template <typename T>
void Module<T>::train(bool on) {
  training_ = on && !keep_eval_;
  for (auto& c : children_) c.second->train(training_);
}

template <typename T>
void Module<T>::keep_eval(bool on) {
  keep_eval_ = on;
  if (on) train(false);
}

template <typename T>
auto Module<T>::requires_grad_(bool on) -> Module& {
  for (auto& kv : named_parameters())
    if (kv.second.defined()) kv.second.set_requires_grad(on);
  return *this;
}

template <typename T>
bool Module<T>::any_inference_only() const {
  if (inference_only()) return true;
  for (auto& c : children_)
    if (c.second->any_inference_only()) return true;
  return false;
}

template <typename T>
auto Module<T>::named_parameters(const std::string& prefix) const
    -> std::vector<std::pair<std::string, Tensor<P>>> {
  std::vector<std::pair<std::string, Tensor<P>>> out;
  collect_parameters(prefix, out);
  return out;
}

template <typename T>
auto Module<T>::parameters() const -> std::vector<Tensor<P>> {
  std::vector<Tensor<P>> out;
  for (auto& kv : named_parameters()) out.push_back(kv.second);
  return out;
}

template <typename T>
auto Module<T>::named_buffers(const std::string& prefix) const
    -> std::vector<std::pair<std::string, TensorBase>> {
  std::vector<std::pair<std::string, TensorBase>> out;
  collect_buffers(prefix, out);
  return out;
}

template <typename T>
auto Module<T>::state_dict(const std::string& prefix) const
    -> std::vector<std::pair<std::string, TensorBase>> {
  std::vector<std::pair<std::string, TensorBase>> out;
  collect_state(prefix, out);
  return out;
}

template <typename T>
auto Module<T>::named_modules(const std::string& prefix)
    -> std::vector<std::pair<std::string, std::shared_ptr<Module>>> {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  out.emplace_back(prefix, std::shared_ptr<Module>(std::shared_ptr<Module>(), this));  // non-owning
  collect_modules(prefix, out);
  return out;
}

template <typename T>
auto Module<T>::find_module(const std::string& path) const -> std::shared_ptr<Module> {
  const size_t dot = path.find('.');
  const std::string head = path.substr(0, dot);
  for (auto& c : children_)
    if (c.first == head)
      return dot == std::string::npos ? c.second : c.second->find_module(path.substr(dot + 1));
  return nullptr;
}

template <typename T>
template <typename M>
auto Module<T>::replace_module(const std::string& path, std::shared_ptr<M> m) -> std::shared_ptr<M> {
  static_assert(std::is_base_of<Module, M>::value, "replace_module: M must derive from Module<T>");
  RESNET_CHECK(m != nullptr, "replace_module: null module for '", path, "'");
  const size_t dot = path.find('.');
  if (dot != std::string::npos) {
    std::shared_ptr<Module> parent = find_module(path.substr(0, dot));
    RESNET_CHECK(parent != nullptr, "replace_module: ", type_name(), " has no child '", path.substr(0, dot),
                 "'");
    return parent->replace_module(path.substr(dot + 1), std::move(m));
  }
  for (size_t i = 0; i < children_.size(); ++i) {
    if (children_[i].first != path) continue;
    RESNET_CHECK(!accepts_[i] || accepts_[i](m.get()), "replace_module: '", path, "' of ", type_name(),
                 " is a typed member holding a ", children_[i].second->type_name(), "; a ", m->type_name(),
                 " does not fit it");
    adopt(*m);
    children_[i].second = m;
    return m;
  }
  RESNET_FAIL("replace_module: ", type_name(), " has no child '", path, "'");
}

template <typename T>
int64_t Module<T>::num_parameters() const {
  int64_t n = 0;
  for (auto& kv : named_parameters()) n += kv.second.numel();
  return n;
}

template <typename T>
int64_t Module<T>::own_parameter_count() const {
  int64_t n = 0;
  for (auto& kv : params_)
    if (kv.second->defined()) n += kv.second->numel();
  return n;
}

template <typename T>
void Module<T>::zero_grad() {
  for (auto& kv : named_parameters()) {
    Tensor<P> g = kv.second.grad();
    if (g.defined()) g.zero_();
  }
}

template <typename T>
void Module<T>::to(Device device) {
  for (auto& kv : params_)
    if (kv.second->defined()) kv.second->move_storage_to(device);
  for (auto& b : buffers_)
    if (!b.host_only && b.tensor->defined()) b.tensor->move_storage_to(device);
  for (auto& c : children_) c.second->to(device);
  device_ = device;
}

template <typename T>
void Module<T>::to(MemoryFormat format) {
  memory_format_ = format;
  for (auto& c : children_) c.second->to(format);
}

template <typename T>
auto Module<T>::register_parameter(const std::string& name, Tensor<P>& slot, Tensor<P> value) -> Tensor<P>& {
  check_new_name(name);
  value.set_requires_grad(true);
  slot = std::move(value);
  params_.emplace_back(name, &slot);
  return slot;
}

template <typename T>
auto Module<T>::register_parameter(const std::string& name, Tensor<P> value) -> Tensor<P>& {
  owned_params_.emplace_back();
  return register_parameter(name, owned_params_.back(), std::move(value));
}

template <typename T>
template <typename B>
void Module<T>::register_buffer(const std::string& name, B& slot, bool host_only) {
  static_assert(std::is_base_of<TensorBase, B>::value, "register_buffer: a tensor member");
  check_new_name(name);
  buffers_.push_back(Buffer{name, &slot, host_only});
}

template <typename T>
template <typename M>
auto Module<T>::register_module(const std::string& name, std::shared_ptr<M> m) -> std::shared_ptr<M> {
  static_assert(std::is_base_of<Module, M>::value, "register_module: M must derive from Module<T>");
  RESNET_CHECK(m != nullptr, "register_module: null module '", name, "'");
  check_new_name(name);
  adopt(*m);
  children_.emplace_back(name, m);
  accepts_.push_back(nullptr);
  return m;
}

template <typename T>
template <typename M, typename M2>
auto Module<T>::register_module(const std::string& name, Child<M>& handle, std::shared_ptr<M2> m)
    -> std::shared_ptr<M> {
  static_assert(std::is_base_of<M, M2>::value, "register_module: the module does not fit the member");
  RESNET_CHECK(handle.owner_ == nullptr, "register_module: the member for '", name, "' is already bound");
  register_module(name, std::shared_ptr<Module>(m));
  accepts_.back() = [](const Module* p) { return dynamic_cast<const M*>(p) != nullptr; };
  handle.owner_ = this;
  handle.slot_ = children_.size() - 1;
  return handle.ptr();
}

template <typename T>
void Module<T>::check_new_name(const std::string& name) const {
  RESNET_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name(), ": bad entry name '", name,
               "' (non-empty, no '.')");
  for (auto& kv : params_) RESNET_CHECK(kv.first != name, type_name(), ": '", name, "' registered twice");
  for (auto& b : buffers_) RESNET_CHECK(b.name != name, type_name(), ": '", name, "' registered twice");
  for (auto& c : children_) RESNET_CHECK(c.first != name, type_name(), ": '", name, "' registered twice");
}

template <typename T>
void Module<T>::adopt(Module& m) {
  m.train(training_);
  if (m.device_ != device_) m.to(device_);
  if (m.memory_format_ != memory_format_) m.to(memory_format_);
}

template <typename T>
void Module<T>::collect_parameters(const std::string& prefix,
                                   std::vector<std::pair<std::string, Tensor<P>>>& out) const {
  for (auto& kv : params_) out.emplace_back(join(prefix, kv.first), *kv.second);
  for (auto& c : children_) c.second->collect_parameters(join(prefix, c.first), out);
}

template <typename T>
void Module<T>::collect_buffers(const std::string& prefix,
                                std::vector<std::pair<std::string, TensorBase>>& out) const {
  for (auto& b : buffers_) out.emplace_back(join(prefix, b.name), *b.tensor);
  for (auto& c : children_) c.second->collect_buffers(join(prefix, c.first), out);
}

template <typename T>
void Module<T>::collect_state(const std::string& prefix,
                              std::vector<std::pair<std::string, TensorBase>>& out) const {
  for (auto& kv : params_) out.emplace_back(join(prefix, kv.first), *kv.second);
  for (auto& b : buffers_) out.emplace_back(join(prefix, b.name), *b.tensor);
  for (auto& c : children_) c.second->collect_state(join(prefix, c.first), out);
}

template <typename T>
void Module<T>::collect_modules(const std::string& prefix,
                                std::vector<std::pair<std::string, std::shared_ptr<Module>>>& out) const {
  for (auto& c : children_) {
    out.emplace_back(join(prefix, c.first), c.second);
    c.second->collect_modules(join(prefix, c.first), out);
  }
}

// A typed member that is a view of its parent's registry slot: `fc->weight` reads the registered module,
// `fc = std::make_shared<Linear<float>>(512, 3)` replaces it there. Unbound (never registered: an optional
// child such as a block without a projection) it is false. Not copyable: copy the module pointer (ptr()).
template <typename M>
class Child {
 public:
  using Owner = Module<typename M::value_type>;
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child& other) { return *this = other.ptr(); }
  template <typename M2, typename = std::enable_if_t<std::is_base_of<M, M2>::value>>
  Child& operator=(std::shared_ptr<M2> m) {
    RESNET_CHECK(owner_ != nullptr, "cannot assign a ", m ? m->type_name() : std::string("null module"),
                 " to an unregistered child member");
    owner_->replace_module(owner_->children_[slot_].first, std::shared_ptr<M>(std::move(m)));
    return *this;
  }

  M* get() const { return owner_ ? static_cast<M*>(owner_->children_[slot_].second.get()) : nullptr; }
  std::shared_ptr<M> ptr() const {
    return owner_ ? std::static_pointer_cast<M>(owner_->children_[slot_].second) : std::shared_ptr<M>();
  }
  operator std::shared_ptr<M>() const { return ptr(); }  // NOLINT: pass it where a module pointer goes
  M* operator->() const {
    M* p = get();
    RESNET_CHECK(p != nullptr, "use of an unregistered child member");
    return p;
  }
  M& operator*() const { return *operator->(); }
  explicit operator bool() const { return get() != nullptr; }
  bool operator==(std::nullptr_t) const { return get() == nullptr; }
  bool operator!=(std::nullptr_t) const { return get() != nullptr; }
  const std::string& name() const {
    static const std::string none;
    return owner_ ? owner_->children_[slot_].first : none;
  }

 private:
  friend Owner;
  Owner* owner_ = nullptr;
  size_t slot_ = 0;
};

}  // namespace nn
}  // namespace RESNET_ABI
}  // namespace resnet
