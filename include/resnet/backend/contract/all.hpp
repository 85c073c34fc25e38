// Every op's contract (what its inputs must be), checked by the CPU and the CUDA backend alike.
#pragma once

#include "resnet/backend/contract/batchnorm.hpp"
#include "resnet/backend/contract/common.hpp"
#include "resnet/backend/contract/conv.hpp"
#include "resnet/backend/contract/elementwise.hpp"
#include "resnet/backend/contract/linear.hpp"
#include "resnet/backend/contract/loss.hpp"
#include "resnet/backend/contract/optim.hpp"
#include "resnet/backend/contract/pool.hpp"
