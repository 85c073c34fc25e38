// bench_block: the tail of a residual block (BN -> add -> ReLU) and its head (BN -> ReLU), forward and
// backward, at ResNet-50's activation shapes, each variant beside a plain copy measured in the same run.
//   GPU (when built with resnet::cuda and a device is present): (a) unfused, a kernel each for BN, add and
//       ReLU; (b) our fused kernels; (c) cuDNN's fused cudnnBatchNormalizationForwardTrainingEx /
//       BackwardEx (CUDNN_BATCHNORM_OPS_BN_[ADD_]ACTIVATION), which needs NHWC float16: run there, said
//       plainly elsewhere. Median of CUDA-event timings.
//   CPU: (d) unfused against fused, with the CPU backend. Median of wall-clock timings.
// Prints a table (and appends CSV rows with --csv): median ms, bytes, effective GB/s, percent of the copy's
// GB/s, and the speed-up of each variant over the unfused one.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "bench_block.hpp"
#include "flags.hpp"
#include "resnet/resnet.hpp"

namespace bb = bench_block;
using resnet::Error;

namespace {

const std::vector<bb::BlockShape> kResNet50Shapes{{64, 56, 56},  {256, 56, 56},  {128, 28, 28}, {512, 28, 28},
                                                  {256, 14, 14}, {1024, 14, 14}, {512, 7, 7},   {2048, 7, 7}};

constexpr const char* kCsvHeader = "device,dtype,block,shape,batch,pass,variant,ms,MB,GBps,pct_copy,speedup";

bb::BlockShape parse_shape(const std::string& s) {
  bb::BlockShape b{0, 0, 0};
  char x1 = 0, x2 = 0;
  std::istringstream is(s);
  if (!(is >> b.C >> x1 >> b.H >> x2 >> b.W) || x1 != 'x' || x2 != 'x' || b.C <= 0 || b.H <= 0 || b.W <= 0 ||
      is.rdbuf()->in_avail() != 0)
    throw Error("--shapes: expected CxHxW with positive sizes, got '" + s + "'");
  return b;
}

template <typename Fn>
double median_ms(Fn&& fn, int runs, int warmup) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    auto a = std::chrono::steady_clock::now();
    fn();
    auto b = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double, std::milli>(b - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// (d) the CPU backend, float32: unfused (BN, add, ReLU as separate ops) against fused.
void run_cpu(const bb::Options& o, const bb::RowSink& sink) {
  using namespace resnet;
  for (int64_t N : o.batches)
    for (const auto& sh : o.shapes) {
      const Shape s{N, sh.C, sh.H, sh.W}, cs{sh.C};
      Generator g(1);
      auto x = Tensor<float>::randn(s, g), r = Tensor<float>::randn(s, g), dy = Tensor<float>::randn(s, g);
      auto gamma = Tensor<float>::ones(cs), beta = Tensor<float>::zeros(cs);
      auto rm = Tensor<float>::zeros(cs), rv = Tensor<float>::ones(cs), sm = Tensor<float>::empty(cs),
           si = Tensor<float>::empty(cs);
      auto y = Tensor<float>::empty(s), t1 = Tensor<float>::empty(s), t2 = Tensor<float>::empty(s);
      auto dx = Tensor<float>::empty(s), dres = Tensor<float>::empty(s), dz = Tensor<float>::empty(s);
      auto dg = Tensor<float>::empty(cs), db = Tensor<float>::empty(cs);
      const double tensor_bytes = static_cast<double>(x.nbytes());
      // The baseline: a parallel memcpy of one tensor.
      const double copy_ms = median_ms(
          [&] {
            const char* src = static_cast<const char*>(x.raw_data());
            char* dst = static_cast<char*>(t1.raw_data());
            const int64_t n = static_cast<int64_t>(x.nbytes());
            parallel_for(n, 1 << 20, [&](int64_t b, int64_t e) {
              std::memcpy(dst + b, src + b, static_cast<size_t>(e - b));
            });
          },
          o.runs, o.warmup);
      const double copy_gbs = 2 * tensor_bytes / (copy_ms * 1e6);
      const BatchNormParams bp;
      for (bool tail : {false, true}) {
        if ((tail && !o.tail) || (!tail && !o.head)) continue;
        const Tensor<float>* res = tail ? &r : nullptr;
        const bb::RowContext ctx{"cpu", "float32", sh, N, tensor_bytes, copy_gbs};
        auto row = [&](const char* pass, const char* variant, double ms, bool backward, bool fused,
                       double unfused) {
          sink(bb::make_row(ctx, tail, pass, variant, ms, backward, fused ? bb::kFusedTwoPass : bb::kUnfused,
                            unfused));
        };
        if (o.forward) {
          const double unfused = median_ms(
              [&] {
                cpu::batchnorm_forward_training(x, static_cast<const Tensor<float>*>(nullptr), gamma, beta,
                                                rm, rv, sm, si, t1, bp, Activation::None);
                if (tail) cpu::add(t1, r, t2);
                cpu::relu_forward(tail ? t2 : t1, y);
              },
              o.runs, o.warmup);
          const double fused = median_ms(
              [&] {
                cpu::batchnorm_forward_training(x, res, gamma, beta, rm, rv, sm, si, y, bp, Activation::ReLU);
              },
              o.runs, o.warmup);
          row("fwd", "unfused", unfused, false, false, unfused);
          row("fwd", "fused", fused, false, true, unfused);
        }
        if (o.backward) {
          cpu::batchnorm_forward_training(x, res, gamma, beta, rm, rv, sm, si, y, bp, Activation::ReLU);
          const double unfused = median_ms(
              [&] {
                cpu::relu_backward(y, dy, dz, false);
                if (tail) std::memcpy(dres.raw_data(), dz.raw_data(), dz.nbytes());
                cpu::batchnorm_backward(x, y, dz, gamma, sm, si, true, Activation::None, &dx, false,
                                        static_cast<Tensor<float>*>(nullptr), false, &dg, &db, false);
              },
              o.runs, o.warmup);
          const double fused = median_ms(
              [&] {
                cpu::batchnorm_backward(x, y, dy, gamma, sm, si, true, Activation::ReLU, &dx, false,
                                        tail ? &dres : static_cast<Tensor<float>*>(nullptr), false, &dg, &db,
                                        false);
              },
              o.runs, o.warmup);
          row("bwd", "unfused", unfused, true, false, unfused);
          row("bwd", "fused", fused, true, true, unfused);
        }
      }
    }
}

struct Printer {
  std::ofstream csv;
  bool header = false;
  void operator()(const bb::Row& w) {
    if (!header) {
      std::printf("%-5s %-8s %-5s %-10s %5s %-4s %-13s %10s %9s %8s %6s %8s\n", "dev", "dtype", "block",
                  "shape", "batch", "pass", "variant", "median_ms", "MB", "GB/s", "%copy", "speedup");
      header = true;
    }
    if (!w.note.empty()) {
      std::printf("%-5s %-8s %-5s %-10s %5lld %-4s %-13s %s\n", w.device.c_str(), w.dtype.c_str(),
                  w.block.c_str(), w.shape.text().c_str(), static_cast<long long>(w.batch), w.pass.c_str(),
                  w.variant.c_str(), w.note.c_str());
      std::fflush(stdout);
      return;
    }
    const double gbs = w.min_bytes / (w.ms * 1e6);
    const double pct = 100.0 * gbs / w.copy_gbs;
    const double speedup = w.unfused_ms > 0 ? w.unfused_ms / w.ms : 0.0;
    std::printf(
        "%-5s %-8s %-5s %-10s %5lld %-4s %-13s %10.3f %9.1f %8.1f %6.1f %7.2fx   (moves %.0f tensors, copy "
        "%.1f GB/s)\n",
        w.device.c_str(), w.dtype.c_str(), w.block.c_str(), w.shape.text().c_str(),
        static_cast<long long>(w.batch), w.pass.c_str(), w.variant.c_str(), w.ms, w.min_bytes / 1e6, gbs, pct,
        speedup, w.moved_bytes / w.tensor_bytes, w.copy_gbs);
    std::fflush(stdout);
    if (csv.is_open())
      csv << w.device << "," << w.dtype << "," << w.block << "," << w.shape.text() << "," << w.batch << ","
          << w.pass << "," << w.variant << "," << w.ms << "," << w.min_bytes / 1e6 << "," << gbs << "," << pct
          << "," << speedup << "\n";
  }
};

}  // namespace

int main(int argc, char** argv) {
  try {
    bb::Options cpu_o, gpu_o;
    std::vector<std::string> devices{"cpu"};
#if RESNET_WITH_CUDA
    devices.push_back("cuda");
#endif
    std::vector<int64_t> batches;
    std::vector<bb::BlockShape> shapes = kResNet50Shapes;
    std::vector<std::string> dtypes{"float32", "float16"};
    std::string block = "both", pass = "both", csv, device_list, batch_list, shape_list, dtype_list;
    int runs = 0, warmup = -1, threads = 2;
    bool quick = false;
    CLI::App app(
        "Residual-block BN/add/ReLU kernels, unfused against fused, beside a plain copy (lists are "
        "comma-separated).",
        "bench_block");
    flags::setup(app);
    app.add_option("--device", device_list, "cpu,cuda")
        ->option_text("LIST")
        ->check(flags::list_of(flags::one_of({"cpu", "cuda"})))
        ->default_str("cpu, and cuda when built with it");
    app.add_option("--batch", batch_list, "batch sizes")
        ->option_text("LIST")
        ->check(flags::list_of(flags::int_in(1, 1 << 20)))
        ->default_str("16 on the CPU; 32,64,128,256 on the GPU");
    app.add_option("--shapes", shape_list, "activation shapes CxHxW")
        ->option_text("LIST")
        ->check(flags::list_of(CLI::Validator(
            [](std::string& v) -> std::string {
              try {
                parse_shape(v);
                return "";
              } catch (const Error& e) {
                return std::string(e.what()).substr(std::strlen("--shapes: "));
              }
            },
            "")))
        ->default_str("ResNet-50's 64x56x56 ... 2048x7x7");
    app.add_option("--block", block, "head | tail | both")
        ->check(flags::one_of({"head", "tail", "both"}))
        ->capture_default_str();
    app.add_option("--pass", pass, "fwd | bwd | both")
        ->check(flags::one_of({"fwd", "bwd", "both"}))
        ->capture_default_str();
    app.add_option("--dtype", dtype_list, "GPU dtypes: float32,float16")
        ->option_text("LIST")
        ->check(flags::list_of(flags::one_of({"float32", "float16"})))
        ->default_str("both");
    app.add_option("--runs", runs, "timed runs per measurement")
        ->option_text("N")
        ->check(flags::int_in(1, 1000000))
        ->default_str("10 on the CPU, 50 on the GPU");
    app.add_option("--warmup", warmup, "untimed runs first")
        ->option_text("N")
        ->check(flags::int_in(0, 1000000))
        ->default_str("2 on the CPU, 5 on the GPU");
    app.add_option("--threads", threads, "CPU threads")
        ->option_text("N")
        ->check(flags::int_in(1, 1024))
        ->capture_default_str();
    app.add_flag("--quick", quick, "few shapes, small batches, few runs (a smoke run)");
    app.add_option("--csv", csv,
                   std::string("append rows (a header line first when the file is new): ") + kCsvHeader)
        ->option_text("FILE");
    const int parsed = flags::parse(app, argc, argv);
    if (parsed >= 0) return parsed;
    if (!device_list.empty()) devices = flags::split_list(device_list);
    for (const auto& b : flags::split_list(batch_list))
      if (!batch_list.empty()) batches.push_back(std::stoll(b));
    if (!shape_list.empty()) {
      shapes.clear();
      for (const auto& v : flags::split_list(shape_list)) shapes.push_back(parse_shape(v));
    }
    if (!dtype_list.empty()) dtypes = flags::split_list(dtype_list);
    if (quick && shapes.size() == kResNet50Shapes.size())
      shapes = {{64, 56, 56}, {1024, 14, 14}, {2048, 7, 7}};
    for (bb::Options* o : {&cpu_o, &gpu_o}) {
      o->shapes = shapes;
      o->dtypes = dtypes;
      o->head = block != "tail";
      o->tail = block != "head";
      o->forward = pass != "bwd";
      o->backward = pass != "fwd";
    }
    cpu_o.batches = !batches.empty() ? batches : std::vector<int64_t>{quick ? 2 : 16};
    gpu_o.batches = !batches.empty()
                        ? batches
                        : (quick ? std::vector<int64_t>{32} : std::vector<int64_t>{32, 64, 128, 256});
    cpu_o.runs = runs ? runs : (quick ? 3 : 10);
    gpu_o.runs = runs ? runs : (quick ? 10 : 50);
    cpu_o.warmup = warmup >= 0 ? warmup : (quick ? 1 : 2);
    gpu_o.warmup = warmup >= 0 ? warmup : 5;
    resnet::set_num_threads(threads);

    Printer printer;
    if (!csv.empty()) {
      bool fresh = false;  // a new or empty file gets the header line first
      {
        std::ifstream in(csv);
        fresh = !in.good() || in.peek() == std::ifstream::traits_type::eof();
      }
      printer.csv.open(csv, std::ios::app);
      if (!printer.csv) throw Error("--csv: cannot open '" + csv + "' for appending");
      if (fresh) printer.csv << kCsvHeader << "\n";
    }
    bb::RowSink sink = [&](const bb::Row& w) { printer(w); };
    for (const auto& d : devices) {
      if (d == "cpu") {
        std::printf("bench_block: CPU backend, float32, %d threads, median of %d runs\n", threads,
                    cpu_o.runs);
        run_cpu(cpu_o, sink);
      } else {
        std::string why;
#if RESNET_WITH_CUDA
        std::printf("bench_block: GPU, median of %d CUDA-event timings of 10 iterations each\n", gpu_o.runs);
        if (!bb::run_gpu(gpu_o, sink, &why)) std::printf("bench_block: GPU part skipped: %s\n", why.c_str());
#else
        std::printf("bench_block: GPU part skipped: built without resnet::cuda\n");
#endif
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_block: %s\n", e.what());
    return 1;
  }
}
