// The op test registry, in the manner of ggml's test-backend-ops: every op is declared once (its inputs,
// shapes, parameters and tolerances per dtype) and the suite runs it in every mode that applies:
//
//   grad  the op's public autograd form on CPU doubles against central differences;
//   fast  the CPU backend in float (oneDNN, the vectorised paths) against the CPU backend in double;
//   sim   the CUDA kernels on the CPU simulator (tests/cuda/sim.hpp), every dtype, both thread orders and
//         each simulated device of the entry, against the CPU backend in double;
//   gpu   the CUDA backend on a GPU, every dtype, against the CPU backend in double (skipped without one);
//   time  (on request) milliseconds per call on each backend.
//
// An entry is written once, generically over a backend B (Cpu, Sim or Cuda: the same function names and
// signatures as resnet::cpu) and a storage type T; see cases_*.cpp. Inputs are drawn in double, rounded to T
// and back, so the reference computes on exactly the values the backend under test sees. Outputs start as
// a sentinel (of opposite signs for the tested run and the reference) so an element never written fails,
// or, when the entry accumulates, as the same random values on both sides.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "resnet/resnet.hpp"

namespace opreg {

using resnet::acc_t;
using resnet::bf16_t;
using resnet::Device;
using resnet::DType;
using resnet::half_t;
using resnet::Shape;
using resnet::Tensor;
using resnet::TensorBase;

enum Mode : unsigned { kGrad = 1, kFast = 2, kSim = 4, kGpu = 8 };

// How an input is drawn. Activations are stored as T, parameters as acc_t<T> (float for 16-bit T, as
// BatchNorm's gamma and optimizer state are), labels as int32 in [0, classes).
struct Input {
  enum Kind { Act, Param, Labels };
  std::string name;
  Shape shape;
  Kind kind = Act;
  double mean = 0.0, sd = 1.0;
  bool positive = false;       // |value| + mean: variances, invstd
  bool differentiable = true;  // in the gradient check (grad mode)
  int32_t classes = 0;         // Labels only
};
inline Input act(std::string name, Shape s, double sd = 1.0, double mean = 0.0) {
  return Input{std::move(name), std::move(s), Input::Act, mean, sd};
}
// The gradient a backward pass receives: an input of the backend entry, not of the op's autograd form.
inline Input grad_in(std::string name, Shape s, double sd = 1.0, double mean = 0.0) {
  Input i{std::move(name), std::move(s), Input::Act, mean, sd};
  i.differentiable = false;
  return i;
}
inline Input param(std::string name, Shape s, double sd = 1.0, double mean = 0.0) {
  return Input{std::move(name), std::move(s), Input::Param, mean, sd};
}
inline Input positive_param(std::string name, Shape s, double offset) {
  Input i{std::move(name), std::move(s), Input::Param, offset, 1.0, true};
  return i;
}
inline Input labels(std::string name, int64_t n, int32_t classes) {
  Input i{std::move(name), Shape{n}, Input::Labels};
  i.differentiable = false;
  i.classes = classes;
  return i;
}

// Largest scale-relative error allowed, per dtype of the run under test (the reference is always double).
struct Tolerance {
  double f64 = 1e-12, f32 = 2e-6, f16 = 2e-3, bf16 = 1.6e-2;
  double grad = 1e-6;  // central differences (grad mode)
  double gpu_f32 = 0;  // the GPU in float where cuDNN/cuBLAS differ from our kernels (0: f32)
  double of(DType t, bool gpu) const {
    switch (t) {
      case DType::F64:
        return f64;
      case DType::F32:
        return gpu && gpu_f32 > 0 ? gpu_f32 : f32;
      case DType::F16:
        return f16;
      default:
        return bf16;
    }
  }
  Tolerance scaled(double k) const {
    Tolerance t = *this;
    t.f64 *= k;
    t.f32 *= k;
    t.f16 *= k;
    t.bf16 *= k;
    t.gpu_f32 *= k;
    return t;
  }
};

// A simulated device: multiprocessors (the plans split reductions by them), compute capability (9 lets
// BatchNorm use thread-block clusters) and a named configuration the entry reads (BatchNorm's kernel
// choice).
struct SimDevice {
  std::string name;
  int sm = 2;
  int cc_major = 0;
  int variant = 0;
};

template <typename U>
double to_double(U v) {
  if constexpr (std::is_same<U, half_t>::value || std::is_same<U, bf16_t>::value) {
    return static_cast<double>(static_cast<float>(v));
  } else {
    return static_cast<double>(v);
  }
}

template <typename U>
std::vector<double> host_values(const Tensor<U>& t) {
  const std::vector<U> v = t.to(Device::cpu()).to_vector();
  std::vector<double> d(v.size());
  for (size_t i = 0; i < v.size(); ++i) d[i] = to_double(v[i]);
  return d;
}

// What one run hands the entry: typed inputs on the backend's device and the outputs it registers.
template <typename T>
class Args {
 public:
  using P = acc_t<T>;
  // `format`: the memory format of every rank-4 activation input and output (the [nhwc] runs).
  Args(Device dev, bool accumulate, double sentinel,
       resnet::MemoryFormat format = resnet::MemoryFormat::Contiguous)
      : acc(accumulate), format(format), dev_(dev), sentinel_(sentinel) {}

