// Optimizers and learning-rate schedules.
#pragma once

#include "resnet/optim/adamw.hpp"
#include "resnet/optim/schedule.hpp"
#include "resnet/optim/sgd.hpp"
