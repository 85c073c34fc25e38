// Tensor: a shape, strides and an offset into shared Storage, plus the autograd slot.
//
// TensorBase is the untyped handle (what checkpoints, optimizers' state and the tape pass around);
// Tensor<T> is the typed view users hold. Copying a handle shares the data (like torch.Tensor); clone()
// copies it. Views (reshape of a contiguous tensor, slices) share storage with their base.
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "resnet/core/device.hpp"
#include "resnet/core/dtype.hpp"
#include "resnet/core/error.hpp"
#include "resnet/core/random.hpp"
#include "resnet/core/shape.hpp"
#include "resnet/core/storage.hpp"

namespace resnet {
inline namespace RESNET_ABI {

namespace autograd {
class Node;
}

class TensorBase;

// How a rank-4 tensor [N, C, H, W] lies in memory (PyTorch's torch.memory_format): Contiguous is row-major
// (NCHW), ChannelsLast keeps the logical NCHW shape with NHWC strides. is_contiguous() always means
// row-major; the CPU backend takes either format, and an op's outputs take its input's format.
enum class MemoryFormat { Contiguous, ChannelsLast };
inline const char* memory_format_name(MemoryFormat f) {
  return f == MemoryFormat::ChannelsLast ? "channels_last" : "contiguous";
}
// The memory format CPU training uses unless told otherwise, chosen by measurement (benchmarks/RESULTS.md,
// "Channels-last and bfloat16 on the CPU"). float32: NCHW, faster on the AVX2 EPYC and level with NHWC on
// the AVX-512-BF16 Xeon (oneDNN 2.6's blocked kernels are as fast as its nhwc ones there, slower on AVX2).
// bfloat16: NHWC, 1.01-1.46x NCHW on that Xeon, because BatchNorm, pooling and the loss read channels-last
// bfloat16 natively and NCHW bfloat16 through float copies.
constexpr MemoryFormat kCpuTrainingMemoryFormat = MemoryFormat::Contiguous;
constexpr MemoryFormat cpu_training_memory_format(bool bfloat16) {
  return bfloat16 ? MemoryFormat::ChannelsLast : kCpuTrainingMemoryFormat;
}

// What the tape knows about a tensor. Leaves that require grad (parameters) keep their gradient here;
// an op's output points at the node that made it.
struct AutogradMeta {
  bool requires_grad = false;
  bool retains_grad = false;
  std::shared_ptr<TensorBase> grad;  // null until a backward pass writes it
  std::shared_ptr<autograd::Node> grad_fn;
  bool is_leaf() const { return grad_fn == nullptr; }
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  std::vector<int64_t> strides;  // in elements
  DType dtype = DType::F32;
  std::shared_ptr<AutogradMeta> autograd;
};

class TensorBase {
 public:
  TensorBase() = default;
  explicit TensorBase(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // A new, uninitialised, contiguous tensor.
  static TensorBase empty(const Shape& shape, DType dtype, Device device = Device::cpu(),
                          MemoryFormat format = MemoryFormat::Contiguous) {
    for (int64_t d : shape.dims()) RESNET_CHECK(d >= 0, "negative dimension in shape ", shape);
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = std::make_shared<Storage>(static_cast<size_t>(shape.numel()) * dtype_size(dtype), device);
    impl->shape = shape;
    impl->strides = strides_for(shape, format);
    impl->dtype = dtype;
    return TensorBase(std::move(impl));
  }

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return checked()->shape; }
  int64_t dim(int64_t i) const { return shape().dim(i); }
  int64_t rank() const { return shape().rank(); }
  int64_t numel() const { return shape().numel(); }
  DType dtype() const { return checked()->dtype; }
  Device device() const { return checked()->storage->device(); }
  const std::vector<int64_t>& strides() const { return checked()->strides; }
  int64_t offset() const { return checked()->offset; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  void* raw_data() const {
    auto* i = checked();
    return static_cast<char*>(i->storage->data()) + i->offset * static_cast<int64_t>(dtype_size(i->dtype));
  }
  const std::shared_ptr<TensorImpl>& impl() const { return impl_; }
  const std::shared_ptr<Storage>& storage() const { return checked()->storage; }
  bool same_storage(const TensorBase& o) const { return storage() == o.storage(); }
  std::string describe() const {
    if (!defined()) return "undefined tensor";
    return std::string(dtype_name(dtype())) + shape().to_string() + " on " + device().to_string();
  }

  bool is_contiguous() const {
    const auto& s = shape();
    const auto& st = strides();
    int64_t expect = 1;
    for (int64_t i = s.rank() - 1; i >= 0; --i) {
      if (s[i] != 1 && st[static_cast<size_t>(i)] != expect) return false;
      expect *= s[i];
    }
    return true;
  }
  // Whether the elements lie densely in the given format (dimensions of size 1 are ignored, as in
  // is_contiguous(): a tensor can be both). ChannelsLast needs rank 4.
  bool is_contiguous(MemoryFormat format) const {
    if (format == MemoryFormat::Contiguous) return is_contiguous();
    if (rank() != 4) return false;
    const auto& s = shape();
    const auto& st = strides();
    int64_t expect = 1;
    for (int64_t i : {1, 3, 2, 0}) {
      if (s[i] != 1 && st[static_cast<size_t>(i)] != expect) return false;
      expect *= s[i];
    }
    return true;
  }
  // Dense in one of the two formats: what the CPU backend accepts.
  bool is_dense() const { return is_contiguous() || is_contiguous(MemoryFormat::ChannelsLast); }
  // The format of a dense tensor: ChannelsLast when the memory is NHWC and not also NCHW, or when the
  // strides are exactly the channels-last ones (a [N, C, 1, 1] or [N, 1, H, W] tensor made channels-last
  // stays so, as in PyTorch); Contiguous otherwise.
  MemoryFormat suggest_memory_format() const {
    if (rank() != 4 || !is_contiguous(MemoryFormat::ChannelsLast)) return MemoryFormat::Contiguous;
    if (!is_contiguous() || strides() == shape().channels_last_strides()) return MemoryFormat::ChannelsLast;
    return MemoryFormat::Contiguous;
  }
  // Both dense in one format: then element i of one is at the same offset as element i of the other, and a
  // flat loop over their memory pairs the right elements.
  bool same_layout(const TensorBase& o) const {
    if (shape() != o.shape()) return false;
    return (is_contiguous() && o.is_contiguous()) ||
           (is_contiguous(MemoryFormat::ChannelsLast) && o.is_contiguous(MemoryFormat::ChannelsLast));
  }
  static std::vector<int64_t> strides_for(const Shape& shape, MemoryFormat format) {
    if (format == MemoryFormat::Contiguous) return shape.contiguous_strides();
    RESNET_CHECK(shape.rank() == 4, "channels_last needs a tensor of rank 4 [N, C, H, W], got shape ", shape);
    return shape.channels_last_strides();
  }
  // Lays a new, not yet written tensor out in another format (the bytes are the same; only their meaning
  // changes). Every handle sharing this tensor sees it: used for a gradient slot the tape just allocated.
  void restride_unwritten_(MemoryFormat format) {
    auto* i = checked();
    RESNET_CHECK(i->offset == 0 && is_dense() &&
                     i->storage->nbytes() == static_cast<size_t>(numel()) * dtype_size(i->dtype),
                 "restride: tensor must own its whole dense storage, got ", describe());
    i->strides = strides_for(i->shape, format);
  }

  // --- autograd slot ---
  bool requires_grad() const { return impl_ && impl_->autograd && impl_->autograd->requires_grad; }
  // Marks a leaf as a parameter-like tensor whose gradient the tape should compute.
  TensorBase& set_requires_grad(bool on) {
    RESNET_CHECK(dtype_is_floating(dtype()), "only floating-point tensors can require grad, got ",
                 describe());
    auto& m = meta();
    RESNET_CHECK(m.is_leaf() || on, "cannot clear requires_grad on a non-leaf tensor");
    m.requires_grad = on;
    return *this;
  }
  // Keeps the gradient of a non-leaf tensor after backward (leaves always keep theirs).
  void retain_grad() { meta().retains_grad = true; }
  bool has_grad() const { return impl_ && impl_->autograd && impl_->autograd->grad; }
  TensorBase grad_base() const { return has_grad() ? *impl_->autograd->grad : TensorBase(); }
  void set_grad_base(const TensorBase& g) {
    meta().grad = g.defined() ? std::make_shared<TensorBase>(g) : nullptr;
  }
  std::shared_ptr<autograd::Node> grad_fn() const {
    return impl_ && impl_->autograd ? impl_->autograd->grad_fn : nullptr;
  }
  bool is_leaf() const { return !grad_fn(); }
  AutogradMeta& meta() {
    auto* i = checked();
    if (!i->autograd) i->autograd = std::make_shared<AutogradMeta>();
    return *i->autograd;
  }
  const std::shared_ptr<AutogradMeta>& meta_ptr() {
    meta();
    return impl_->autograd;
  }

  // A handle to the same data without autograd history (like torch's detach()).
  TensorBase detach_base() const {
    auto impl = std::make_shared<TensorImpl>(*checked());
    impl->autograd = nullptr;
    return TensorBase(std::move(impl));
  }

  // A view with a new shape over the same contiguous data (no autograd; see resnet::reshape for that).
  TensorBase view_base(const Shape& new_shape) const {
    RESNET_CHECK(new_shape.numel() == numel(), "view: cannot view ", describe(), " as ", new_shape, " (",
                 new_shape.numel(), " elements, tensor has ", numel(), ")");
    RESNET_CHECK(is_contiguous(), "view: tensor ", describe(), " is not contiguous; call contiguous() first");
    auto impl = std::make_shared<TensorImpl>(*checked());
    impl->autograd = nullptr;
    impl->shape = new_shape;
    impl->strides = new_shape.contiguous_strides();
    return TensorBase(std::move(impl));
  }

  // A contiguous view of `shape` at element `offset` of this contiguous tensor's data (no autograd): how
  // DataParallel lays each gradient into its flat bucket.
  TensorBase view_at(int64_t offset, const Shape& shape) const {
    RESNET_CHECK(is_contiguous() && offset >= 0 && offset + shape.numel() <= numel(), "view_at: ", shape,
                 " at ", offset, " does not fit in ", describe());
    auto impl = std::make_shared<TensorImpl>(*checked());
    impl->autograd = nullptr;
    impl->offset += offset;
    impl->shape = shape;
    impl->strides = shape.contiguous_strides();
    return TensorBase(std::move(impl));
  }

  // Makes this tensor's storage live on `device` (in place: every handle and view sees the move).
  // Used by Module::to so parameters keep their identity for optimizers.
  void move_storage_to(Device device) {
    if (device == this->device()) return;
    auto* i = checked();
    RESNET_CHECK(is_contiguous() && i->offset == 0 &&
                     i->storage->nbytes() == static_cast<size_t>(numel()) * dtype_size(i->dtype),
                 "move_storage_to: tensor must own its whole contiguous storage, got ", describe());
    auto fresh = std::make_shared<Storage>(i->storage->nbytes(), device);
    copy_bytes(fresh->data(), device, i->storage->data(), i->storage->device(), i->storage->nbytes());
    i->storage = std::move(fresh);
    if (i->autograd && i->autograd->grad) i->autograd->grad->move_storage_to(device);
  }

 protected:
  TensorImpl* checked() const {
    RESNET_CHECK(impl_ != nullptr, "use of an undefined (empty) tensor handle");
    return impl_.get();
  }
  std::shared_ptr<TensorImpl> impl_;
};

// Copies src into dst element by element; both must have the same shape and dtype. Handles any strides on
// the CPU and contiguous tensors across devices.
void copy_into(TensorBase& dst, const TensorBase& src);

template <typename T>
class Tensor : public TensorBase {
 public:
  using value_type = T;
  static constexpr DType kDType = dtype_of<T>::value;

  Tensor() = default;
  // Typed handle over an untyped one; checks the dtype.
  explicit Tensor(const TensorBase& base);

  static Tensor empty(const Shape& shape, Device device = Device::cpu(),
                      MemoryFormat format = MemoryFormat::Contiguous) {
    return Tensor(TensorBase::empty(shape, kDType, device, format));
  }
  static Tensor zeros(const Shape& shape, Device device = Device::cpu());
  static Tensor full(const Shape& shape, T value, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, Device device = Device::cpu()) {
    return full(shape, T(1.0f), device);
  }
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = Device::cpu());
  // Normal(mean, stddev) values drawn on the host from `gen`, then moved to `device`.
  static Tensor randn(const Shape& shape, Generator& gen = default_generator(), double mean = 0.0,
                      double stddev = 1.0, Device device = Device::cpu());
  static Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen = default_generator(),
                        Device device = Device::cpu());

  T* data() const { return static_cast<T*>(raw_data()); }

  void zero_();
  // Fills with a value (CPU tensors; device tensors go through the host).
  void fill_(T value);

  // The single element of a one-element tensor, copied to the host.
  T item() const;
  // All elements in row-major order, copied to the host.
  std::vector<T> to_vector() const;

  // Explicit copy to another device (a no-op handle copy when already there).
  Tensor to(Device device) const;
  Tensor contiguous() const;
  // This tensor in the given memory format: itself when already so, else a copy (no autograd history; see
  // resnet::to_memory_format for the differentiable form).
  Tensor contiguous(MemoryFormat format) const;
  Tensor to(MemoryFormat format) const { return contiguous(format); }
  // A deep copy without autograd history, in this tensor's memory format.
  Tensor clone() const;
  Tensor detach() const { return Tensor(detach_base()); }
  Tensor view(const Shape& s) const { return Tensor(view_base(s)); }

  // Element access on CPU tensors, with strides (tests and tools; kernels use data()).
  T& at(std::initializer_list<int64_t> idx) const;

  Tensor grad() const { return Tensor(grad_base()); }
  Tensor& requires_grad_(bool on = true);
  // Backward pass from this scalar (defined in autograd/engine.hpp).
  void backward() const;
};

template <typename T>
Tensor<T>::Tensor(const TensorBase& base) : TensorBase(base) {
  if (base.defined())
    RESNET_CHECK(base.dtype() == kDType, "tensor of dtype ", dtype_name(base.dtype()), " used as ",
                 dtype_name(kDType));
}

template <typename T>
auto Tensor<T>::zeros(const Shape& shape, Device device) -> Tensor {
  Tensor t = empty(shape, device);
  t.zero_();
  return t;
}

template <typename T>
auto Tensor<T>::full(const Shape& shape, T value, Device device) -> Tensor {
  Tensor t = empty(shape, Device::cpu());
  std::fill(t.data(), t.data() + t.numel(), value);
  return device.is_cpu() ? t : t.to(device);
}

template <typename T>
auto Tensor<T>::from_vector(const std::vector<T>& values, const Shape& shape, Device device) -> Tensor {
  RESNET_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), "from_vector: ", values.size(),
               " values do not fill shape ", shape);
  Tensor t = empty(shape, Device::cpu());
  std::copy(values.begin(), values.end(), t.data());
  return device.is_cpu() ? t : t.to(device);
}

