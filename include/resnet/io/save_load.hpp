// One line to save or load a model, as torch::save / torch::load: the weights alone, or with the
// optimizer's state and the training state so a run resumes exactly. Both are checkpoint.hpp's
// save_checkpoint / load_checkpoint (atomic writes, the whole file validated before the model changes);
// these name each case instead of taking a null optimizer pointer.
//
//   io::save(*net, "model.safetensors");                 io::load(*net, "model.safetensors");
//   io::save(*net, opt, "run.safetensors", state);       io::TrainingState s = io::load(*net, opt,
//   "run.safetensors"); io::LoadReport r = io::load_matching(*net, "pretrained.safetensors");  //
//   fine-tuning: what fits
#pragma once

#include "resnet/core/abi.hpp"

#include <string>

#include "resnet/io/checkpoint.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace io {

// The model's parameters and buffers (and `state`'s metadata, if given); no optimizer state.
template <typename T>
void save(const nn::Module<T>& model, const std::string& path, const TrainingState& state = {}) {
  save_checkpoint(path, model, static_cast<const optim::Optimizer<acc_t<T>>*>(nullptr), state);
}
// The model, the optimizer's state (moments, step count, learning rate) and the training state.
template <typename T>
void save(const nn::Module<T>& model, const optim::Optimizer<acc_t<T>>& optimizer, const std::string& path,
          const TrainingState& state = {}) {
  save_checkpoint(path, model, &optimizer, state);
}

// Strict: the file must hold exactly the model's tensors. Any optimizer state in the file is ignored.
template <typename T>
TrainingState load(nn::Module<T>& model, const std::string& path) {
  return load_checkpoint(path, model, static_cast<optim::Optimizer<acc_t<T>>*>(nullptr));
}
// Strict, and the optimizer's state is restored from the file too.
template <typename T>
TrainingState load(nn::Module<T>& model, optim::Optimizer<acc_t<T>>& optimizer, const std::string& path) {
  return load_checkpoint(path, model, &optimizer);
}
// Non-strict: every tensor whose name, dtype and shape match is loaded; the report lists the rest.
template <typename T>
LoadReport load_matching(nn::Module<T>& model, const std::string& path) {
  return load_checkpoint(path, model, static_cast<optim::Optimizer<acc_t<T>>*>(nullptr),
                         LoadOptions::non_strict());
}

}  // namespace io
}  // namespace RESNET_ABI
}  // namespace resnet
