// Checkpoints: a model's parameters and buffers under torchvision's state_dict names, optionally the
// optimizer's state under "optimizer.<param>.<slot>", and the training state in the safetensors
// "__metadata__" map, so a run resumes exactly and weights move to and from torchvision.
//
// Saving is atomic (a crash or a full disk never clobbers the previous checkpoint). Loading validates the
// whole file against the model before touching it: a failed load leaves the model and optimizer unchanged.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/arg.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "resnet/core/compiled_mode.hpp"
#include "resnet/io/safetensors.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/optim/optimizer.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace io {

struct TrainingState {
  std::string arch;       // "resnet34"
  int64_t epoch = 0;      // epochs completed
  int64_t step = 0;       // optimizer steps taken (= schedule position)
  double lr = 0;          // learning rate at save time
  std::string optimizer;  // "sgd" | "adamw" | "" (weights only)
  std::string schedule;   // "cosine" | "step" | "onecycle" | ...
  uint64_t seed = 0;
  std::vector<std::string> class_names;      // sorted ImageFolder class names
  std::map<std::string, std::string> extra;  // free-form: best_acc, image size, recipe flags...
};

constexpr const char* kCheckpointFormat = "resnet.checkpoint";
constexpr int kCheckpointVersion = 1;
constexpr const char* kOptimizerPrefix = "optimizer.";
constexpr const char* kHyperPrefix = "optimizer.hyper.";  // metadata keys of the optimizer's hyper-parameters

namespace detail {

// 17 significant digits round-trip a double exactly; the classic locale keeps '.' whatever the program's
// locale, so checkpoints read the same everywhere.
std::string format_double(double v);
bool parse_double(const std::string& text, double& out);
std::map<std::string, std::string> state_to_metadata(const TrainingState& s);
int64_t parse_int_field(const std::map<std::string, std::string>& m, const char* key,
                        const std::string& where);
TrainingState metadata_to_state(const std::map<std::string, std::string>& m, const std::string& file);
// A host, contiguous view of `t` (a copy only when it lives on a device or is strided).
TensorBase host_contiguous(const TensorBase& t);
// "'a', 'b', 'c' and 4 more": names in an error message without flooding it.
std::string name_list(const std::vector<std::string>& names);
// Checks that `reader` holds exactly `expected` under `prefix` (same names, dtypes, shapes). `ignore_prefix`
// names tensors that belong to someone else (the optimizer's, when loading the model).
void check_tensor_set(const SafetensorsReader& reader,
                      const std::vector<std::pair<std::string, TensorBase>>& expected,
                      const std::string& prefix, const std::string& ignore_prefix, const std::string& what,
                      const std::string& hint);
// The optimizer's hyper-parameters from the metadata; files older than them give the learning rate only.
optim::HyperParameters read_hyper(const std::map<std::string, std::string>& m, const TrainingState& s,
                                  const std::string& where);

}  // namespace detail

// Writes model (params + buffers), optional optimizer state and the metadata. Atomic: temp file in the same
// folder, flushed + fsync'd, then renamed over `path`.
template <typename T>
void save_checkpoint(const std::string& path, const nn::Module<T>& model,
                     const optim::Optimizer<acc_t<T>>* optimizer, const TrainingState& state) {
  RESNET_CHECK(
      !model.any_inference_only(), "save_checkpoint '", path,
      "': the model was fused for inference (BatchNorm folded into the convolutions); its weights are "
      "not the trained model's. Save the model before fusing it");
  TrainingState s = state;
  if (optimizer) {
    RESNET_CHECK(s.optimizer.empty() || s.optimizer == optimizer->name(), "save_checkpoint '", path,
                 "': TrainingState.optimizer is '", s.optimizer, "' but the optimizer is '",
                 optimizer->name(), "'");
    s.optimizer = optimizer->name();
    s.lr = optimizer->lr();  // the optimizer's, whatever the caller's TrainingState says
  } else {
    s.optimizer.clear();
  }
  std::vector<std::pair<std::string, TensorBase>> named = model.state_dict();
  if (optimizer)
    for (auto& kv : optimizer->state()) named.emplace_back(kOptimizerPrefix + kv.first, kv.second);
  std::vector<TensorBase> keep_alive;
  std::vector<SafetensorsEntry> entries;
  keep_alive.reserve(named.size());
  for (const auto& kv : named) {
    RESNET_CHECK(kv.second.defined(), "save_checkpoint '", path, "': tensor '", kv.first, "' is undefined");
    keep_alive.push_back(detail::host_contiguous(kv.second));
    entries.push_back(
        SafetensorsEntry{kv.first, kv.second.dtype(), kv.second.shape(), keep_alive.back().raw_data()});
  }
  auto meta = detail::state_to_metadata(s);
  if (optimizer) {
    meta["optimizer_step_count"] = std::to_string(optimizer->step_count());
    for (auto& kv : optimizer->hyper_parameters())
      meta[kHyperPrefix + kv.first] = detail::format_double(kv.second);  // 17 digits: exact
  }
  write_safetensors(path, entries, meta);
}

