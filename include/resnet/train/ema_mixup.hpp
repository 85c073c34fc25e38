// The Trainer's optional parts around its step: the moving average of the weights (train/ema.hpp) and the
// mixing of each training batch (train/mixup.hpp), kept here so the loop only calls them. Both off: every
// call is one test of a null pointer.
#pragma once

#include "resnet/core/abi.hpp"

#include <memory>
#include <string>

#include "resnet/data/loader.hpp"
#include "resnet/io/paths.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/ops/ops.hpp"
#include "resnet/train/ema.hpp"
#include "resnet/train/input.hpp"
#include "resnet/train/loss.hpp"
#include "resnet/train/mixup.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

template <typename T>
class EmaAndMixup {
 public:
  // The options are checked now; the average itself is made by prepare(), after a resume.
  void set_ema(const nn::Module<T>& model, EmaOptions o) {
    ModelEma<T> probe(model, o);
    ema_options_ = std::make_unique<EmaOptions>(o);
  }
  // The loss that goes with mixing: soft_cross_entropy on the batch's targets (smoothing already in them).
  LossFn<T> set_mixup(MixupOptions o, int64_t num_classes) {
    mix_ = std::make_unique<Mixup>(o, num_classes);
    return [t = targets_](const Tensor<T>& logits, const Tensor<int32_t>&) {
      return soft_cross_entropy(logits, *t, 0.0);
    };
  }

  // The average starts from the model as resumed; a resumed run reads it from beside its checkpoint.
  void prepare(const nn::Module<T>& model, const std::string& resume, int64_t step) {
    if (!ema_options_) return;
    ema_ = std::make_unique<ModelEma<T>>(model, *ema_options_);
    if (resume.empty()) return;
    const std::string file = ema_path_for(resume);
    RESNET_CHECK(io::path_exists(file), "Trainer: resuming ", resume, " with an EMA of the weights, ", "but ",
                 file, " (the average saved beside it) does not exist");
    const io::TrainingState s = ema_->load(file);
    RESNET_CHECK(s.step == step, "Trainer: ", file, " holds the average of step ", s.step, " but ", resume,
                 " is at step ", step, " (a run stopped between writing the two?)");
  }

  // Before step `step`: the batch's images mixed in place, its targets on the device.
  void mix(data::Batch& b, int64_t step, const Device& device) {
    if (mix_) *targets_ = to_input<T>(mix_->apply(b.images, b.labels, step), device);
  }
  // What the step's loss reads (null without mixing).
  Tensor<T>* targets() const { return mix_ ? targets_.get() : nullptr; }
  // After the optimizer's step.
  void update(const nn::Module<T>& model) {
    if (ema_) ema_->update(model);
  }
  // Beside a resumable checkpoint `file`.
  void save(const std::string& file, const io::TrainingState& s) const {
    if (ema_) ema_->save(ema_path_for(file), s);
  }
  const ModelEma<T>* ema() const { return ema_.get(); }

 private:
  std::unique_ptr<EmaOptions> ema_options_;
  std::unique_ptr<ModelEma<T>> ema_;
  std::unique_ptr<Mixup> mix_;
  std::shared_ptr<Tensor<T>> targets_ = std::make_shared<Tensor<T>>();  // this batch's mixed targets
};

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
