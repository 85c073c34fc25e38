// BatchNorm2d over NCHW with the residual add and ReLU fused in, forward and backward: the umbrella of the
// BatchNorm kernels, one idea a file.
//   resnet/backend/batchnorm_math.hpp  the arithmetic, shared with the CPU backend (host+device)
//   batchnorm_plan.cuh                 the policy: which path runs for a shape (one table, one function)
//   batchnorm_multipass.cuh            statistics / finalize / apply kernels: the default, any shape
//   batchnorm_single_pass.cuh          one block a channel, in registers (off by default: never run on a GPU)
//   batchnorm_cluster.cuh              the single pass over a thread-block cluster (experimental, off)
//   batchnorm_dispatch.cuh             bn_forward_training / bn_backward: plan, run, report the path
#pragma once

#include "resnet/core/abi.hpp"
#include "batchnorm_dispatch.cuh"