template <typename T>
auto Tensor<T>::randn(const Shape& shape, Generator& gen, double mean, double stddev, Device device)
    -> Tensor {
  Tensor t = empty(shape, Device::cpu());
  T* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(gen.normal(mean, stddev));
  return device.is_cpu() ? t : t.to(device);
}

template <typename T>
auto Tensor<T>::uniform(const Shape& shape, double lo, double hi, Generator& gen, Device device) -> Tensor {
  Tensor t = empty(shape, Device::cpu());
  T* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(gen.uniform(lo, hi));
  return device.is_cpu() ? t : t.to(device);
}

template <typename T>
void Tensor<T>::zero_() {
  if (numel() == 0) return;
  RESNET_CHECK(is_dense(), "zero_: tensor must be contiguous, got ", describe());
  if (device().is_cpu()) {
    std::memset(raw_data(), 0, nbytes());
  } else {
#if RESNET_WITH_CUDA
    cuda::fill_zero_bytes(raw_data(), device().index, nbytes());
#endif
  }
}

template <typename T>
void Tensor<T>::fill_(T value) {
  if (device().is_cpu()) {
    RESNET_CHECK(is_dense(), "fill_: tensor must be contiguous, got ", describe());
    std::fill(data(), data() + numel(), value);
  } else {
    Tensor h = full(shape(), value);
    copy_into(*this, h);
  }
}

