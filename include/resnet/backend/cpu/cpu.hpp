// The CPU backend: every op's reference implementation, with float fast paths beside it.
#pragma once

#include "resnet/backend/cpu/batchnorm.hpp"
#include "resnet/backend/cpu/blas.hpp"
#include "resnet/backend/cpu/conv.hpp"
#include "resnet/backend/cpu/elementwise.hpp"
#include "resnet/backend/cpu/linear.hpp"
#include "resnet/backend/cpu/loss.hpp"
#include "resnet/backend/cpu/optim.hpp"
#include "resnet/backend/cpu/pool.hpp"
#include "resnet/backend/cpu/step_state.hpp"
