// bench_train: images/s of a whole ResNet training step (forward, loss, backward, SGD) and of inference,
// plus peak memory, for ours and for PyTorch's torchvision model with the same shapes and threads, measured
// side by side in one invocation, with the ratio ours/PyTorch.
//
// Each measurement runs in its own process (this program re-runs itself with --child; PyTorch runs through
// benchmarks/torch_train.py), so one measurement's cached memory or warm threads never flatter another's
// peak memory, and both sides are measured the same way: on the CPU, peak memory is the resident
// high-water mark minus the resident size before the model was built; on the GPU, the caching allocator's
// peak of allocated bytes (torch.cuda.max_memory_allocated on PyTorch's side).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "resnet/train/recipe_fields.hpp"
#include "flags.hpp"

#if RESNET_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#ifndef RESNET_BENCH_DIR
#define RESNET_BENCH_DIR "benchmarks"
#endif

namespace {

using resnet::Error;
std::vector<std::string> split(const std::string& s) { return flags::split_list(s); }

struct Config {
  std::string arch = "resnet18";
  int64_t batch = 16, size = 128, classes = 1000, threads = 2, steps = 10, warmup = 3;
  std::string device = "cpu", dtype = "float32", mode = "train";
  std::string memory_format = "nchw";  // nchw or nhwc (channels-last)
  bool cuda_graph = false;             // ours: the training step captured and replayed (GPU only)
};

struct Result {
  bool ok = false;
  std::string skip;  // why there is no number
  double images_per_s = 0, peak_mem_mb = 0;
  double host_syncs_per_step = -1;  // CUDA: cuda::host_sync_count() over the timed steps; -1: not measured
};

double status_mb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0) return std::atof(line.c_str() + n) / 1024.0;
  return 0.0;
}

void sync_device(resnet::Device d) {
#if RESNET_WITH_CUDA
  if (d.is_cuda()) RESNET_CHECK(cudaDeviceSynchronize() == cudaSuccess, "cudaDeviceSynchronize failed");
#else
  (void)d;
#endif
}

// ---------------------------------------------------------------- one measurement of ours (child process)

template <typename T>
Result measure_ours(const Config& c) {
  using namespace resnet;
  using P = acc_t<T>;
  Device dev = Device::parse(c.device);
  set_num_threads(static_cast<int>(c.threads));
  const double base = status_mb("VmRSS:");
#if RESNET_WITH_CUDA
  if (dev.is_cuda())
    RESNET_CHECK(dev.index < cuda::device_count() && cudaSetDevice(dev.index) == cudaSuccess, "cannot use ",
                 dev.to_string(), ": ",
                 cuda::device_count() == 0 ? cuda::unavailable_reason()
                                           : std::to_string(cuda::device_count()) + " device(s) present");
#endif
  auto o = models::ResNetOptions().num_classes(c.classes).seed(1);
  auto net = models::resnet<T>(c.arch, o);
  net->to(dev);
  const MemoryFormat fmt = c.memory_format == "nhwc" ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
  net->to(fmt);
  Generator gen(2);
  Tensor<float> xf = Tensor<float>::randn({c.batch, 3, c.size, c.size}, gen);
  Tensor<T> xh = Tensor<T>::empty(xf.shape());
  for (int64_t i = 0; i < xf.numel(); ++i) xh.data()[i] = static_cast<T>(xf.data()[i]);
  Tensor<T> x = xh.to(dev);
  // Converted once, as a loader's collate would; CUDA tensors only where the NHWC kernels are on.
  if (resnet::detail::takes_channels_last(dev)) x = x.contiguous(fmt);
#if RESNET_WITH_CUDA
  if (dev.is_cuda() && fmt == MemoryFormat::ChannelsLast)
    std::fprintf(stderr, "bench_train: CUDA channels-last kernels %s\n",
                 cuda::channels_last_enabled()
                     ? "on"
                     : "off (the ops convert to NCHW; RESNET_CUDA_NHWC=1 turns them on)");
#endif
  std::vector<int32_t> lv(static_cast<size_t>(c.batch));
  for (size_t i = 0; i < lv.size(); ++i)
    lv[i] = static_cast<int32_t>((i * 7919) % static_cast<size_t>(c.classes));
  const Tensor<int32_t> labels_host = Tensor<int32_t>::from_vector(lv, {c.batch});
  Tensor<int32_t> labels = labels_host.to(dev);

  std::unique_ptr<optim::SGD<P>> opt;
  nn::CrossEntropyLoss<T> loss_fn;
  if (c.mode == "train") {
    net->train();
    auto so = optim::SGDOptions().lr(0.01).momentum(0.9).weight_decay(5e-4);
    opt = std::make_unique<optim::SGD<P>>(net->named_parameters(), so);
  } else {
    net->eval();
  }
  // --cuda-graph on: the same step (zero_grad, forward, loss, backward, update) captured after the
  // GraphedStep's own warm-up and replayed; the labels still go up every step, into its static tensor.
  std::unique_ptr<train::GraphedStep<T>> graphed;
  if (c.cuda_graph) {
    RESNET_CHECK(dev.is_cuda() && opt, "--cuda-graph on: needs --device cuda and training, got ",
                 dev.to_string(), " ", c.mode);
    graphed = std::make_unique<train::GraphedStep<T>>(dev, train::standard_step<T>(*net, *opt));
    graphed->watch(*net);
    graphed->watch(*opt);
  }
  auto step = [&]() {
    if (graphed) {
      labels = to_device_async(labels_host, dev);
      graphed->run(x, labels);
    } else if (opt) {
      opt->zero_grad();
      labels = to_device_async(labels_host, dev);  // every step, as a training loop uploads its batch's
      Tensor<T> loss = loss_fn(net->forward(x), labels);
      loss.backward();
      opt->step();
    } else {
      NoGradGuard ng;
      Tensor<T> y = net->forward(x);
    }
  };
#if RESNET_WITH_CUDA
  // Like torch.cuda.max_memory_allocated after reset_peak_memory_stats: the model and inputs included.
  if (dev.is_cuda()) cuda::reset_peak_memory(dev.index);
#endif
  for (int64_t i = 0; i < c.warmup; ++i) step();
  sync_device(dev);
#if RESNET_WITH_CUDA
  const uint64_t syncs0 = dev.is_cuda() ? cuda::host_sync_count() : 0;
#endif
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < c.steps; ++i) step();
#if RESNET_WITH_CUDA
  const uint64_t syncs = dev.is_cuda() ? cuda::host_sync_count() - syncs0 : 0;