template <typename T>
T Tensor<T>::item() const {
  RESNET_CHECK(numel() == 1, "item() needs a one-element tensor, got shape ", shape());
  if (device().is_cpu()) return data()[0];
  T v;
  copy_bytes(&v, Device::cpu(), raw_data(), device(), sizeof(T));
  return v;
}

template <typename T>
auto Tensor<T>::to_vector() const -> std::vector<T> {
  Tensor h = to(Device::cpu()).contiguous();
  return std::vector<T>(h.data(), h.data() + h.numel());
}

template <typename T>
auto Tensor<T>::to(Device device) const -> Tensor {
  if (device == this->device()) return *this;
  Tensor src = contiguous();
  Tensor dst = empty(shape(), device);
  copy_bytes(dst.raw_data(), device, src.raw_data(), src.device(), nbytes());
  return dst;
}

template <typename T>
auto Tensor<T>::contiguous() const -> Tensor {
  if (is_contiguous()) return *this;
  Tensor dst = empty(shape(), device());
  copy_into(dst, *this);
  return dst;
}

template <typename T>
auto Tensor<T>::contiguous(MemoryFormat format) const -> Tensor {
  if (is_contiguous(format)) return *this;
  Tensor dst = empty(shape(), device(), format);
  copy_into(dst, *this);
  return dst;
}

