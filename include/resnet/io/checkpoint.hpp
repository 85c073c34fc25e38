// Checkpoints: a model's parameters and buffers under torchvision's state_dict names, optionally the
// optimizer's state under "optimizer.<param>.<slot>", and the training state in the safetensors
// "__metadata__" map, so a run resumes exactly and weights move to and from torchvision.
//
// Saving is atomic (a crash or a full disk never clobbers the previous checkpoint). Loading validates the
// whole file against the model before touching it: a failed load leaves the model and optimizer unchanged.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/arg.hpp"

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <locale>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

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
inline std::string format_double(double v) {
  std::ostringstream os;
  os.imbue(std::locale::classic());
  os << std::setprecision(17) << v;
  return os.str();
}
inline bool parse_double(const std::string& text, double& out) {
  if (text == "inf" || text == "-inf" || text == "nan" || text == "-nan") {  // what the stream writes
    out = text == "inf" ? HUGE_VAL : text == "-inf" ? -HUGE_VAL : NAN;
    return true;
  }
  std::istringstream is(text);
  is.imbue(std::locale::classic());
  is >> out;
  return !text.empty() && !is.fail() && is.peek() == std::char_traits<char>::eof();
}

inline std::map<std::string, std::string> state_to_metadata(const TrainingState& s) {
  std::map<std::string, std::string> m;
  m["format"] = kCheckpointFormat;
  m["format_version"] = std::to_string(kCheckpointVersion);
  m["arch"] = s.arch;
  m["epoch"] = std::to_string(s.epoch);
  m["step"] = std::to_string(s.step);
  m["lr"] = format_double(s.lr);
  m["optimizer"] = s.optimizer;
  m["schedule"] = s.schedule;
  m["seed"] = std::to_string(s.seed);
  m["class_names"] = json_string_array(s.class_names);
  for (const auto& kv : s.extra) m["extra." + kv.first] = kv.second;
  return m;
}

inline int64_t parse_int_field(const std::map<std::string, std::string>& m, const char* key,
                               const std::string& where) {
  auto it = m.find(key);
  if (it == m.end()) return 0;
  const std::string& v = it->second;
  errno = 0;
  char* end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  RESNET_CHECK(!v.empty() && errno == 0 && end == v.c_str() + v.size(), where, ": metadata '", key, "' = '",
               v, "' is not an integer");
  return static_cast<int64_t>(x);
}

inline TrainingState metadata_to_state(const std::map<std::string, std::string>& m, const std::string& file) {
  const std::string where = "checkpoint '" + file + "'";
  TrainingState s;
  auto it = m.find("format");
  if (it == m.end()) return s;  // a plain safetensors file of weights (torchvision export): no training state
  RESNET_CHECK(it->second == kCheckpointFormat, where, ": metadata 'format' is '", it->second,
               "', expected '", kCheckpointFormat, "'");
  int64_t version = parse_int_field(m, "format_version", where);
  RESNET_CHECK(version >= 1 && version <= kCheckpointVersion, where, ": format_version ", version,
               " is not supported (this build reads version ", kCheckpointVersion, ")");
  auto str = [&](const char* key) {
    auto f = m.find(key);
    return f == m.end() ? std::string() : f->second;
  };
  s.arch = str("arch");
  s.epoch = parse_int_field(m, "epoch", where);
  s.step = parse_int_field(m, "step", where);
  s.optimizer = str("optimizer");
  s.schedule = str("schedule");
  if (m.count("lr")) {
    const std::string& v = m.at("lr");
    RESNET_CHECK(parse_double(v, s.lr), where, ": metadata 'lr' = '", v, "' is not a number");
  }
  if (m.count("seed")) {
    const std::string& v = m.at("seed");
    errno = 0;
    char* end = nullptr;
    unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    RESNET_CHECK(!v.empty() && v[0] != '-' && errno == 0 && end == v.c_str() + v.size(), where,
                 ": metadata 'seed' = '", v, "' is not an unsigned integer");
    s.seed = static_cast<uint64_t>(x);
  }
  if (m.count("class_names"))
    s.class_names = parse_json_string_array(m.at("class_names"), where + ": metadata 'class_names'");
  for (const auto& kv : m)
    if (kv.first.rfind("extra.", 0) == 0) s.extra[kv.first.substr(6)] = kv.second;
  return s;
}

