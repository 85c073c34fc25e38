// The generator's distributions compiled once for the compiled mode (core/random.hpp).
#include "resnet/core/random_inl.hpp"