template <typename T>
auto Tensor<T>::clone() const -> Tensor {
  Tensor dst = empty(shape(), device(), is_dense() ? suggest_memory_format() : MemoryFormat::Contiguous);
  copy_into(dst, *this);
  return dst;
}

template <typename T>
auto Tensor<T>::at(std::initializer_list<int64_t> idx) const -> T& {
  RESNET_CHECK(device().is_cpu(), "at() needs a CPU tensor, got ", describe());
  RESNET_CHECK(static_cast<int64_t>(idx.size()) == rank(), "at(): ", idx.size(), " indices for shape ",
               shape());
  int64_t off = 0;
  int64_t k = 0;
  for (int64_t i : idx) {
    RESNET_CHECK(i >= 0 && i < shape()[k], "at(): index ", i, " out of range in dim ", k, " of ", shape());
    off += i * strides()[static_cast<size_t>(k)];
    ++k;
  }
  return data()[off];
}

template <typename T>
auto Tensor<T>::requires_grad_(bool on) -> Tensor& {
  set_requires_grad(on);
  return *this;
}

// ---- copy_into ----
namespace detail {
template <typename T>
void strided_copy(T* dst, const T* src, const std::vector<int64_t>& shape, const std::vector<int64_t>& dst_st,
                  const std::vector<int64_t>& src_st) {
  int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) {
    *dst = *src;
    return;
  }
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (n == 0) return;
  std::vector<int64_t> idx(static_cast<size_t>(rank), 0);
  for (int64_t e = 0; e < n; ++e) {
    int64_t so = 0, doff = 0;
    for (int64_t k = 0; k < rank; ++k) {
      so += idx[static_cast<size_t>(k)] * src_st[static_cast<size_t>(k)];
      doff += idx[static_cast<size_t>(k)] * dst_st[static_cast<size_t>(k)];
    }
    dst[doff] = src[so];
    for (int64_t k = rank - 1; k >= 0; --k) {
      if (++idx[static_cast<size_t>(k)] < shape[static_cast<size_t>(k)]) break;
      idx[static_cast<size_t>(k)] = 0;
    }
  }
}
}  // namespace detail

