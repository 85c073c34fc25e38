// The library's ABI namespace. Every declaration lives in `resnet::with_cuda` or `resnet::without_cuda`
// (an inline namespace, so users still write `resnet::Tensor`), chosen by RESNET_WITH_CUDA.
//
// Why: with CUDA compiled in, inline functions of the core (storage, tensor copies) and every op's dispatch
// have other bodies than without it. Were both builds in one namespace, a program linking a translation unit
// of each would break the one-definition rule silently: the linker keeps one body and the other unit runs
// it. In two namespaces the two builds are two sets of symbols: units that only use the library link and
// each runs its own code, and a resnet type passed from a unit of one build to a unit of the other fails
// at link time with a message naming both (`undefined reference to f(resnet::without_cuda::Tensor<float>)`).
// This is how libstdc++ keeps its two std::string ABIs apart.
#pragma once

#ifndef RESNET_WITH_CUDA
#define RESNET_WITH_CUDA 0
#endif

#if RESNET_WITH_CUDA
#define RESNET_ABI with_cuda
#else
#define RESNET_ABI without_cuda
#endif
