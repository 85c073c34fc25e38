// Pooling layers: MaxPool2d, AvgPool2d and GlobalAvgPool2d ([N, C, H, W] -> [N, C], flatten included).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/nn/module.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace nn {

inline PoolParams make_pool_params(int64_t kernel, int64_t stride, int64_t padding,
                                   bool count_include_pad = true) {
  return PoolParams{kernel, kernel, stride, stride, padding, padding, count_include_pad};
}

template <typename T>
class MaxPool2d : public Module<T> {
 public:
  MaxPool2d(int64_t kernel, int64_t stride, int64_t padding = 0)
      : p_(make_pool_params(kernel, stride, padding)) {}
  Tensor<T> forward(const Tensor<T>& x) override { return max_pool2d(x, p_); }
  std::string type_name() const override { return "MaxPool2d"; }
  Shape summarize(const Shape& in, const std::string& name, int depth,
                  std::vector<LayerSummary>& rows) const override {
    Shape out{in[0], in[1], p_.out_h(in[2]), p_.out_w(in[3])};
    this->add_row(rows, name, depth, out, 0);
    return out;
  }
  const PoolParams& params() const { return p_; }

 private:
  PoolParams p_;
};

template <typename T>
class AvgPool2d : public Module<T> {
 public:
  AvgPool2d(int64_t kernel, int64_t stride, int64_t padding = 0, bool count_include_pad = true)
      : p_(make_pool_params(kernel, stride, padding, count_include_pad)) {}
  Tensor<T> forward(const Tensor<T>& x) override { return avg_pool2d(x, p_); }
  std::string type_name() const override { return "AvgPool2d"; }
  Shape summarize(const Shape& in, const std::string& name, int depth,
                  std::vector<LayerSummary>& rows) const override {
    Shape out{in[0], in[1], p_.out_h(in[2]), p_.out_w(in[3])};
    this->add_row(rows, name, depth, out, 0);
    return out;
  }
  const PoolParams& params() const { return p_; }

 private:
  PoolParams p_;
};

template <typename T>
class GlobalAvgPool2d : public Module<T> {
 public:
  Tensor<T> forward(const Tensor<T>& x) override { return global_avg_pool(x); }
  std::string type_name() const override { return "GlobalAvgPool2d"; }
  Shape summarize(const Shape& in, const std::string& name, int depth,
                  std::vector<LayerSummary>& rows) const override {
    Shape out{in[0], in[1]};
    this->add_row(rows, name, depth, out, 0);
    return out;
  }
};

}  // namespace nn
}  // namespace RESNET_ABI
}  // namespace resnet