#endif
  sync_device(dev);
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Result r;
  r.ok = true;
  r.images_per_s = static_cast<double>(c.batch * c.steps) / dt;
  r.peak_mem_mb = status_mb("VmHWM:") - base;
#if RESNET_WITH_CUDA
  if (dev.is_cuda()) r.host_syncs_per_step = static_cast<double>(syncs) / static_cast<double>(c.steps);
#endif
#if RESNET_WITH_CUDA
  if (dev.is_cuda())
    r.peak_mem_mb =
        static_cast<double>(cuda::memory_stats(dev.index).peak_allocated_bytes) / (1024.0 * 1024.0);
#endif
  return r;
}

Result measure_ours_dispatch(const Config& c) {
  resnet::Device dev = resnet::Device::parse(c.device);
  Result skip;
  if (dev.is_cuda() && !resnet::cuda_compiled()) {
    skip.skip = "built without CUDA";
    return skip;
  }
  if (c.memory_format != "nchw" && c.memory_format != "nhwc")
    throw Error("unknown --memory-format '" + c.memory_format + "' (expected nchw or nhwc)");
  if (c.dtype == "float32") return measure_ours<float>(c);
  if (dev.is_cpu() && c.dtype == "bfloat16") return measure_ours<resnet::bf16_t>(c);
  if (dev.is_cpu()) {
    skip.skip = "float16 is measured on the GPU only";
    return skip;
  }
#if RESNET_WITH_CUDA
  if (c.dtype == "float16") return measure_ours<resnet::half_t>(c);
  if (c.dtype == "bfloat16") return measure_ours<resnet::bf16_t>(c);
#endif
  throw Error("unknown --dtype '" + c.dtype + "' (expected float32, float16 or bfloat16)");
}

// ---------------------------------------------------------------- the parent: run children, tabulate

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// Runs a command, returns its stdout; the RESULT/SKIP line is parsed from it.
Result run_and_parse(const std::string& cmd) {
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    r.skip = "could not start: " + cmd;
    return r;
  }
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  int status = pclose(p);
  std::stringstream ss(out);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.rfind("RESULT ", 0) == 0) {
      const char* ips = std::strstr(line.c_str(), "images_per_s=");
      const char* mem = std::strstr(line.c_str(), "peak_mem_mb=");
      const char* syncs = std::strstr(line.c_str(), "host_syncs_per_step=");
      if (syncs) r.host_syncs_per_step = std::atof(syncs + std::strlen("host_syncs_per_step="));
      if (ips && mem) {
        r.ok = true;
        r.images_per_s = std::atof(ips + std::strlen("images_per_s="));
        r.peak_mem_mb = std::atof(mem + std::strlen("peak_mem_mb="));
      }
    } else if (line.rfind("SKIP ", 0) == 0) {
      r.skip = line.substr(5);
    }
  }
  if (!r.ok && r.skip.empty()) {
    std::ostringstream why;
    why << "failed (exit status " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1) << ")";
    r.skip = why.str();
  }
  return r;
}

