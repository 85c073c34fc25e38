// Shape: the sizes of a tensor's dimensions, printed as [2, 3, 4] in error messages.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  int64_t rank() const { return static_cast<int64_t>(dims_.size()); }
  int64_t operator[](int64_t i) const { return dims_[static_cast<size_t>(i)]; }
  int64_t& operator[](int64_t i) { return dims_[static_cast<size_t>(i)]; }
  // Dimension with Python-style negative indexing, checked.
  int64_t dim(int64_t i) const {
    int64_t r = rank();
    int64_t j = i < 0 ? i + r : i;
    RESNET_CHECK(j >= 0 && j < r, "dimension ", i, " out of range for shape ", to_string());
    return dims_[static_cast<size_t>(j)];
  }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims_) n *= d;
    return n;
  }
  const std::vector<int64_t>& dims() const { return dims_; }
  bool operator==(const Shape& o) const { return dims_ == o.dims_; }
  bool operator!=(const Shape& o) const { return dims_ != o.dims_; }

  std::string to_string() const {
    std::string s = "[";
    for (size_t i = 0; i < dims_.size(); ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[i]);
    }
    return s + "]";
  }

  // Row-major (C-contiguous) strides for this shape, in elements.
  std::vector<int64_t> contiguous_strides() const {
    std::vector<int64_t> st(dims_.size());
    int64_t acc = 1;
    for (size_t i = dims_.size(); i-- > 0;) {
      st[i] = acc;
      acc *= dims_[i];
    }
    return st;
  }
  // Channels-last strides of a rank-4 shape [N, C, H, W]: the memory holds N x H x W x C (PyTorch's
  // channels_last). Size-1 dimensions get the strides PyTorch gives them, so the format stays recognisable.
  std::vector<int64_t> channels_last_strides() const {
    RESNET_CHECK(dims_.size() == 4, "channels-last strides need a shape [N, C, H, W], got ", to_string());
    const int64_t C = dims_[1], H = dims_[2], W = dims_[3];
    return {H * W * C, 1, W * C, C};
  }

 private:
  std::vector<int64_t> dims_;
};

std::ostream& operator<<(std::ostream& os, const Shape& s);

}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/core/shape_inl.hpp"
#endif
