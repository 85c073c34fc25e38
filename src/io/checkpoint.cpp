// The checkpoint metadata and tensor-set checks compiled once for the compiled mode (io/checkpoint.hpp).
#include "resnet/io/checkpoint_inl.hpp"
