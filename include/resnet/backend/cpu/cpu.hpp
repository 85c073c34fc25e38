// The CPU backend: every op's reference implementation, with float fast paths beside it.
//
// Declared in api.hpp. In header-only mode (the default) the definitions follow here, so every unit
// compiles what it calls. In the compiled mode (RESNET_SEPARATE_COMPILATION=1, which the resnet::resnet
// CMake target sets) a user's unit sees the declarations alone and links the definitions compiled once
// into the library (src/cpu, which defines RESNET_IMPLEMENTATION to get them): no oneDNN, BLAS or SIMD
// header and no kernel is compiled again in a user's file.
#pragma once

#include "resnet/backend/cpu/api.hpp"

#ifndef RESNET_SEPARATE_COMPILATION
#define RESNET_SEPARATE_COMPILATION 0
#endif

#if !RESNET_SEPARATE_COMPILATION || defined(RESNET_IMPLEMENTATION)
#include "resnet/backend/cpu/definitions.hpp"
#endif
