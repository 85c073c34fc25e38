// The data pipeline: ImageFolder, image decoding, transforms (automatic augmentation, random erasing), the
// threaded loader.
#pragma once

#include "resnet/data/augment_ops.hpp"
#include "resnet/data/auto_augment.hpp"
#include "resnet/data/dataset.hpp"
#include "resnet/data/image_decode.hpp"
#include "resnet/data/image_folder.hpp"
#include "resnet/data/loader.hpp"
#include "resnet/data/random_erasing.hpp"
#include "resnet/data/resample.hpp"
#include "resnet/data/sample_rng.hpp"
#include "resnet/data/transforms.hpp"
