// Layers.
#pragma once

#include "resnet/nn/activation.hpp"
#include "resnet/nn/batchnorm.hpp"
#include "resnet/nn/conv.hpp"
#include "resnet/nn/freeze.hpp"
#include "resnet/nn/linear.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/nn/pool.hpp"
#include "resnet/nn/sequential.hpp"
