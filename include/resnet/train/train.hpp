// The training loop as a library: Trainer (trainer.hpp) with its options (options.hpp) and its parts: the
// loss (loss.hpp), evaluation metrics (metrics.hpp), the step (step.hpp) and callbacks (callback.hpp, the
// defaults in default_callbacks.hpp); sharded evaluation (evaluate.hpp) and the pieces a multi-rank run is
// made of (shard.hpp, agreement.hpp; the gradients are dist::DataParallel's). The image-folder recipe on top
// (recipe.hpp: run_recipe, evaluate_recipe, predict_recipe) is what train_catsdogs runs; it is included on
// its own (`#include <resnet/train/recipe.hpp>`), not from here: its functions are not templates, so their
// bodies would instantiate the whole training stack for float and bfloat16 in every unit of a user's
// project (a file including resnet.hpp took 10 s instead of 4.7 with it).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/train/agreement.hpp"
#include "resnet/train/callback.hpp"
#include "resnet/train/default_callbacks.hpp"
#include "resnet/train/evaluate.hpp"
#include "resnet/train/input.hpp"
#include "resnet/train/interrupt.hpp"
#include "resnet/train/loss.hpp"
#include "resnet/train/metrics.hpp"
#include "resnet/train/options.hpp"
#include "resnet/train/shard.hpp"
#include "resnet/train/step.hpp"
#include "resnet/train/trainer.hpp"
