// The data pipeline: ImageFolder, image decoding, transforms, the threaded loader.
#pragma once

#include "resnet/data/dataset.hpp"
#include "resnet/data/image_decode.hpp"
#include "resnet/data/image_folder.hpp"
#include "resnet/data/loader.hpp"
#include "resnet/data/resample.hpp"
#include "resnet/data/sample_rng.hpp"
#include "resnet/data/transforms.hpp"
