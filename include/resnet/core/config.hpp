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
#include "resnet/core/compiled_mode.hpp"

#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
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
const std::array<SettingInfo, kSettingCount>& settings_table();

inline const SettingInfo& setting_info(SettingId id) { return settings_table()[static_cast<size_t>(id)]; }

// The row whose name or environment variable is `key`; an error listing the names when none is.
const SettingInfo& setting_info(const std::string& key);

namespace detail {

// `where` names the value in errors: the environment variable, or the setting and its variable for code.
std::string setting_where(const SettingInfo& s, bool from_env);

std::string format_number(double v);

// The one validation of a value, wherever it was set: a whole number >= 1, seconds in [0, 1e9), a bool, a
// choice's index; a backend default only where the table has one.
void validate_setting(const SettingInfo& s, double v, const std::string& where, const std::string& text);

}  // namespace detail

// The text of a setting's value (what the environment would say): "on", "gemm", "3072", "2.5".
std::string format_setting(const SettingInfo& s, double v);

// The one parser of each kind. Bool: 1/on or 0/off; Choice: one of the row's words; PositiveInt: decimal
// digits; Seconds: a decimal number. `from_env` picks how the error names the value.
double parse_setting(const SettingInfo& s, const std::string& text, bool from_env = true);

// A copy of every value and where it came from (config().snapshot()), to put back with restore().
struct ConfigSnapshot {
  std::array<double, kSettingCount> value{};
  std::array<SettingSource, kSettingCount> source{};
};

class Config {
 public:
  // The environment's values (unset or empty: the default). Throws on the first bad value.
  Config();
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
  void set(const std::string& key, const std::string& text);
  std::string get(const std::string& key) const;

  double value(SettingId id) const { return value_[idx(id)].load(); }
  SettingSource source(SettingId id) const { return static_cast<SettingSource>(source_[idx(id)].load()); }
  // Forgets a value set from code: the setting reads the environment again (or takes its default).
  void reset(SettingId id);
  void reset(const std::string& key) { reset(setting_info(key).id); }
  // Reads the environment again for every setting not set from code (for a program that changed its
  // environment after start-up); all values are checked before any changes.
  void read_environment();

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
  std::string summary() const;

 private:
  static size_t idx(SettingId id) { return static_cast<size_t>(id); }

  // Reads the variable into *v; Default when it is unset or empty (empty reads as unset, so `VAR= cmd`
  // clears a setting as a shell user expects).
  static SettingSource from_environment(const SettingInfo& s, double* v);
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

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/core/config_inl.hpp"
#endif
