// The runtime settings (core/config.hpp): each variable's parser (good values, and a bad value's error naming
// the variable and what it accepts), one validation wherever a value comes from, code over the environment,
// and the backends following config() instead of reading the environment themselves.
#include <cstdlib>
#include <set>

#include "resnet/backend/cpu/definitions.hpp"
#include "test_util.hpp"

using namespace resnet;

namespace {

// Sets (or unsets, with nullptr) one environment variable for a scope, and puts back the variable and every
// setting at scope exit.
struct EnvVar {
  std::string name, saved;
  bool had = false;
  ConfigSnapshot settings = config().snapshot();
  EnvVar(const char* var, const char* value) : name(var) {
    if (const char* v = std::getenv(var)) had = true, saved = v;
    if (value)
      setenv(var, value, 1);
    else
      unsetenv(var);
  }
  ~EnvVar() {
    if (had)
      setenv(name.c_str(), saved.c_str(), 1);
    else
      unsetenv(name.c_str());
    config().restore(settings);
  }
};

// The message of the error `fn` throws ("" when it throws none).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("config: the table has one row per setting, each with its variable, words and default",
          "[config]") {
  std::set<std::string> names, envs;
  for (const SettingInfo& s : settings_table()) {
    INFO(s.name);
    CHECK(&setting_info(s.id) == &s);
    CHECK(std::string(s.env).rfind("RESNET_", 0) == 0);
    CHECK(names.insert(s.name).second);
    CHECK(envs.insert(s.env).second);
    CHECK(std::string(s.accepted).size() > 3);
    CHECK(std::string(s.meaning).size() > 10);
    // The default's text is what the environment would say for it (or names the kernel policy).
    if (s.default_value != kBackendDefault)
      CHECK(format_setting(s, s.default_value) == s.default_text);
    else
      CHECK(contains(s.default_text, "kernel policy"));
    CHECK(&setting_info(std::string(s.name)) == &s);
    CHECK(&setting_info(std::string(s.env)) == &s);
  }
  CHECK(names.size() == static_cast<size_t>(kSettingCount));
  for (const char* env :
       {"RESNET_TF32", "RESNET_BN_SINGLE_PASS", "RESNET_BN_CLUSTERS", "RESNET_CUDA_NHWC",
        "RESNET_CUDNN_SEARCH", "RESNET_CPU_CONV", "RESNET_CPU_CONV_BF16", "RESNET_CPU_CONV_CHUNK_KB",
        "RESNET_DIST_TIMEOUT_S", "RESNET_DIST_COMM_THREAD", "RESNET_CUDA_STAGING", "RESNET_CUDA_HALF_PACKS"})
    CHECK(envs.count(env) == 1);
  CHECK(contains(error_of([] { setting_info(std::string("RESNET_NO_SUCH")); }), "no runtime setting"));
}

