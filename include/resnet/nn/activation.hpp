// ReLU and Softmax layers.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/nn/module.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace nn {

template <typename T>
class ReLU : public Module<T> {
 public:
  Tensor<T> forward(const Tensor<T>& x) override { return relu(x); }
  std::string type_name() const override { return "ReLU"; }
  Shape summarize(const Shape& in, const std::string& name, int depth,
                  std::vector<LayerSummary>& rows) const override {
    this->add_row(rows, name, depth, in, 0);
    return in;
  }
};

// Softmax over the class dimension of [N, K] scores. For training use CrossEntropyLoss on the logits:
// softmax followed by a log is numerically poor (the seed's mistake).
template <typename T>
class Softmax : public Module<T> {
 public:
  Tensor<T> forward(const Tensor<T>& x) override { return softmax(x); }
  std::string type_name() const override { return "Softmax"; }
  Shape summarize(const Shape& in, const std::string& name, int depth,
                  std::vector<LayerSummary>& rows) const override {
    this->add_row(rows, name, depth, in, 0);
    return in;
  }
};

// Mean cross-entropy of logits against class labels, log-softmax fused in, optional label smoothing.
template <typename T>
class CrossEntropyLoss {
 public:
  explicit CrossEntropyLoss(double label_smoothing = 0.0) : label_smoothing_(label_smoothing) {}
  Tensor<T> operator()(const Tensor<T>& logits, const Tensor<int32_t>& labels) const {
    return cross_entropy(logits, labels, label_smoothing_);
  }
  Tensor<T> operator()(const Tensor<T>& logits, const std::vector<int32_t>& labels) const {
    return cross_entropy(logits, labels, label_smoothing_);
  }
  double label_smoothing() const { return label_smoothing_; }

 private:
  double label_smoothing_;
};

}  // namespace nn
}  // namespace RESNET_ABI
}  // namespace resnet
