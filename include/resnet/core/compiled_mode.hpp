// The two ways to use the library: header-only (the default: every unit compiles what it uses) and the
// compiled mode (RESNET_SEPARATE_COMPILATION=1, which the resnet::resnet CMake target sets: the
// implementation is compiled once into libresnet and a user's unit parses declarations).
//
// A non-template function with its definition in an `*_inl.hpp` file is declared as usual and defined with
// RESNET_INLINE: `inline` in header-only mode, where its header includes the definitions; nothing in the
// compiled mode, where the library's one source file for it includes them (src/...) and a user's unit
// sees the declaration alone, so third-party headers such as stb_image stay out of it.
#pragma once

#ifndef RESNET_SEPARATE_COMPILATION
#define RESNET_SEPARATE_COMPILATION 0
#endif

#if RESNET_SEPARATE_COMPILATION
#define RESNET_INLINE
#else
#define RESNET_INLINE inline
#endif