inline void copy_into(TensorBase& dst, const TensorBase& src) {
  RESNET_CHECK(dst.shape() == src.shape() && dst.dtype() == src.dtype(), "copy: destination ", dst.describe(),
               " does not match source ", src.describe());
  if (dst.numel() == 0) return;
  if (dst.same_layout(src)) {  // dense in one format: the bytes are in the same order
    copy_bytes(dst.raw_data(), dst.device(), src.raw_data(), src.device(), src.nbytes());
    return;
  }
  if (!dst.device().is_cpu() || !src.device().is_cpu()) {
    // Another dense format off the host (channels-last on a GPU): the bytes cross devices in the source's
    // order, then a batched transpose reorders them on whichever side the destination is.
    RESNET_CHECK(dst.is_dense() && src.is_dense(),
                 "copy: strided copies of non-dense tensors are supported on ", "the CPU only (",
                 src.describe(), " -> ", dst.describe(), ")");
    if (dst.device() != src.device()) {
      TensorBase staged =
          TensorBase::empty(src.shape(), src.dtype(), dst.device(), src.suggest_memory_format());
      copy_bytes(staged.raw_data(), dst.device(), src.raw_data(), src.device(), src.nbytes());
      copy_into(dst, staged);
      return;
    }
#if RESNET_WITH_CUDA
    const int64_t n = src.dim(0), c = src.dim(1), hw = src.dim(2) * src.dim(3);
    const bool to_nhwc = src.suggest_memory_format() == MemoryFormat::Contiguous;  // else NHWC -> NCHW
    cuda::transpose_bytes(dst.raw_data(), src.raw_data(), dtype_size(src.dtype()), n, to_nhwc ? c : hw,
                          to_nhwc ? hw : c, dst.device().index);
    return;
#else
    RESNET_FAIL("copy: ", dst.describe(), " is not on the host, and this build has no CUDA support");
#endif
  }
  size_t es = dtype_size(src.dtype());
  const auto& sh = src.shape().dims();
  switch (es) {
    case 1:
      detail::strided_copy(static_cast<uint8_t*>(dst.raw_data()), static_cast<const uint8_t*>(src.raw_data()),
                           sh, dst.strides(), src.strides());
      break;
    case 2:
      detail::strided_copy(static_cast<uint16_t*>(dst.raw_data()),
                           static_cast<const uint16_t*>(src.raw_data()), sh, dst.strides(), src.strides());
      break;
    case 4:
      detail::strided_copy(static_cast<uint32_t*>(dst.raw_data()),
                           static_cast<const uint32_t*>(src.raw_data()), sh, dst.strides(), src.strides());
      break;
    default:
      detail::strided_copy(static_cast<uint64_t*>(dst.raw_data()),
                           static_cast<const uint64_t*>(src.raw_data()), sh, dst.strides(), src.strides());
      break;
  }
}

// Shape checks shared by every op: the message names the op and both shapes.
inline void check_same_shape(const char* op, const TensorBase& a, const TensorBase& b) {
  RESNET_CHECK(a.shape() == b.shape(), op, ": shape mismatch between ", a.shape(), " and ", b.shape());
}
inline void check_same_device(const char* op, const TensorBase& a, const TensorBase& b) {
  RESNET_CHECK(a.device() == b.device(), op, ": tensors on different devices (", a.device().to_string(),
               " and ", b.device().to_string(), "); move them with .to(device) first");
}
inline void check_rank(const char* op, const TensorBase& t, int64_t rank, const char* what) {
  RESNET_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
  RESNET_CHECK(t.rank() == rank, op, ": expected ", what, " of rank ", rank, ", got shape ", t.shape());
}
inline void check_not_empty(const char* op, const TensorBase& t, const char* what) {
  RESNET_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
  RESNET_CHECK(t.numel() > 0, op, ": ", what, " is empty (shape ", t.shape(), ")");
}

}  // namespace RESNET_ABI
}  // namespace resnet
