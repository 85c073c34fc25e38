// Contracts of softmax and cross-entropy (backend/cpu/loss.hpp, src/cuda/loss.cu): [N, K] rows, N int32
// labels, a one-element loss; label smoothing in [0, 1). The message of a label outside [0, K) is written
// here once: the CPU checks the labels before the loss, the GPU's kernel flags the first bad one and the
// library throws it at the next synchronisation (a label tensor already on the GPU cannot be read without
// one); labels given as a host vector (ops::cross_entropy) are checked on the host first, on both backends.
#pragma once

#include "resnet/core/abi.hpp"

#include <string>

#include "resnet/backend/contract/common.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace contract {

inline void softmax(const char* op, const TensorBase& x, const TensorBase& y) {
  check_rank(op, x, 2, "input [N, K]");
  placed(op, x, x, "input");
  like(op, x, x, y, "output");
}
inline void softmax_backward(const char* op, const TensorBase& y, const TensorBase& dy,
                             const TensorBase& dx) {
  check_rank(op, y, 2, "output [N, K]");
  placed(op, y, y, "output");
  like(op, y, y, dy, "output gradient");
  like(op, y, y, dx, "input gradient");
}

inline std::string label_out_of_range(const char* op, int64_t label, int64_t position, int64_t K) {
  return detail::concat(op, ": label ", label, " at position ", position, " is outside [0, ", K, ")");
}
// Labels on the host: every value in [0, K).
inline void label_values(const char* op, const int32_t* labels, int64_t N, int64_t K) {
  for (int64_t n = 0; n < N; ++n)
    if (labels[n] < 0 || labels[n] >= K) throw Error(label_out_of_range(op, labels[n], n, K));
}

// What the forward and the backward share: [N, K] rows (logits or probabilities), N int32 labels beside
// them, a smoothing in [0, 1), and a one-element scalar (the loss or its gradient).
inline void loss_rows(const char* op, const TensorBase& rows, const char* rows_what, const TensorBase& labels,
                      double smoothing, const TensorBase& scalar, const char* scalar_what) {
  check_rank(op, rows, 2, rows_what);
  placed(op, rows, rows, rows_what);
  RESNET_CHECK(smoothing >= 0.0 && smoothing < 1.0, op, ": label_smoothing must be in [0, 1), got ",
               smoothing);
  check_rank(op, labels, 1, "labels [N]");
  placed(op, rows, labels, "labels");
  RESNET_CHECK(labels.dim(0) == rows.dim(0), op, ": ", labels.dim(0), " labels for logits of shape ",
               rows.shape());
  RESNET_CHECK(labels.dtype() == DType::I32, op, ": labels must be int32, got ", dtype_name(labels.dtype()));
  placed(op, rows, scalar, scalar_what);
  RESNET_CHECK(scalar.numel() == 1, op, ": ", scalar_what, " must have one element, got ", scalar.shape());
}

inline void cross_entropy(const char* op, const TensorBase& logits, const TensorBase& labels,
                          double smoothing, const TensorBase& loss, const TensorBase& probs) {
  loss_rows(op, logits, "logits [N, K]", labels, smoothing, loss, "loss");
  like(op, logits, logits, probs, "probabilities");
}
inline void cross_entropy_backward(const char* op, const TensorBase& probs, const TensorBase& labels,
                                   double smoothing, const TensorBase& dloss, const TensorBase& dlogits) {
  loss_rows(op, probs, "probabilities [N, K]", labels, smoothing, dloss, "loss gradient");
  like(op, probs, probs, dlogits, "logits gradient");
}

}  // namespace contract
}  // namespace RESNET_ABI
}  // namespace resnet
