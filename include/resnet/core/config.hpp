// The library's runtime settings, in one table: each has a name, the environment variable that sets it, the
// values it accepts, its default and what it changes. resnet::config() holds the process's values: read from
// the environment once, on first use, and settable from code afterwards (code wins over the environment).
// Every value, from the environment, from code or by name, passes the one parser and validator of its kind,
// so a bad value is the same error wherever it comes from: it names the variable and what it accepts.
//
// The backends read their switches here: the CPU convolutions (backend/cpu/conv.hpp, onednn_conv.hpp), the
// MPI process group (dist/mpi_group.hpp) and resnet::cuda (src/cuda/device.cu, which nvcc compiles with this
// header). Their own setters (cpu::set_float_conv_impl, cuda::set_tf32, ...) write here too, so both ways of
// setting a switch read back the same.
//
// Plain C++ and host-only: no backend header, so any translation unit (nvcc's included) can use it.
#pragma once

#include "resnet/core/abi.hpp"

#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {

// Choice settings' values, in the order of their table row's `choices`.
enum class CpuConv { Auto, Gemm, OneDnn };        // float32 CPU convolutions
enum class CpuConvBf16 { Auto, Native, Float };   // bfloat16 CPU convolutions
enum class CudnnSearch { Benchmark, Heuristic };  // how cuDNN convolution algorithms are picked

enum class SettingId : int {
  CpuConv,
  CpuConvBf16,
  CpuConvChunkKb,
  DistTimeoutS,
  DistCommThread,
  Tf32,
  BnSinglePass,
  BnClusters,
  CudaNhwc,
  CudaStaging,
  CudaHalfPacks,
  CudnnSearch,
  Count
};
constexpr int kSettingCount = static_cast<int>(SettingId::Count);

// How a setting's text is read: on/off, one of a few words, a whole number >= 1, or seconds >= 0.
enum class SettingKind { Bool, Choice, PositiveInt, Seconds };

// Where a setting's current value came from.
enum class SettingSource { Default, Environment, Code };

struct SettingInfo {
  SettingId id;
  const char* name;  // as config().set(name, ...) and config_summary() spell it
  const char* env;   // the environment variable
  SettingKind kind;
  std::array<const char*, 3> choices;  // Choice: the words, in the enum's order
  const char* accepted;                // what the value may be, as errors and the README say it
  // Every kind's value fits a double exactly (a bool as 0/1, a choice as its index); kBackendDefault means
  // "the backend's own default" (the BatchNorm kernel policy table), which this header cannot see.
  double default_value;
  const char* default_text;
  const char* meaning;
};
constexpr double kBackendDefault = -1;

constexpr const char* kBoolAccepted = "1, on, 0 or off";

