// The definitions of checkpoint.hpp's non-template functions: included by it in header-only mode, and
// compiled once into the library in the compiled mode (src/io/checkpoint.cpp). Not for direct inclusion.
#pragma once

#include <algorithm>
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

#include "resnet/core/abi.hpp"
#include "resnet/io/checkpoint.hpp"
#include "resnet/io/json_lite.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace io {

namespace detail {

// 17 significant digits round-trip a double exactly; the classic locale keeps '.' whatever the program's
// locale, so checkpoints read the same everywhere.
RESNET_INLINE std::string format_double(double v) {
  std::ostringstream os;
  os.imbue(std::locale::classic());
  os << std::setprecision(17) << v;
  return os.str();
}
RESNET_INLINE bool parse_double(const std::string& text, double& out) {
  if (text == "inf" || text == "-inf" || text == "nan" || text == "-nan") {  // what the stream writes
    out = text == "inf" ? HUGE_VAL : text == "-inf" ? -HUGE_VAL : NAN;
    return true;
  }
  std::istringstream is(text);
  is.imbue(std::locale::classic());
  is >> out;
  return !text.empty() && !is.fail() && is.peek() == std::char_traits<char>::eof();
}

RESNET_INLINE std::map<std::string, std::string> state_to_metadata(const TrainingState& s) {
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

RESNET_INLINE int64_t parse_int_field(const std::map<std::string, std::string>& m, const char* key,
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

RESNET_INLINE TrainingState metadata_to_state(const std::map<std::string, std::string>& m,
                                              const std::string& file) {
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
RESNET_INLINE TensorBase host_contiguous(const TensorBase& t) {
  if (t.device().is_cpu() && t.is_contiguous()) return t;
  TensorBase h = TensorBase::empty(t.shape(), t.dtype(), Device::cpu());
  copy_into(h, t);
  return h;
}

// "'a', 'b', 'c' and 4 more": names in an error message without flooding it.
RESNET_INLINE std::string name_list(const std::vector<std::string>& names) {
  std::string s;
  size_t shown = std::min<size_t>(names.size(), 3);
  for (size_t i = 0; i < shown; ++i) s += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > shown) s += " and " + std::to_string(names.size() - shown) + " more";
  return s;
}

// Checks that `reader` holds exactly `expected` under `prefix` (same names, dtypes, shapes). `ignore_prefix`
// names tensors that belong to someone else (the optimizer's, when loading the model).
RESNET_INLINE void check_tensor_set(const SafetensorsReader& reader,
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
RESNET_INLINE optim::HyperParameters read_hyper(const std::map<std::string, std::string>& m,
                                                const TrainingState& s, const std::string& where) {
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

// Reads only the metadata (so eval/predict can learn arch and class names before building the model).
RESNET_INLINE TrainingState read_training_state(const std::string& path) {
  SafetensorsReader r = SafetensorsReader::open(path);
  return detail::metadata_to_state(r.metadata(), path);
}

RESNET_INLINE std::string LoadReport::summary() const {
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

}  // namespace io
}  // namespace RESNET_ABI
}  // namespace resnet
