// Declaring an op entry: `add<Modes>(entry, [](auto& be, auto& a) { ... })` stores the one generic body
// for every (backend, dtype) the modes need. Modes is a compile-time mask because a backend may lack an
// op altogether (the simulator has no cuDNN convolution), and 16-bit runs need kernels instantiated for
// them (k16: float16/bfloat16 on the simulator and the GPU).
#pragma once

#include "ops/backends.hpp"

namespace opreg {

constexpr unsigned k16 = 16;  // the op takes float16/bfloat16 storage (sim and gpu)
constexpr unsigned kAll = kGrad | kFast | kSim | kGpu | k16;
constexpr unsigned kNoSim = kGrad | kFast | kGpu | k16;

template <unsigned Modes, typename F>
void add(Entry e, F f) {
  e.modes = Modes & (kGrad | kFast | kSim | kGpu);
  if (!e.graph) e.modes &= ~kGrad;
  e.sim_16bit = (Modes & k16) != 0;
  e.cpu_f64 = [f](Cpu& b, Args<double>& a) { f(b, a); };
  if constexpr ((Modes & kFast) != 0) e.cpu_f32 = [f](Cpu& b, Args<float>& a) { f(b, a); };
  // The CPU computes bfloat16 too: every op that takes 16-bit storage.
  if constexpr ((Modes & kFast) != 0 && (Modes & k16) != 0)
    e.cpu_bf16 = [f](Cpu& b, Args<bf16_t>& a) { f(b, a); };
  if constexpr ((Modes & kSim) != 0) {
    e.sim_f64 = [f](Sim& b, Args<double>& a) { f(b, a); };
    e.sim_f32 = [f](Sim& b, Args<float>& a) { f(b, a); };
    if constexpr ((Modes & k16) != 0) {
      e.sim_f16 = [f](Sim& b, Args<half_t>& a) { f(b, a); };
      e.sim_bf16 = [f](Sim& b, Args<bf16_t>& a) { f(b, a); };
    }
  }
#if RESNET_WITH_CUDA
  if constexpr ((Modes & kGpu) != 0) {
    e.gpu_f64 = [f](Cuda& b, Args<double>& a) { f(b, a); };
    e.gpu_f32 = [f](Cuda& b, Args<float>& a) { f(b, a); };
    if constexpr ((Modes & k16) != 0) {
      e.gpu_f16 = [f](Cuda& b, Args<half_t>& a) { f(b, a); };
      e.gpu_bf16 = [f](Cuda& b, Args<bf16_t>& a) { f(b, a); };
    }
  }
#endif
  registry().push_back(std::move(e));
}

// A pointer to an optional tensor argument (residuals, biases): null when the entry leaves it out.
template <typename T>
const Tensor<T>* opt(bool present, const Tensor<T>& t) {
  return present ? &t : nullptr;
}

}  // namespace opreg
