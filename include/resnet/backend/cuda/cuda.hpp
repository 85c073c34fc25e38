// The CUDA backend as user code sees it: plain C++ declarations (no CUDA header needed), defined by the
// resnet::cuda library. Included by backend/dispatch.hpp when the program is built with RESNET_WITH_CUDA=1
// (which linking resnet::cuda sets). See docs/CUDA.md.
#pragma once

#include "resnet/backend/cuda/ops.hpp"
#include "resnet/backend/cuda/runtime.hpp"