  const Tensor<T>& x(size_t i) const { return xs_.at(i); }
  Tensor<P>& p(size_t i) { return ps_.at(i); }
  const Tensor<int32_t>& labels(size_t i) const { return ls_.at(i); }
  Device device() const { return dev_; }

  // A new output of the run (a handle: its storage is what gets compared): a sentinel, or the same random
  // values in both runs when accumulating.
  Tensor<T> out(const std::string& name, const Shape& s) { return add_out<T>(name, s, outs_t_, 0); }
  Tensor<P> out_p(const std::string& name, const Shape& s) { return add_out<P>(name, s, outs_p_, 1); }
  Tensor<int32_t> out_i(const std::string& name, const Shape& s) {
    outs_i_.emplace_back(name, laid_out(Tensor<int32_t>::full(s, -7)).to(dev_));
    order_.push_back({2, outs_i_.size() - 1});
    return outs_i_.back().second;
  }
  // A parameter input the op updates (running statistics, optimizer state): compared after the run.
  void keep_p(const std::string& name, size_t i) {
    kept_.emplace_back(name, i);
    order_.push_back({3, kept_.size() - 1});
  }
  // A tensor the op updates in place, compared by its change (after minus now): optimizer updates.
  void keep_delta(const std::string& name, const Tensor<T>& t) {
    deltas_.push_back({name, t, host_values(t)});
    order_.push_back({4, deltas_.size() - 1});
  }
  // A tensor the entry made itself, to be compared.
  void result(const std::string& name, const Tensor<T>& t) {
    outs_t_.emplace_back(name, t);
    order_.push_back({0, outs_t_.size() - 1});
  }

  const bool acc;  // accumulate into gradient outputs (entries whose ops take the flag)
  const resnet::MemoryFormat format;
  // A host tensor in the run's memory format (rank 4 only; others stay row-major).
  template <typename U>
  Tensor<U> laid_out(const Tensor<U>& t) const {
    return t.rank() == 4 ? t.contiguous(format) : t;
  }

  // ---- for the runner
  std::vector<Tensor<T>> xs_;
  std::vector<Tensor<P>> ps_;
  std::vector<Tensor<int32_t>> ls_;
  // Outputs, in the order the entry registered them, as (name, values in double on the host).
  std::vector<std::pair<std::string, std::vector<double>>> collect() const;

 private:
  template <typename U>
  Tensor<U>& add_out(const std::string& name, const Shape& s,
                     std::vector<std::pair<std::string, Tensor<U>>>& v, int list);

  Device dev_;
  double sentinel_;
  std::vector<std::pair<std::string, Tensor<T>>> outs_t_;
  std::vector<std::pair<std::string, Tensor<P>>> outs_p_;
  std::vector<std::pair<std::string, Tensor<int32_t>>> outs_i_;
  std::vector<std::pair<std::string, size_t>> kept_;
  struct Delta {
    std::string name;
    Tensor<T> t;
    std::vector<double> before;
  };
  std::vector<Delta> deltas_;
  std::vector<std::pair<int, size_t>> order_;  // (which list, index)
};

struct Cpu;
struct Sim;
struct Cuda;

// One op, declared once. `run` is stored once per (backend, dtype) it can run on.
struct Entry {
  std::string op;      // e.g. "relu"
  std::string params;  // e.g. "n=1000 offset=1"
  std::vector<Input> inputs;
  Tolerance tol;
  unsigned modes = kFast | kSim | kGpu;
  bool accumulates = false;  // run once overwriting and once accumulating into the outputs
  bool in_place = false;     // the op always adds into its output (add_inplace): outputs start random
  std::vector<SimDevice> sim_devices{{"1 SM", 1, 0, 0}, {"16 SMs", 16, 0, 0}};
  bool sim_16bit = true;  // the kernels take float16/bfloat16 too
  std::string note;       // why a mode does not apply, printed in the summary

