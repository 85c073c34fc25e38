// The functional API: every op with autograd, dispatched to the tensors' device.
#pragma once

#include "resnet/ops/batch_norm.hpp"
#include "resnet/ops/conv.hpp"
#include "resnet/ops/elementwise.hpp"
#include "resnet/ops/linear.hpp"
#include "resnet/ops/loss.hpp"
#include "resnet/ops/pool.hpp"
#include "resnet/ops/soft_cross_entropy.hpp"
