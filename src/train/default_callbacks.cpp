// The Trainer's default callbacks compiled once for the compiled mode (train/default_callbacks.hpp).
#include "resnet/train/default_callbacks_inl.hpp"
