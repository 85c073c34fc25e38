// resnet: a header-only C++17 library for training residual networks, with a reference CPU backend and a
// CUDA backend (link resnet::cuda). This is the one include users need: it declares the whole public API
// (tests/test_one_include.cpp uses every header's main entry point through it alone). The ONNX exporter
// (resnet/io/onnx.hpp) is separate: it needs the optional resnet::onnx target.
#pragma once

#include "resnet/autograd/engine.hpp"
#include "resnet/autograd/grad_mode.hpp"
#include "resnet/backend/cuda/available.hpp"
#include "resnet/core/config.hpp"
#include "resnet/core/device.hpp"
#include "resnet/core/dtype.hpp"
#include "resnet/core/error.hpp"
#include "resnet/core/parallel.hpp"
#include "resnet/core/random.hpp"
#include "resnet/core/shape.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/data/data.hpp"
#include "resnet/data/eval_transform.hpp"
// dist::init: one process, or this rank under mpirun / srun (MPI's header only where resnet::dist is linked).
#include "resnet/dist/init.hpp"
#include "resnet/dist/init.hpp"
#include "resnet/infer/classifier.hpp"
#include "resnet/io/atomic_file.hpp"
#include "resnet/io/checkpoint.hpp"
#include "resnet/io/safetensors.hpp"
#include "resnet/io/save_load.hpp"
#include "resnet/models/fuse.hpp"
#include "resnet/models/residual_block.hpp"
#include "resnet/models/resnet.hpp"
#include "resnet/models/summary.hpp"
#include "resnet/nn/nn.hpp"
#include "resnet/ops/ops.hpp"
#include "resnet/optim/optim.hpp"
#include "resnet/tools/progress.hpp"
#include "resnet/tools/training_log.hpp"
#include "resnet/train/train.hpp"

// Last: in the compiled mode, what the library instantiates once is declared extern here.
#include "resnet/compiled.hpp"
