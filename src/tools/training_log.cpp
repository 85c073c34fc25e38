// metrics.csv and the training-curve plot compiled once for the compiled mode (tools/training_log.hpp).
#include "resnet/tools/training_log_inl.hpp"
