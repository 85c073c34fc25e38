// The evaluation transform (centre square of crop_fraction x the shorter side, resized to size, ImageNet
// normalisation) and the pixel conversion inference needs: any decoded image (grey, grey + alpha, RGB,
// RGBA) to the RGB the transforms take.
#pragma once

#include "resnet/core/compiled_mode.hpp"
#include "resnet/core/abi.hpp"

#include <cstdint>
#include <vector>

#include "resnet/data/transforms.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {

// torchvision's Resize(size / crop_fraction) + CenterCrop(size), normalised.
TransformOptions eval_transform(int size, double crop_fraction = 1.0);

// 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels -> RGB; alpha is dropped (as PIL's
// convert("RGB")). Throws for any other layout.
Image to_rgb(const Image& img);

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/data/eval_transform_inl.hpp"
#endif
