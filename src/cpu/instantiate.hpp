// The compiled CPU backend's instantiation lists: each src/cpu unit includes the definitions it compiles and
// instantiates them for the dtypes the library ships, T = float, double, bf16_t with P = acc_t<T>
// (api.hpp declares them; a user's unit in the compiled mode links these instead of compiling its own).
#pragma once

#ifndef RESNET_IMPLEMENTATION
#define RESNET_IMPLEMENTATION 1
#endif

#include "resnet/backend/cpu/api.hpp"
#include "resnet/core/dtype.hpp"

#define RESNET_FOR_EACH_CPU_DTYPE(X) \
  X(float)                           \
  X(double)                          \
  X(bf16_t)