std::string child_args(const Config& c) {
  std::ostringstream a;
  a << " --arch " << c.arch << " --batch " << c.batch << " --size " << c.size << " --classes " << c.classes
    << " --device " << c.device << " --dtype " << c.dtype << " --threads " << c.threads << " --steps "
    << c.steps << " --warmup " << c.warmup << " --mode " << c.mode;
  return a.str();
}
// PyTorch's baseline for a row: channels_last for nhwc rows and for bfloat16 (autocast is run as a user
// tuning for speed writes it), or everywhere with --torch-channels-last.
bool torch_cl(const Config& c, bool force) {
  return force || c.memory_format == "nhwc" || c.dtype == "bfloat16";
}
std::string our_args(const Config& c) {
  return child_args(c) + " --memory-format " + c.memory_format + (c.cuda_graph ? " --cuda-graph on" : "");
}

void append_csv(const std::string& path, const std::string& impl, const Config& c, const Result& r,
                const std::string& memory_format, const std::string& cuda_graph) {
  if (path.empty() || !r.ok) return;
  bool fresh = false;
  {
    std::ifstream in(path);
    fresh = !in.good() || in.peek() == std::ifstream::traits_type::eof();
  }
  std::ofstream f(path, std::ios::app);
  if (!f) throw Error("--csv: cannot open '" + path + "' for appending");
  // memory_format, then host_syncs_per_step (empty where not measured: the CPU, PyTorch)
  // are the last columns: the columns before them keep their order.
  // cuda_graph last of all: on/off for our rows, empty for PyTorch's.
  if (fresh)
    f << "impl,arch,batch,size,device,dtype,images_per_s,peak_mem_mb,memory_format,host_syncs_per_step,"
         "cuda_graph\n";
  char syncs[32] = "";
  if (r.host_syncs_per_step >= 0) std::snprintf(syncs, sizeof syncs, "%.2f", r.host_syncs_per_step);
  char line[300];
  std::snprintf(line, sizeof line, "%s,%s,%lld,%lld,%s,%s,%.3f,%.1f,%s,%s,%s\n",
                (impl + (c.mode == "infer" ? "-infer" : "")).c_str(), c.arch.c_str(),
                static_cast<long long>(c.batch), static_cast<long long>(c.size), c.device.c_str(),
                c.dtype.c_str(), r.images_per_s, r.peak_mem_mb, memory_format.c_str(), syncs,
                cuda_graph.c_str());
  f << line;
}

