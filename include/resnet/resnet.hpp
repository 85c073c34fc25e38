// resnet: a header-only C++17 library for training residual networks, with a reference CPU backend and a
// CUDA backend (link resnet::cuda). This is the one include users need.
#pragma once

#include "resnet/autograd/engine.hpp"
#include "resnet/autograd/grad_mode.hpp"
#include "resnet/core/device.hpp"
#include "resnet/core/dtype.hpp"
#include "resnet/core/error.hpp"
#include "resnet/core/parallel.hpp"
#include "resnet/core/random.hpp"
#include "resnet/core/shape.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/data/image_decode.hpp"
#include "resnet/io/checkpoint.hpp"
#include "resnet/models/residual_block.hpp"
#include "resnet/models/resnet.hpp"
#include "resnet/models/summary.hpp"
#include "resnet/nn/nn.hpp"
#include "resnet/ops/ops.hpp"
#include "resnet/optim/optim.hpp"
