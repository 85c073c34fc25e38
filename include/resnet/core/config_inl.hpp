// The definitions of config.hpp: included by it in header-only mode, and compiled once into the library in
// the compiled mode (src/core/config.cpp). Not for direct inclusion.
#pragma once

#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>

#include "resnet/core/abi.hpp"
#include "resnet/core/error.hpp"
#include "resnet/core/config.hpp"

namespace resnet {
inline namespace RESNET_ABI {

RESNET_INLINE const std::array<SettingInfo, kSettingCount>& settings_table() {
  static const std::array<SettingInfo, kSettingCount> table{{
      {SettingId::CpuConv,
       "cpu_conv",
       "RESNET_CPU_CONV",
       SettingKind::Choice,
       {"auto", "gemm", "onednn"},
       "'auto' (oneDNN when built with it), 'gemm' (im2col + BLAS) or 'onednn'",
       0,
       "auto",
       "which kernels run float32 CPU convolutions"},
      {SettingId::CpuConvBf16,
       "cpu_conv_bf16",
       "RESNET_CPU_CONV_BF16",
       SettingKind::Choice,
       {"auto", "native", "float"},
       "'native' (oneDNN's bfloat16 kernels) or 'float' (float32 convolutions), or 'auto' (chosen by the "
       "CPU's measured bfloat16 rate)",
       0,
       "auto",
       "which kernels run bfloat16 CPU convolutions"},
      {SettingId::CpuConvChunkKb,
       "cpu_conv_chunk_kb",
       "RESNET_CPU_CONV_CHUNK_KB",
       SettingKind::PositiveInt,
       {},
       "a positive number of KiB",
       3072,
       "3072",
       "oneDNN convolutions run over the batch in chunks whose blocked copies fit in this many KiB"},
      {SettingId::DistTimeoutS,
       "dist_timeout_s",
       "RESNET_DIST_TIMEOUT_S",
       SettingKind::Seconds,
       {},
       "a number of seconds >= 0 (0 = no timeout)",
       300,
       "300",
       "an MPI collective not done within this fails, naming the missing ranks"},
      {SettingId::DistCommThread,
       "dist_comm_thread",
       "RESNET_DIST_COMM_THREAD",
       SettingKind::Bool,
       {},
       kBoolAccepted,
       1,
       "on",
       "MPI collectives run on a communication thread (needs MPI_THREAD_MULTIPLE)"},
      {SettingId::Tf32,
       "tf32",
       "RESNET_TF32",
       SettingKind::Bool,
       {},
       kBoolAccepted,
       1,
       "on",
       "float32 CUDA convolutions and matmuls may use TF32 tensor cores"},
      {SettingId::BnSinglePass,
       "bn_single_pass",
       "RESNET_BN_SINGLE_PASS",
       SettingKind::Bool,
       {},
       kBoolAccepted,
       kBackendDefault,
       "kernel policy (off)",
       "CUDA BatchNorm runs one pass where a channel fits one block"},
      {SettingId::BnClusters,
       "bn_clusters",
       "RESNET_BN_CLUSTERS",
       SettingKind::Bool,
       {},
       kBoolAccepted,
       kBackendDefault,
       "kernel policy (off)",
       "CUDA BatchNorm spreads a channel over a thread-block cluster (compute capability 9.0+)"},
      {SettingId::CudaNhwc,
       "cuda_nhwc",
       "RESNET_CUDA_NHWC",
       SettingKind::Bool,
       {},
       kBoolAccepted,
       0,
       "off",
       "CUDA convolutions and BatchNorm run channels-last (NHWC) kernels"},
      {SettingId::CudaStaging,
       "cuda_staging",
       "RESNET_CUDA_STAGING",
       SettingKind::Bool,
       {},
       kBoolAccepted,
       0,
       "off",
       "host-to-device uploads go through a pinned staging ring (no wait for the device)"},
      {SettingId::CudaHalfPacks,
       "cuda_half_packs",
       "RESNET_CUDA_HALF_PACKS",
       SettingKind::Bool,
       {},
       kBoolAccepted,
       kBackendDefault,
       "kernel policy (off)",
       "multi-pass CUDA BatchNorm kernels read 8-byte packs"},
      {SettingId::CudnnSearch,
       "cudnn_search",
       "RESNET_CUDNN_SEARCH",
       SettingKind::Choice,
       {"benchmark", "heuristic"},
       "'benchmark' (time the candidates once per shape) or 'heuristic'",
       0,
       "benchmark",
       "how cuDNN convolution algorithms are picked"},
  }};
  return table;
}

RESNET_INLINE const SettingInfo& setting_info(const std::string& key) {
  std::string names;
  for (const SettingInfo& s : settings_table()) {
    if (key == s.name || key == s.env) return s;
    names += names.empty() ? "" : ", ";
    names += s.name;
  }
  RESNET_FAIL("no runtime setting is called '", key, "' (settings: ", names, ")");
}

RESNET_INLINE std::string format_setting(const SettingInfo& s, double v) {
  if (v == kBackendDefault && s.default_value == kBackendDefault) return "default";
  switch (s.kind) {
    case SettingKind::Bool:
      return v != 0 ? "on" : "off";
    case SettingKind::Choice:
      return s.choices[static_cast<size_t>(v)];
    default:
      return detail::format_number(v);
  }
}

RESNET_INLINE double parse_setting(const SettingInfo& s, const std::string& text, bool from_env) {
  const std::string where = detail::setting_where(s, from_env);
  double v = std::nan("");
  switch (s.kind) {
    case SettingKind::Bool:
      if (text == "1" || text == "on") v = 1;
      if (text == "0" || text == "off") v = 0;
      break;
    case SettingKind::Choice:
      for (size_t i = 0; i < s.choices.size(); ++i)
        if (s.choices[i] && text == s.choices[i]) v = static_cast<double>(i);
      break;
    case SettingKind::PositiveInt: {
      const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
      if (digits && text.size() < 15) v = std::strtod(text.c_str(), nullptr);
      break;
    }
    case SettingKind::Seconds: {
      char* end = nullptr;
      const double d = std::strtod(text.c_str(), &end);
      if (!text.empty() && end == text.c_str() + text.size()) v = d;
      break;
    }
  }
  RESNET_CHECK(!std::isnan(v), where, "='", text, "': expected ", s.accepted);
  detail::validate_setting(s, v, where, text);
  return v;
}

}  // namespace RESNET_ABI
}  // namespace resnet