TEST_CASE("config: each kind's parser takes its words and refuses others by the variable's name",
          "[config]") {
  // Bool: 1/on and 0/off, nothing else (not "true", not "yes", not " on").
  for (SettingId id :
       {SettingId::Tf32, SettingId::DistCommThread, SettingId::BnSinglePass, SettingId::BnClusters,
        SettingId::CudaNhwc, SettingId::CudaStaging, SettingId::CudaHalfPacks}) {
    const SettingInfo& s = setting_info(id);
    INFO(s.env);
    CHECK(parse_setting(s, "1") == 1);
    CHECK(parse_setting(s, "on") == 1);
    CHECK(parse_setting(s, "0") == 0);
    CHECK(parse_setting(s, "off") == 0);
    for (const char* bad : {"true", "yes", " on", "2", "ON"}) {
      const std::string msg = error_of([&] { parse_setting(s, bad); });
      CHECK(contains(msg, std::string(s.env) + "='" + bad + "': expected 1, on, 0 or off"));
    }
  }
  // Choices: the words, in the enum's order.
  const SettingInfo& conv = setting_info(SettingId::CpuConv);
  CHECK(parse_setting(conv, "auto") == static_cast<int>(CpuConv::Auto));
  CHECK(parse_setting(conv, "gemm") == static_cast<int>(CpuConv::Gemm));
  CHECK(parse_setting(conv, "onednn") == static_cast<int>(CpuConv::OneDnn));
  CHECK(contains(error_of([&] { parse_setting(conv, "blas"); }),
                 "RESNET_CPU_CONV='blas': expected 'auto' (oneDNN when built with it), 'gemm'"));
  const SettingInfo& bf16 = setting_info(SettingId::CpuConvBf16);
  CHECK(parse_setting(bf16, "native") == static_cast<int>(CpuConvBf16::Native));
  CHECK(parse_setting(bf16, "float") == static_cast<int>(CpuConvBf16::Float));
  CHECK(parse_setting(bf16, "auto") == static_cast<int>(CpuConvBf16::Auto));
  // The wording train_catsdogs' smoke test looks for.
  CHECK(contains(error_of([&] { parse_setting(bf16, "fast"); }),
                 "RESNET_CPU_CONV_BF16='fast': expected 'native'"));
  const SettingInfo& search = setting_info(SettingId::CudnnSearch);
  CHECK(parse_setting(search, "benchmark") == static_cast<int>(CudnnSearch::Benchmark));
  CHECK(parse_setting(search, "heuristic") == static_cast<int>(CudnnSearch::Heuristic));
  CHECK(contains(error_of([&] { parse_setting(search, "exhaustive"); }),
                 "RESNET_CUDNN_SEARCH='exhaustive': expected 'benchmark'"));
  // A whole number >= 1.
  const SettingInfo& chunk = setting_info(SettingId::CpuConvChunkKb);
  CHECK(parse_setting(chunk, "1") == 1);
  CHECK(parse_setting(chunk, "12288") == 12288);
  for (const char* bad : {"0", "-4", "1.5", "3k", "", "1e3"})
    CHECK(contains(error_of([&] { parse_setting(chunk, bad); }),
                   std::string("RESNET_CPU_CONV_CHUNK_KB='") + bad + "': expected a positive number of KiB"));
  // Seconds >= 0, fractions allowed, 0 = no timeout.
  const SettingInfo& timeout = setting_info(SettingId::DistTimeoutS);
  CHECK(parse_setting(timeout, "0") == 0);
  CHECK(parse_setting(timeout, "2.5") == 2.5);
  CHECK(parse_setting(timeout, "600") == 600);
  for (const char* bad : {"-1", "ten", "5s", "nan", "1e10"})
    CHECK(contains(error_of([&] { parse_setting(timeout, bad); }),
                   std::string("RESNET_DIST_TIMEOUT_S='") + bad + "': expected a number of seconds >= 0"));
  // From code, the same check names the setting and its variable.
  CHECK(contains(error_of([&] { parse_setting(timeout, "-1", false); }),
                 "dist_timeout_s (RESNET_DIST_TIMEOUT_S)='-1': expected a number of seconds >= 0"));
}

