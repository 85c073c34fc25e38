// The image transforms (crops, TrivialAugment/RandAugment, random erasing, the eval transform) and the image
// folder compiled once for the compiled mode, in one unit so that they inline into each other.
#include "resnet/data/auto_augment_inl.hpp"
#include "resnet/data/eval_transform_inl.hpp"
#include "resnet/data/image_folder_inl.hpp"
#include "resnet/data/random_erasing_inl.hpp"
#include "resnet/data/transforms_inl.hpp"