  // The op's public, differentiable form on CPU doubles (grad mode): acts, params, labels in order.
  std::function<Tensor<double>(const std::vector<Tensor<double>>&, const std::vector<Tensor<double>>&,
                               const std::vector<Tensor<int32_t>>&)>
      graph;

  std::function<void(Cpu&, Args<double>&)> cpu_f64;
  std::function<void(Cpu&, Args<float>&)> cpu_f32;
  std::function<void(Cpu&, Args<bf16_t>&)> cpu_bf16;
  std::function<void(Sim&, Args<double>&)> sim_f64;
  std::function<void(Sim&, Args<float>&)> sim_f32;
  std::function<void(Sim&, Args<half_t>&)> sim_f16;
  std::function<void(Sim&, Args<bf16_t>&)> sim_bf16;
  std::function<void(Cuda&, Args<double>&)> gpu_f64;
  std::function<void(Cuda&, Args<float>&)> gpu_f32;
  std::function<void(Cuda&, Args<half_t>&)> gpu_f16;
  std::function<void(Cuda&, Args<bf16_t>&)> gpu_bf16;

  std::string title() const { return op + (params.empty() ? "" : " [" + params + "]"); }

  // Declaration helpers: op("relu", "n=7", {act("x", {7})}).accumulating().grad(...).
  using Graph = decltype(graph);
  Entry& accumulating() {
    accumulates = true;
    return *this;
  }
  Entry& adds_into_output() {
    in_place = true;
    return *this;
  }
  Entry& tolerance(const Tolerance& t) {
    tol = t;
    return *this;
  }
  Entry& grad(Graph g) {
    graph = std::move(g);
    return *this;
  }
  Entry& devices(std::vector<SimDevice> d) {
    sim_devices = std::move(d);
    return *this;
  }
  Entry& why_no_sim(std::string n) {
    note = std::move(n);
    return *this;
  }
};

inline Entry op(std::string name, std::string params, std::vector<Input> inputs) {
  Entry e;
  e.op = std::move(name);
  e.params = std::move(params);
  e.inputs = std::move(inputs);
  return e;
}

std::vector<Entry>& registry();

// ---- Args, out of line

// Deterministic values from a name: the same in the run under test and in the reference.
inline uint64_t seed_of(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

template <typename T>
template <typename U>
Tensor<U>& Args<T>::add_out(const std::string& name, const Shape& s,
                            std::vector<std::pair<std::string, Tensor<U>>>& v, int list) {
  Tensor<U> host = Tensor<U>::empty(s);
  resnet::Generator g(seed_of(name));
  U* d = host.data();
  for (int64_t i = 0; i < host.numel(); ++i) {
    const double value = acc ? g.normal(0.0, 1.0) : sentinel_;
    d[i] = static_cast<U>(static_cast<float>(value));
    if constexpr (std::is_same<U, double>::value) d[i] = value;
  }
  v.emplace_back(name, (list == 0 ? laid_out(host) : host).to(dev_));
  order_.push_back({list, v.size() - 1});
  return v.back().second;
}

template <typename T>
std::vector<std::pair<std::string, std::vector<double>>> Args<T>::collect() const {
  std::vector<std::pair<std::string, std::vector<double>>> r;
  for (const auto& [list, i] : order_) {
    if (list == 0) r.emplace_back(outs_t_[i].first, host_values(outs_t_[i].second));
    if (list == 1) r.emplace_back(outs_p_[i].first, host_values(outs_p_[i].second));
    if (list == 2) r.emplace_back(outs_i_[i].first, host_values(outs_i_[i].second));
    if (list == 3) r.emplace_back(kept_[i].first, host_values(ps_[kept_[i].second]));
    if (list == 4) {
      std::vector<double> after = host_values(deltas_[i].t);
      for (size_t j = 0; j < after.size(); ++j) after[j] -= deltas_[i].before[j];
      r.emplace_back(deltas_[i].name, std::move(after));
    }
  }
  return r;
}

// Registers entries at static-initialisation time: `static opreg::Registrar r([] { ... add(...) ... });`
struct Registrar {
  explicit Registrar(const std::function<void()>& f) { f(); }
};

}  // namespace opreg