// A host, contiguous view of `t` (a copy only when it lives on a device or is strided).
inline TensorBase host_contiguous(const TensorBase& t) {
  if (t.device().is_cpu() && t.is_contiguous()) return t;
  TensorBase h = TensorBase::empty(t.shape(), t.dtype(), Device::cpu());
  copy_into(h, t);
  return h;
}

// "'a', 'b', 'c' and 4 more": names in an error message without flooding it.
inline std::string name_list(const std::vector<std::string>& names) {
  std::string s;
  size_t shown = std::min<size_t>(names.size(), 3);
  for (size_t i = 0; i < shown; ++i) s += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > shown) s += " and " + std::to_string(names.size() - shown) + " more";
  return s;
}

// Checks that `reader` holds exactly `expected` under `prefix` (same names, dtypes, shapes). `ignore_prefix`
// names tensors that belong to someone else (the optimizer's, when loading the model).
inline void check_tensor_set(const SafetensorsReader& reader,
                             const std::vector<std::pair<std::string, TensorBase>>& expected,
                             const std::string& prefix, const std::string& ignore_prefix,
                             const std::string& what, const std::string& hint) {
  const std::string where = "checkpoint '" + reader.path() + "'";
  std::map<std::string, bool> wanted;
  std::vector<std::string> missing;
  for (const auto& kv : expected) {
    const std::string name = prefix + kv.first;
    wanted[name] = true;
    const SafetensorsTensorInfo* info = reader.find(name);
    if (!info) {
      missing.push_back(name);
      continue;
    }
    RESNET_CHECK(info->dtype == kv.second.dtype(), where, ": tensor '", name, "' has dtype ",
                 safetensors_dtype_name(info->dtype), " but the ", what, " expects ",
                 safetensors_dtype_name(kv.second.dtype()), " (", dtype_name(kv.second.dtype()), ")", hint);
    RESNET_CHECK(info->shape == kv.second.shape(), where, ": tensor '", name, "' has shape ", info->shape,
                 " but the ", what, " expects ", kv.second.shape(), hint);
  }
  RESNET_CHECK(missing.empty(), where, ": missing tensor ", name_list(missing), " (needed by the ", what, ")",
               hint);
  std::vector<std::string> unexpected;
  for (const auto& t : reader.tensors()) {
    if (t.name.compare(0, prefix.size(), prefix) != 0) continue;
    if (!ignore_prefix.empty() && t.name.compare(0, ignore_prefix.size(), ignore_prefix) == 0) continue;
    if (!wanted.count(t.name)) unexpected.push_back(t.name);
  }
  RESNET_CHECK(unexpected.empty(), where, ": unexpected tensor ", name_list(unexpected), " (the ", what,
               " has no such entry)", hint);
}

// The optimizer's hyper-parameters from the metadata; files older than them give the learning rate only.
inline optim::HyperParameters read_hyper(const std::map<std::string, std::string>& m, const TrainingState& s,
                                         const std::string& where) {
  optim::HyperParameters h;
  const std::string prefix = kHyperPrefix;
  for (const auto& kv : m) {
    if (kv.first.compare(0, prefix.size(), prefix) != 0) continue;
    double v = 0;
    RESNET_CHECK(parse_double(kv.second, v), where, ": metadata '", kv.first, "' = '", kv.second,
                 "' is not a number");
    h[kv.first.substr(prefix.size())] = v;
  }
  if (h.empty()) h["lr"] = s.lr;
  return h;
}

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
inline TrainingState read_training_state(const std::string& path) {
  SafetensorsReader r = SafetensorsReader::open(path);
  return detail::metadata_to_state(r.metadata(), path);
}

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
  std::string summary() const {
    std::ostringstream os;
    os << "loaded " << loaded.size() << " tensors from '" << path << "'";
    if (!skipped.empty()) os << ", skipped " << skipped.size();
    if (!uninitialised.empty()) os << ", left " << uninitialised.size() << " as initialised";
    if (optimizer_tensors_ignored) os << " (optimizer state ignored)";
    os << "\n";
    for (auto& kv : skipped) os << "  skipped " << kv.first << ": " << kv.second << "\n";
    for (auto& n : uninitialised) os << "  left as initialised: " << n << "\n";
    return os.str();
  }
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