TEST_CASE("config: every variable read from the environment, unset and empty meaning the default",
          "[config]") {
  struct Case {
    const char* env;
    const char* text;
    const char* reads;  // config().get() afterwards
  };
  for (const Case& c :
       {Case{"RESNET_CPU_CONV", "gemm", "gemm"}, Case{"RESNET_CPU_CONV_BF16", "float", "float"},
        Case{"RESNET_CPU_CONV_CHUNK_KB", "12288", "12288"}, Case{"RESNET_DIST_TIMEOUT_S", "2.5", "2.5"},
        Case{"RESNET_DIST_COMM_THREAD", "0", "off"}, Case{"RESNET_TF32", "off", "off"},
        Case{"RESNET_BN_SINGLE_PASS", "1", "on"}, Case{"RESNET_BN_CLUSTERS", "on", "on"},
        Case{"RESNET_CUDA_NHWC", "1", "on"}, Case{"RESNET_CUDA_STAGING", "on", "on"},
        Case{"RESNET_CUDA_HALF_PACKS", "0", "off"}, Case{"RESNET_CUDNN_SEARCH", "heuristic", "heuristic"}}) {
    INFO(c.env << "=" << c.text);
    const SettingInfo& s = setting_info(std::string(c.env));
    {
      EnvVar env(c.env, c.text);
      config().reset(s.id);
      CHECK(config().get(c.env) == c.reads);
      CHECK(config().source(s.id) == SettingSource::Environment);
      CHECK(contains(config_summary(), std::string(s.name) + " = " + c.reads + " (environment)"));
    }
    for (const char* unset : {static_cast<const char*>(nullptr), ""}) {
      EnvVar env(c.env, unset);
      config().reset(s.id);
      CHECK(config().value(s.id) == s.default_value);
      CHECK(config().source(s.id) == SettingSource::Default);
    }
    {
      // A bad value is refused when read, and the setting keeps what it had.
      EnvVar env(c.env, "bogus");
      const double before = config().value(s.id);
      CHECK(contains(error_of([&] { config().reset(s.id); }), std::string(c.env) + "='bogus': expected "));
      CHECK(contains(error_of([] { config().read_environment(); }), std::string(c.env) + "='bogus'"));
      CHECK(config().value(s.id) == before);
    }
  }
  // Typed reads of what the environment said.
  EnvVar timeout("RESNET_DIST_TIMEOUT_S", "7.25"), chunk("RESNET_CPU_CONV_CHUNK_KB", "64"),
      search("RESNET_CUDNN_SEARCH", "heuristic"), packs("RESNET_CUDA_HALF_PACKS", "on");
  config().read_environment();
  CHECK(config().dist_timeout_s() == 7.25);
  CHECK(config().cpu_conv_chunk_kb() == 64);
  CHECK(config().cudnn_search() == CudnnSearch::Heuristic);
  CHECK(config().cuda_half_packs() == std::optional<bool>(true));
}

TEST_CASE("config: code wins over the environment, validated as the environment is", "[config]") {
  EnvVar env("RESNET_DIST_TIMEOUT_S", "30");
  config().reset(SettingId::DistTimeoutS);
  CHECK(config().dist_timeout_s() == 30);
  config().set_dist_timeout_s(4.5);
  CHECK(config().dist_timeout_s() == 4.5);
  CHECK(config().source(SettingId::DistTimeoutS) == SettingSource::Code);
  // Reading the environment again leaves values set from code alone...
  config().read_environment();
  CHECK(config().dist_timeout_s() == 4.5);
  // ...and reset() forgets them.
  config().reset(SettingId::DistTimeoutS);
  CHECK(config().dist_timeout_s() == 30);
  // The typed setters refuse what the variable would, naming the setting and its variable.
  CHECK(contains(error_of([] { config().set_dist_timeout_s(-2); }),
                 "dist_timeout_s (RESNET_DIST_TIMEOUT_S)='-2': expected a number of seconds >= 0"));
  CHECK(contains(error_of([] { config().set_cpu_conv_chunk_kb(0); }),
                 "cpu_conv_chunk_kb (RESNET_CPU_CONV_CHUNK_KB)='0': expected a positive number of KiB"));
  CHECK(contains(error_of([] { config().set_cpu_conv(static_cast<CpuConv>(7)); }),
                 "cpu_conv (RESNET_CPU_CONV)='7': expected 'auto'"));
  CHECK(config().dist_timeout_s() == 30);  // refused values change nothing
  // By name or by variable, with the environment's words.
  config().set("tf32", "off");
  CHECK_FALSE(config().tf32());
  config().set("RESNET_TF32", "on");
  CHECK(config().tf32());
  CHECK(contains(error_of([] { config().set("tf32", "no"); }),
                 "tf32 (RESNET_TF32)='no': expected 1, on, 0 or off"));
  // The BatchNorm switches go back to the kernel policy with nullopt.
  config().set_bn_clusters(true);
  CHECK(config().bn_clusters() == std::optional<bool>(true));
  {
    EnvVar unset("RESNET_BN_CLUSTERS", nullptr);
    config().set_bn_clusters(std::nullopt);
    CHECK_FALSE(config().bn_clusters().has_value());
    CHECK(config().get("bn_clusters") == "default");
  }
  // Every change moves the version the backends watch.
  const uint64_t v = config().version();
  config().set_cuda_staging(true);
  CHECK(config().version() > v);
  CHECK(contains(config_summary(), "cuda_staging = on (set from code)"));
}

