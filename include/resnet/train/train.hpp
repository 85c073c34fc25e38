// The training loop as a library: Trainer (trainer.hpp) with its options and callbacks (options.hpp),
// sharded evaluation (evaluate.hpp) and the pieces a multi-rank run is made of (shard.hpp, agreement.hpp;
// the gradients are dist::DataParallel's).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/train/agreement.hpp"
#include "resnet/train/evaluate.hpp"
#include "resnet/train/input.hpp"
#include "resnet/train/interrupt.hpp"
#include "resnet/train/options.hpp"
#include "resnet/train/shard.hpp"
#include "resnet/train/trainer.hpp"
