// The data loader (worker threads, batches) compiled once for the compiled mode (data/loader.hpp).
#include "resnet/data/loader_inl.hpp"
