// The model summary's table compiled once for the compiled mode (models/summary.hpp).
#include "resnet/models/summary_inl.hpp"