// The table. README.md's "Runtime settings" lists the same rows.
inline const std::array<SettingInfo, kSettingCount>& settings_table() {
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

inline const SettingInfo& setting_info(SettingId id) { return settings_table()[static_cast<size_t>(id)]; }

// The row whose name or environment variable is `key`; an error listing the names when none is.
inline const SettingInfo& setting_info(const std::string& key) {
  std::string names;
  for (const SettingInfo& s : settings_table()) {
    if (key == s.name || key == s.env) return s;
    names += names.empty() ? "" : ", ";
    names += s.name;
  }
  RESNET_FAIL("no runtime setting is called '", key, "' (settings: ", names, ")");
}

namespace detail {

// `where` names the value in errors: the environment variable, or the setting and its variable for code.
inline std::string setting_where(const SettingInfo& s, bool from_env) {
  return from_env ? std::string(s.env) : std::string(s.name) + " (" + s.env + ")";
}

inline std::string format_number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// The one validation of a value, wherever it was set: a whole number >= 1, seconds in [0, 1e9), a bool, a
// choice's index; a backend default only where the table has one.
inline void validate_setting(const SettingInfo& s, double v, const std::string& where,
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

// The text of a setting's value (what the environment would say): "on", "gemm", "3072", "2.5".
inline std::string format_setting(const SettingInfo& s, double v) {
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

// The one parser of each kind. Bool: 1/on or 0/off; Choice: one of the row's words; PositiveInt: decimal
// digits; Seconds: a decimal number. `from_env` picks how the error names the value.
inline double parse_setting(const SettingInfo& s, const std::string& text, bool from_env = true) {
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

// A copy of every value and where it came from (config().snapshot()), to put back with restore().
struct ConfigSnapshot {
  std::array<double, kSettingCount> value{};
  std::array<SettingSource, kSettingCount> source{};
};

class Config {
 public:
  // The environment's values (unset or empty: the default). Throws on the first bad value.
  Config() {
    for (const SettingInfo& s : settings_table()) {
      double v = s.default_value;
      const SettingSource src = from_environment(s, &v);
      value_[idx(s.id)] = v;
      source_[idx(s.id)] = static_cast<int>(src);
    }
  }
  Config(const Config&) = delete;
  Config& operator=(const Config&) = delete;

  // ---- typed access (each setter validates as the environment's value is validated)
  CpuConv cpu_conv() const { return static_cast<CpuConv>(get_index(SettingId::CpuConv)); }
  void set_cpu_conv(CpuConv v) { set_value(SettingId::CpuConv, static_cast<int>(v)); }
  CpuConvBf16 cpu_conv_bf16() const { return static_cast<CpuConvBf16>(get_index(SettingId::CpuConvBf16)); }
  void set_cpu_conv_bf16(CpuConvBf16 v) { set_value(SettingId::CpuConvBf16, static_cast<int>(v)); }
  int64_t cpu_conv_chunk_kb() const { return static_cast<int64_t>(value(SettingId::CpuConvChunkKb)); }
  void set_cpu_conv_chunk_kb(int64_t kb) { set_value(SettingId::CpuConvChunkKb, static_cast<double>(kb)); }
  double dist_timeout_s() const { return value(SettingId::DistTimeoutS); }
  void set_dist_timeout_s(double s) { set_value(SettingId::DistTimeoutS, s); }
  bool dist_comm_thread() const { return value(SettingId::DistCommThread) != 0; }
  void set_dist_comm_thread(bool on) { set_value(SettingId::DistCommThread, on); }
  bool tf32() const { return value(SettingId::Tf32) != 0; }
  void set_tf32(bool on) { set_value(SettingId::Tf32, on); }
  // The BatchNorm kernel switches: empty until set, meaning the kernel policy table's default (see
  // cuda::batchnorm_single_pass() and friends for the switch in effect). std::nullopt forgets a value set
  // from code: the variable's again, else the policy's.
  std::optional<bool> bn_single_pass() const { return tristate(SettingId::BnSinglePass); }
  void set_bn_single_pass(std::optional<bool> on) { set_tristate(SettingId::BnSinglePass, on); }
  std::optional<bool> bn_clusters() const { return tristate(SettingId::BnClusters); }
  void set_bn_clusters(std::optional<bool> on) { set_tristate(SettingId::BnClusters, on); }
  std::optional<bool> cuda_half_packs() const { return tristate(SettingId::CudaHalfPacks); }
  void set_cuda_half_packs(std::optional<bool> on) { set_tristate(SettingId::CudaHalfPacks, on); }
  bool cuda_nhwc() const { return value(SettingId::CudaNhwc) != 0; }
  void set_cuda_nhwc(bool on) { set_value(SettingId::CudaNhwc, on); }
  bool cuda_staging() const { return value(SettingId::CudaStaging) != 0; }
  void set_cuda_staging(bool on) { set_value(SettingId::CudaStaging, on); }
  CudnnSearch cudnn_search() const { return static_cast<CudnnSearch>(get_index(SettingId::CudnnSearch)); }
  void set_cudnn_search(CudnnSearch v) { set_value(SettingId::CudnnSearch, static_cast<int>(v)); }

  // ---- by name or variable, as text (a command-line flag, a config file): the environment's parser
  void set(const std::string& key, const std::string& text) {
    const SettingInfo& s = setting_info(key);
    store(s.id, parse_setting(s, text, false), SettingSource::Code);
  }
  std::string get(const std::string& key) const {
    const SettingInfo& s = setting_info(key);
    return format_setting(s, value(s.id));
  }

  double value(SettingId id) const { return value_[idx(id)].load(); }
  SettingSource source(SettingId id) const { return static_cast<SettingSource>(source_[idx(id)].load()); }
  // Forgets a value set from code: the setting reads the environment again (or takes its default).
  void reset(SettingId id) {
    const SettingInfo& s = setting_info(id);
    double v = s.default_value;
    const SettingSource src = from_environment(s, &v);
    store(id, v, src);
  }
  void reset(const std::string& key) { reset(setting_info(key).id); }
  // Reads the environment again for every setting not set from code (for a program that changed its
  // environment after start-up); all values are checked before any changes.
  void read_environment() {
    std::array<double, kSettingCount> v{};
    std::array<SettingSource, kSettingCount> src{};
    for (const SettingInfo& s : settings_table()) {
      v[idx(s.id)] = s.default_value;
      src[idx(s.id)] = from_environment(s, &v[idx(s.id)]);
    }
    for (const SettingInfo& s : settings_table())
      if (source(s.id) != SettingSource::Code) store(s.id, v[idx(s.id)], src[idx(s.id)]);
  }

  ConfigSnapshot snapshot() const {
    ConfigSnapshot c;
    for (int i = 0; i < kSettingCount; ++i) {
      c.value[static_cast<size_t>(i)] = value_[i].load();
      c.source[static_cast<size_t>(i)] = static_cast<SettingSource>(source_[i].load());
    }
    return c;
  }
  void restore(const ConfigSnapshot& c) {
    for (int i = 0; i < kSettingCount; ++i)
      store(static_cast<SettingId>(i), c.value[static_cast<size_t>(i)], c.source[static_cast<size_t>(i)]);
  }

  // Bumped by every change: backends that derive state from settings (the bfloat16 convolution choice)
  // redo it when this moves.
  uint64_t version() const { return version_.load(); }

  // Every setting's value and where it came from, one a line:
  // "  RESNET_TF32          tf32 = off (environment)".
  std::string summary() const {
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

 private:
  static size_t idx(SettingId id) { return static_cast<size_t>(id); }

  // Reads the variable into *v; Default when it is unset or empty (empty reads as unset, so `VAR= cmd`
  // clears a setting as a shell user expects).
  static SettingSource from_environment(const SettingInfo& s, double* v) {
    const char* text = std::getenv(s.env);
    if (text == nullptr || *text == '\0') return SettingSource::Default;
    *v = parse_setting(s, text, true);
    return SettingSource::Environment;
  }
  int get_index(SettingId id) const { return static_cast<int>(value(id)); }
  std::optional<bool> tristate(SettingId id) const {
    const double v = value(id);
    if (v == kBackendDefault) return std::nullopt;
    return v != 0;
  }
  void set_tristate(SettingId id, std::optional<bool> on) {
    if (on)
      set_value(id, *on);
    else
      reset(id);
  }
  void set_value(SettingId id, double v) {
    const SettingInfo& s = setting_info(id);
    detail::validate_setting(s, v, detail::setting_where(s, false),
                             s.kind == SettingKind::Choice ? detail::format_number(v) : format_setting(s, v));
    store(id, v, SettingSource::Code);
  }
  void store(SettingId id, double v, SettingSource src) {
    value_[idx(id)] = v;
    source_[idx(id)] = static_cast<int>(src);
    version_.fetch_add(1);
  }

  std::atomic<double> value_[kSettingCount];
  std::atomic<int> source_[kSettingCount];
  std::atomic<uint64_t> version_{0};
};

// The process's settings, read from the environment on first use (a bad variable throws here, and again on
// the next call until it is fixed).
inline Config& config() {
  static Config c;
  return c;
}

// The settings in effect, one a line, with where each came from (for a program's start-up log).
inline std::string config_summary() { return config().summary(); }

}  // namespace RESNET_ABI
}  // namespace resnet
