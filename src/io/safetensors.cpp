// The safetensors reader and writer compiled once for the compiled mode (io/safetensors.hpp).
#include "resnet/io/safetensors_inl.hpp"