TEST_CASE("config: the CPU convolutions follow the settings, and their setters are the settings'",
          "[config]") {
  const ConfigSnapshot saved = config().snapshot();
  // float32: cpu_conv.
  config().set_cpu_conv(CpuConv::Gemm);
  CHECK(cpu::float_conv_impl() == cpu::ConvImpl::Gemm);
  config().set_cpu_conv(CpuConv::Auto);
  CHECK(cpu::float_conv_impl() == (cpu::onednn_available() ? cpu::ConvImpl::OneDnn : cpu::ConvImpl::Gemm));
  cpu::set_float_conv_impl(cpu::ConvImpl::Gemm);
  CHECK(config().cpu_conv() == CpuConv::Gemm);
  if (!cpu::onednn_available()) {
    config().set_cpu_conv(CpuConv::OneDnn);
    CHECK(contains(error_of([] { cpu::float_conv_impl(); }), "cpu_conv=onednn: oneDNN was not found"));
  }
  // bfloat16: cpu_conv_bf16, with the reason naming where the choice came from.
  config().set_cpu_conv_bf16(CpuConvBf16::Float);
  CHECK(cpu::bf16_conv_impl() == cpu::Bf16Conv::ViaFloat);
  CHECK(cpu::bf16_conv_choice().why == "cpu_conv_bf16=float");
  {
    EnvVar env("RESNET_CPU_CONV_BF16", "float");
    config().reset(SettingId::CpuConvBf16);
    CHECK(cpu::bf16_conv_choice().why == "RESNET_CPU_CONV_BF16=float");
  }
  if (cpu::bf16_native_available()) {
    cpu::set_bf16_conv_impl(cpu::Bf16Conv::Native);
    CHECK(config().cpu_conv_bf16() == CpuConvBf16::Native);
    CHECK(cpu::bf16_conv_impl() == cpu::Bf16Conv::Native);
  } else {
    config().set_cpu_conv_bf16(CpuConvBf16::Native);
    CHECK(contains(error_of([] { cpu::bf16_conv_impl(); }), "cpu_conv_bf16=native: this CPU has no oneDNN"));
  }
  cpu::set_bf16_conv_impl(cpu::Bf16Conv::ViaFloat);
  CHECK(config().cpu_conv_bf16() == CpuConvBf16::Float);
  CHECK(cpu::bf16_conv_impl() == cpu::Bf16Conv::ViaFloat);
#if defined(RESNET_HAVE_DNNL)
  // The oneDNN chunk target: cpu_conv_chunk_kb KiB.
  config().set_cpu_conv_chunk_kb(12);
  CHECK(cpu::onednn::chunk_bytes() == 12u * 1024u);
  CHECK(cpu::onednn::chunk_images(16, 1024) == 3);  // 4 KiB an image: 3 fit, 16 = 6 chunks of 3
#endif
  config().restore(saved);
  CHECK(cpu::float_conv_impl() == (config().cpu_conv() == CpuConv::Gemm ? cpu::ConvImpl::Gemm
                                   : cpu::onednn_available()            ? cpu::ConvImpl::OneDnn
                                                                        : cpu::ConvImpl::Gemm));
}

TEST_CASE("config: a snapshot puts back values and where they came from", "[config]") {
  const ConfigSnapshot before = config().snapshot();
  config().set_tf32(!config().tf32());
  config().set_cudnn_search(CudnnSearch::Heuristic);
  CHECK(config().source(SettingId::Tf32) == SettingSource::Code);
  config().restore(before);
  const ConfigSnapshot after = config().snapshot();
  CHECK(after.value == before.value);
  CHECK(after.source == before.source);
}
