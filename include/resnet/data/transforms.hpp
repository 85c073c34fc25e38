// Image -> normalised CHW float tensor data, with the training augmentations and the evaluation crop.
//
//   pad-crop (the seed's recipe): centre square -> resize to S -> zero-pad by P -> random S x S crop -> flip
//   resized-crop (Inception style): random box of scale x area and aspect ratio -> resize to S -> flip
//   eval: centre square of `crop_fraction` x the shorter side -> resize to S (Resize(S / f) + CenterCrop(S))
//
// then, when augmenting and asked for, an automatic augmentation on the 8-bit image (TrivialAugmentWide or
// RandAugment: data/auto_augment.hpp); then to [0, 1] and normalised with the ImageNet mean and std; then,
// when augmenting and asked for, random erasing (data/random_erasing.hpp), torchvision's order. All
// randomness comes from the SampleRng passed in, so a sample's augmentation is fixed by its seed; with
// both off the draws and the images are the same as without them.
#pragma once

#include "resnet/core/compiled_mode.hpp"
#include "resnet/core/abi.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "resnet/core/arg.hpp"
#include "resnet/core/error.hpp"
#include "resnet/data/auto_augment.hpp"
#include "resnet/data/image_decode.hpp"
#include "resnet/data/random_erasing.hpp"
#include "resnet/data/resample.hpp"
#include "resnet/data/sample_rng.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {

enum class Augment { None, PadCrop, ResizedCrop };

std::string augment_name(Augment a);
Augment parse_augment(const std::string& s);

using Rgb = std::array<float, 3>;  // a value per colour channel

// TransformOptions().size(64).augment(Augment::ResizedCrop): named setters (core/arg.hpp).
struct TransformOptions {
  RESNET_ARG(int, size) = 96;                    // output height and width
  RESNET_ARG(Augment, augment) = Augment::None;  // None: the deterministic evaluation transform
  RESNET_ARG(int, padding) = -1;                 // pad-crop: zero padding on each side; -1: size / 8
  RESNET_ARG(double, scale_min) = 0.25;          // resized-crop: fraction of the image area ...
  RESNET_ARG(double, scale_max) = 1.0;           // ... from scale_min to scale_max
  RESNET_ARG(double, ratio_min) = 3.0 / 4.0;     // resized-crop: aspect ratio range (w / h) ...
  RESNET_ARG(double, ratio_max) = 4.0 / 3.0;     // ... from ratio_min to ratio_max
  RESNET_ARG(bool, flip) = true;                 // random horizontal flip when augmenting
  RESNET_ARG(double, crop_fraction) = 1.0;  // eval: side of the centre square / shorter side of the image
  // ImageNet statistics, on [0, 1] pixel values
  RESNET_ARG(Rgb, mean) = {0.485f, 0.456f, 0.406f};
  RESNET_ARG(Rgb, std) = {0.229f, 0.224f, 0.225f};
  RESNET_ARG(AutoAugmentOptions, auto_augment);  // after the crop and flip, when augmenting
  RESNET_ARG(RandomErasingOptions, erasing);     // after normalisation, when augmenting

 public:
  void validate() const;
};

namespace detail {

// The centred square of side fraction x the shorter side.
CropBox centre_square(int width, int height, double fraction);

// torchvision's RandomResizedCrop.get_params: ten tries at a box of random area and log-uniform aspect ratio
// that fits, else the centre crop clamped to the ratio range.
CropBox random_resized_box(int width, int height, const TransformOptions& t, SampleRng& rng);

// HWC floats in [0, 255] -> normalised CHW, optionally mirrored left-right.
void normalise_chw(const float* hwc, int size, bool mirror, const TransformOptions& t, float* out);

// The automatic augmentation on the resized crop: to 8 bits (as the PIL image torchvision augments), the
// flip, the policy's operations, back to floats.
void auto_augment_hwc(float* hwc, int size, bool mirror, const AutoAugmentOptions& o, SampleRng& rng);

}  // namespace detail

// Writes 3 x size x size normalised floats for `img` to `out`.
void apply_transform(const Image& img, const TransformOptions& t, SampleRng& rng, float* out);

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/data/transforms_inl.hpp"
#endif