// Reads only the metadata (so eval/predict can learn arch and class names before building the model).
TrainingState read_training_state(const std::string& path);

// Validates everything (header, dtypes, shapes, missing/unexpected tensors, data lengths) and throws
// resnet::Error naming the file, the tensor and the problem. optimizer may be null (weights only; the
// file's optimizer state, if any, is ignored); when given, its state tensors, step count and learning rate
// are restored. Files without our metadata (plain safetensors weights, e.g. exported from torchvision) load
// as weights.
template <typename T>
TrainingState load_checkpoint(const SafetensorsReader& r, nn::Module<T>& model,
                              optim::Optimizer<acc_t<T>>* optimizer) {
  const std::string& path = r.path();
  TrainingState s = detail::metadata_to_state(r.metadata(), path);
  const std::string where = "checkpoint '" + path + "'";
  const std::string hint =
      s.arch.empty() ? std::string() : " (the checkpoint was saved from a " + s.arch + ")";

  RESNET_CHECK(!model.any_inference_only(), where,
               ": the model was fused for inference (BatchNorm folded); load into an unfused model");
  auto model_state = model.state_dict();
  detail::check_tensor_set(r, model_state, "", kOptimizerPrefix, "model", hint);
  std::vector<std::pair<std::string, TensorBase>> opt_state;
  int64_t opt_steps = 0;
  optim::HyperParameters hyper;
  if (optimizer) {
    RESNET_CHECK(!s.optimizer.empty(), where,
                 ": has no optimizer state (weights only); load it without an optimizer");
    RESNET_CHECK(s.optimizer == optimizer->name(), where, ": holds ", s.optimizer, " optimizer state, not ",
                 optimizer->name());
    opt_state = optimizer->state();
    detail::check_tensor_set(r, opt_state, kOptimizerPrefix, "", optimizer->name() + " optimizer", "");
    opt_steps = r.metadata().count("optimizer_step_count")
                    ? detail::parse_int_field(r.metadata(), "optimizer_step_count", where)
                    : s.step;
    RESNET_CHECK(opt_steps >= 0, where, ": negative optimizer_step_count ", opt_steps);
    hyper = detail::read_hyper(r.metadata(), s, where);
    optim::HyperParameters probe = optimizer->hyper_parameters();
    for (auto& kv : hyper)
      RESNET_CHECK(probe.count(kv.first), where, ": hyper-parameter '", kv.first, "' is not one of ",
                   optimizer->name(), "'s");
  }

  // Read everything before writing anything, so an I/O error mid-way leaves the model as it was.
  std::vector<TensorBase> staged;
  for (const auto& kv : model_state) staged.push_back(r.read(kv.first));
  for (const auto& kv : opt_state) staged.push_back(r.read(kOptimizerPrefix + kv.first));
  if (optimizer) {
    const optim::HyperParameters before = optimizer->hyper_parameters();
    try {
      optimizer->set_hyper_parameters(hyper);
    } catch (const Error& e) {
      optimizer->set_hyper_parameters(before);
      RESNET_FAIL(where, ": ", e.what());
    }
    optimizer->set_step_count(opt_steps);
  }
  size_t i = 0;
  for (auto& kv : model_state) copy_into(kv.second, staged[i++]);
  for (auto& kv : opt_state) copy_into(kv.second, staged[i++]);
  return s;
}

template <typename T>
TrainingState load_checkpoint(const std::string& path, nn::Module<T>& model,
                              optim::Optimizer<acc_t<T>>* optimizer) {
  return load_checkpoint(SafetensorsReader::open(path), model, optimizer);
}

