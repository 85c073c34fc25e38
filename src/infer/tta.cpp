// The classifier's metadata reading and test-time augmentation's helpers compiled once for the compiled mode
// (infer/tta.hpp).
#include "resnet/infer/tta_inl.hpp"
#include "resnet/infer/classifier_inl.hpp"