namespace resnet {
inline namespace RESNET_ABI {
namespace detail {

RESNET_INLINE std::string setting_where(const SettingInfo& s, bool from_env) {
  return from_env ? std::string(s.env) : std::string(s.name) + " (" + s.env + ")";
}

RESNET_INLINE std::string format_number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

RESNET_INLINE void validate_setting(const SettingInfo& s, double v, const std::string& where,
                                    const std::string& text) {
  bool ok = false;
  switch (s.kind) {
    case SettingKind::Bool:
      ok = v == 0 || v == 1 || (v == kBackendDefault && s.default_value == kBackendDefault);
      break;
    case SettingKind::Choice:
      ok = v >= 0 && v < static_cast<double>(s.choices.size()) && v == std::floor(v) &&
           s.choices[static_cast<size_t>(v)] != nullptr;
      break;
    case SettingKind::PositiveInt:
      ok = v >= 1 && v <= 1e12 && v == std::floor(v);
      break;
    case SettingKind::Seconds:
      ok = v >= 0 && v < 1e9;  // false for NaN
      break;
  }
  RESNET_CHECK(ok, where, "='", text, "': expected ", s.accepted);
}

}  // namespace detail
}  // namespace RESNET_ABI
}  // namespace resnet

namespace resnet {
inline namespace RESNET_ABI {

RESNET_INLINE Config::Config() {
  for (const SettingInfo& s : settings_table()) {
    double v = s.default_value;
    const SettingSource src = from_environment(s, &v);
    value_[idx(s.id)] = v;
    source_[idx(s.id)] = static_cast<int>(src);
  }
}

RESNET_INLINE void Config::set(const std::string& key, const std::string& text) {
  const SettingInfo& s = setting_info(key);
  store(s.id, parse_setting(s, text, false), SettingSource::Code);
}

RESNET_INLINE std::string Config::get(const std::string& key) const {
  const SettingInfo& s = setting_info(key);
  return format_setting(s, value(s.id));
}

RESNET_INLINE void Config::reset(SettingId id) {
  const SettingInfo& s = setting_info(id);
  double v = s.default_value;
  const SettingSource src = from_environment(s, &v);
  store(id, v, src);
}

RESNET_INLINE void Config::read_environment() {
  std::array<double, kSettingCount> v{};
  std::array<SettingSource, kSettingCount> src{};
  for (const SettingInfo& s : settings_table()) {
    v[idx(s.id)] = s.default_value;
    src[idx(s.id)] = from_environment(s, &v[idx(s.id)]);
  }
  for (const SettingInfo& s : settings_table())
    if (source(s.id) != SettingSource::Code) store(s.id, v[idx(s.id)], src[idx(s.id)]);
}

RESNET_INLINE std::string Config::summary() const {
  std::ostringstream os;
  for (const SettingInfo& s : settings_table()) {
    const SettingSource src = source(s.id);
    std::string env = s.env;
    env.resize(26, ' ');
    os << "  " << env << s.name << " = " << format_setting(s, value(s.id)) << " ("
       << (src == SettingSource::Default       ? "default"
           : src == SettingSource::Environment ? "environment"
                                               : "set from code")
       << ")\n";
  }
  return os.str();
}

RESNET_INLINE SettingSource Config::from_environment(const SettingInfo& s, double* v) {
  const char* text = std::getenv(s.env);
  if (text == nullptr || *text == '\0') return SettingSource::Default;
  *v = parse_setting(s, text, true);
  return SettingSource::Environment;
}

}  // namespace RESNET_ABI
}  // namespace resnet