// ---- non-strict loading (fine-tuning) ----

struct LoadOptions {
  // strict: the file must match the model exactly (load_checkpoint without options). Non-strict: every
  // tensor whose name, dtype and shape match is loaded; the rest is reported, not an error.
  RESNET_ARG(bool, strict) = true;

 public:
  static LoadOptions non_strict() { return LoadOptions().strict(false); }
};

struct LoadReport {
  TrainingState state;
  std::string path;
  std::vector<std::string> loaded;                           // model tensors taken from the file
  std::vector<std::pair<std::string, std::string>> skipped;  // file tensors not loaded, and why
  std::vector<std::string> uninitialised;                    // model tensors the file did not provide
  size_t optimizer_tensors_ignored = 0;                      // "optimizer.*" entries (never loaded here)

  bool complete() const { return skipped.empty() && uninitialised.empty(); }
  // A few lines for a log: counts, then every skipped and uninitialised tensor.
  std::string summary() const;
};

// Strict (the default) is load_checkpoint above and throws on any mismatch. Non-strict loads what fits and
// reports the rest; it never takes an optimizer (a fine-tune starts a fresh one). Either way the file is
// read completely before the model is touched.
template <typename T>
LoadReport load_checkpoint(const SafetensorsReader& r, nn::Module<T>& model,
                           optim::Optimizer<acc_t<T>>* optimizer, const LoadOptions& options) {
  LoadReport rep;
  rep.path = r.path();
  if (options.strict()) {
    rep.state = load_checkpoint(r, model, optimizer);
    for (auto& kv : model.state_dict()) rep.loaded.push_back(kv.first);
    return rep;
  }
  const std::string where = "checkpoint '" + r.path() + "'";
  RESNET_CHECK(!model.any_inference_only(), where,
               ": the model was fused for inference (BatchNorm folded); load into an unfused model");
  RESNET_CHECK(optimizer == nullptr, where,
               ": a non-strict load takes no optimizer (build a fresh one for the fine-tune)");
  rep.state = detail::metadata_to_state(r.metadata(), r.path());
  auto model_state = model.state_dict();
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < model_state.size(); ++i) index[model_state[i].first] = i;
  std::vector<bool> found(model_state.size(), false);
  std::vector<std::pair<size_t, TensorBase>> staged;
  const std::string opt_prefix = kOptimizerPrefix;
  for (const auto& t : r.tensors()) {
    if (t.name.compare(0, opt_prefix.size(), opt_prefix) == 0) {
      ++rep.optimizer_tensors_ignored;
      continue;
    }
    auto it = index.find(t.name);
    if (it == index.end()) {
      rep.skipped.emplace_back(t.name, "the model has no such tensor");
      continue;
    }
    const TensorBase& dst = model_state[it->second].second;
    found[it->second] = true;
    if (t.dtype != dst.dtype()) {
      rep.skipped.emplace_back(t.name, std::string("dtype ") + safetensors_dtype_name(t.dtype) +
                                           ", the model's is " + safetensors_dtype_name(dst.dtype()));
    } else if (t.shape != dst.shape()) {
      rep.skipped.emplace_back(
          t.name, "shape " + t.shape.to_string() + ", the model's is " + dst.shape().to_string());
    } else {
      staged.emplace_back(it->second, r.read(t.name));
    }
  }
  for (size_t i = 0; i < model_state.size(); ++i)
    if (!found[i]) rep.uninitialised.push_back(model_state[i].first);
  for (auto& kv : rep.skipped)  // a tensor of the model that was skipped is also left as initialised
    if (index.count(kv.first)) rep.uninitialised.push_back(kv.first);
  for (auto& st : staged) {
    copy_into(model_state[st.first].second, st.second);
    rep.loaded.push_back(model_state[st.first].first);
  }
  return rep;
}

template <typename T>
LoadReport load_checkpoint(const std::string& path, nn::Module<T>& model,
                           optim::Optimizer<acc_t<T>>* optimizer, const LoadOptions& options) {
  return load_checkpoint(SafetensorsReader::open(path), model, optimizer, options);
}

}  // namespace io
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/io/checkpoint_inl.hpp"
#endif