std::string fmt(const Result& r, const char* f) {
  if (!r.ok) return "-";
  char b[64];
  std::snprintf(b, sizeof b, f, r.images_per_s);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  Config base;
  std::string archs = "resnet18", batches = "16", sizes = "128", dtypes = "float32", mode = "both", csv;
  std::string formats = "nchw", device = "cpu", cuda_graph = "off";
  std::string python = "/usr/bin/python3", script = std::string(RESNET_BENCH_DIR) + "/torch_train.py";
  bool child = false, no_torch = false, torch_channels_last = false;
  int64_t repeat = 1;
  CLI::App app(
      "Whole-network training and inference throughput, ours beside PyTorch (lists are comma-separated; "
      "every combination is measured).",
      "bench_train");
  flags::setup(app);
  const auto positive = flags::int_in(1, int64_t(1) << 40);
  app.add_option("--arch", archs, "networks")
      ->option_text("LIST")
      ->check(flags::list_of(flags::one_of(resnet::train::recipe_archs())))
      ->capture_default_str();
  app.add_option("--batch", batches, "batch sizes")
      ->option_text("LIST")
      ->check(flags::list_of(positive))
      ->capture_default_str();
  app.add_option("--size", sizes, "input height = width")
      ->option_text("LIST")
      ->check(flags::list_of(positive))
      ->capture_default_str();
  app.add_option("--mode", mode, "train | infer | both")
      ->option_text("M")
      ->check(flags::one_of({"train", "infer", "both"}))
      ->capture_default_str();
  app.add_option("--device", device, "cpu | cuda")
      ->option_text("D")
      ->check(flags::one_of({"cpu", "cuda"}))
      ->capture_default_str();
  app.add_option("--dtype", dtypes, "float32,float16,bfloat16 (float16 on the GPU only)")
      ->option_text("LIST")
      ->check(flags::list_of(flags::one_of({"float32", "float16", "bfloat16"})))
      ->capture_default_str();
  app.add_option("--memory-format", formats,
                 "nchw,nhwc: activations row-major or channels-last; the PyTorch run uses the same "
                 "(channels_last for "
                 "bfloat16 autocast always)")
      ->option_text("LIST")
      ->check(flags::list_of(flags::one_of({"nchw", "nhwc"})))
      ->capture_default_str();
  app.add_option("--cuda-graph", cuda_graph,
                 "ours: capture the whole training step in a CUDA graph after the warm-up and replay it "
                 "(train::GraphedStep; GPU training rows only)")
      ->option_text("on|off")
      ->check(flags::on_off())
      ->capture_default_str();
  app.add_option("--threads", base.threads, "CPU threads for us and for PyTorch")
      ->option_text("N")
      ->check(positive)
      ->capture_default_str();
  app.add_option("--steps", base.steps, "timed steps")
      ->option_text("N")
      ->check(positive)
      ->capture_default_str();
  app.add_option("--warmup", base.warmup, "untimed steps first")
      ->option_text("N")
      ->check(flags::int_in(0, 1000000))
      ->capture_default_str();
  app.add_option("--repeat", repeat, "runs of each side, the best kept")
      ->option_text("N")
      ->check(positive)
      ->capture_default_str();
  app.add_option("--classes", base.classes, "classifier outputs")
      ->option_text("N")
      ->check(positive)
      ->capture_default_str();
  app.add_option("--csv", csv,
                 "append rows impl,arch,batch,size,device,dtype,images_per_s,peak_mem_mb,memory_format,"
                 "host_syncs_per_step,cuda_graph (mode 'infer' rows carry impl ours-infer / torch-infer)")
      ->option_text("FILE");
  app.add_flag("--no-torch", no_torch, "skip the PyTorch baseline");
  app.add_flag(
      "--torch-channels-last", torch_channels_last,
      "run the baseline in channels-last memory format (faster for PyTorch's 16-bit GPU path); its CSV "
      "rows carry impl torch-cl (torch-cl-infer)");
  app.add_option("--python", python, "Python with torch")->option_text("EXE")->capture_default_str();
  app.add_option("--torch-script", script, "the baseline script")->option_text("F")->capture_default_str();
  app.add_flag("--child", child, "internal: measure one configuration of ours and print its RESULT line");
  const int parsed = flags::parse(app, argc, argv);
  if (parsed >= 0) return parsed;
  bool torch = !no_torch;
  base.device = device;
  base.cuda_graph = flags::is_on(cuda_graph);
  try {
    for (auto& arch : split(archs)) resnet::models::resnet_spec(arch);  // fail early on a bad name
    if (base.cuda_graph && base.device.rfind("cuda", 0) != 0)
      throw Error("--cuda-graph on: CUDA graphs need --device cuda, got --device " + base.device);
    if (child) {
      base.arch = archs;
      base.batch = std::stoll(batches);
      base.size = std::stoll(sizes);
      base.dtype = dtypes;
      base.mode = mode;
      base.memory_format = formats;
      Result r;
      try {
        r = measure_ours_dispatch(base);
      } catch (const std::exception& e) {
        r.skip = e.what();  // e.g. no usable GPU: reported in the table, not as a crash
      }
      if (r.ok)
        std::printf("RESULT images_per_s=%.3f peak_mem_mb=%.1f host_syncs_per_step=%.3f\n", r.images_per_s,
                    r.peak_mem_mb, r.host_syncs_per_step);
      else
        std::printf("SKIP %s\n", r.skip.c_str());
      return 0;
    }

    const std::string self = "/proc/self/exe";
    char exe[4096];
    ssize_t n = readlink(self.c_str(), exe, sizeof exe - 1);
    if (n <= 0) throw Error("cannot find this program's path through /proc/self/exe");
    exe[n] = '\0';
    if (torch && access(script.c_str(), R_OK) != 0) {
      std::printf("note: PyTorch baseline skipped: script '%s' not readable (use --torch-script)\n",
                  script.c_str());
      torch = false;
    }
    if (torch && access(python.c_str(), X_OK) != 0) {
      std::printf("note: PyTorch baseline skipped: '%s' not found (use --python)\n", python.c_str());
      torch = false;
    }
    std::vector<std::string> modes =
        mode == "both" ? std::vector<std::string>{"train", "infer"} : std::vector<std::string>{mode};
    std::printf(
        "bench_train: %s, %lld threads, %lld warm-up + %lld timed steps, SGD(momentum 0.9), best of %lld\n",
        base.device.c_str(), static_cast<long long>(base.threads), static_cast<long long>(base.warmup),
        static_cast<long long>(base.steps), static_cast<long long>(repeat));
    std::printf("%-9s %5s %5s %-5s %-8s %-4s | %10s %9s | %10s %9s | %7s %7s\n", "arch", "batch", "size",
                "mode", "dtype", "fmt", "ours img/s", "ours MB", "torch img/s", "torch MB", "speed",
                "memory");
    std::fflush(stdout);
    for (auto& arch : split(archs))
      for (auto& b : split(batches))
        for (auto& s : split(sizes))
          for (auto& dt : split(dtypes))
            for (auto& mf : split(formats))
              for (auto& m : modes) {
                Config c = base;
                c.memory_format = mf;
                c.arch = arch;
                c.batch = std::stoll(b);
                c.size = std::stoll(s);
                c.dtype = dt;
                c.mode = m;
                // Ours and PyTorch alternate, `repeat` times each; the best run of each side is kept, because
                // on a shared machine other work only ever slows a run down.
                Result ours, theirs;
                if (!torch) theirs.skip = "--no-torch";
                for (int64_t rep = 0; rep < repeat; ++rep) {
                  Result o = run_and_parse(shell_quote(exe) + " --child" + our_args(c));
                  if (o.ok && (!ours.ok || o.images_per_s > ours.images_per_s)) ours = o;
                  if (!ours.ok && !o.ok) ours = o;
                  if (!torch) continue;
                  Result t = run_and_parse(shell_quote(python) + " " + shell_quote(script) + child_args(c) +
                                           (torch_cl(c, torch_channels_last) ? " --channels-last" : ""));
                  if (t.ok && (!theirs.ok || t.images_per_s > theirs.images_per_s)) theirs = t;
                  if (!theirs.ok && !t.ok) theirs = t;
                }
                char ratio[32] = "-", mem_ratio[32] = "-";
                if (ours.ok && theirs.ok) {
                  std::snprintf(ratio, sizeof ratio, "%.2fx", ours.images_per_s / theirs.images_per_s);
                  if (theirs.peak_mem_mb > 0)
                    std::snprintf(mem_ratio, sizeof mem_ratio, "%.2fx",
                                  ours.peak_mem_mb / theirs.peak_mem_mb);
                }
                char om[32] = "-", tm[32] = "-";
                if (ours.ok) std::snprintf(om, sizeof om, "%.0f", ours.peak_mem_mb);
                if (theirs.ok) std::snprintf(tm, sizeof tm, "%.0f", theirs.peak_mem_mb);
                std::printf("%-9s %5lld %5lld %-5s %-8s %-4s | %10s %9s | %10s %9s | %7s %7s\n", arch.c_str(),
                            static_cast<long long>(c.batch), static_cast<long long>(c.size), m.c_str(),
                            dt.c_str(), mf.c_str(), fmt(ours, "%.2f").c_str(), om,
                            fmt(theirs, "%.2f").c_str(), tm, ratio, mem_ratio);
                if (!ours.ok) std::printf("  ours: %s\n", ours.skip.c_str());
                if (ours.ok && ours.host_syncs_per_step >= 0)
                  std::printf("  ours: %.2f host syncs per step (cuda::host_sync_count)\n",
                              ours.host_syncs_per_step);
                if (!theirs.ok && torch) std::printf("  torch: %s\n", theirs.skip.c_str());
                std::fflush(stdout);
                const bool tcl = torch_cl(c, torch_channels_last);
                append_csv(csv, "ours", c, ours, mf, c.cuda_graph ? "on" : "off");
                append_csv(csv, tcl ? "torch-cl" : "torch", c, theirs, tcl ? "nhwc" : "nchw", "");
              }
    std::printf(
        "speed = ours/torch images per second (higher is better); memory = ours/torch peak (lower is "
        "better)\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train: %s\n", e.what());
    return 1;
  }
}
