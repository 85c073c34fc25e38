// Every definition of the CPU backend (oneDNN, BLAS, the SIMD loops). backend/cpu/cpu.hpp includes this in
// header-only mode; in the compiled mode only the library's own sources (src/cpu) and code that calls the
// backend's internals (its tests and benchmarks) include it.
#pragma once

#include "resnet/backend/cpu/batchnorm.hpp"
#include "resnet/backend/cpu/batchnorm_sync.hpp"
#include "resnet/backend/cpu/blas.hpp"
#include "resnet/backend/cpu/conv.hpp"
#include "resnet/backend/cpu/elementwise.hpp"
#include "resnet/backend/cpu/linear.hpp"
#include "resnet/backend/cpu/loss.hpp"
#include "resnet/backend/cpu/optim.hpp"
#include "resnet/backend/cpu/pool.hpp"
#include "resnet/backend/cpu/step_state.hpp"
