// Image decoding: JPEG and PNG bytes to 8-bit RGB pixels (HWC) with stb_image (Debian's libstb-dev, whose
// libstb.so holds the implementation; the resnet targets link it, and zlib for the PNG checks). The
// definitions are in image_decode_inl.hpp (compiled into libresnet in the compiled mode). Grey
// and alpha images become RGB. The format is sniffed from the magic bytes, the file's structure is checked
// (image_checks.hpp) and its dimensions are checked against limits before any pixel is decoded, so a corrupt
// or hostile file costs an error message, not a crash, garbage pixels or a huge allocation.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "resnet/core/compiled_mode.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {

struct Image {
  int width = 0, height = 0, channels = 3;
  std::vector<uint8_t> pixels;  // height * width * channels bytes, row-major HWC, RGB
};

struct ImageLimits {
  int max_side = 16384;                   // pixels along either edge
  int64_t max_pixels = int64_t(1) << 26;  // width * height (64 Mpx: 192 MiB of RGB)
  size_t max_file_bytes = size_t(1) << 30;
};

// "JPEG", "PNG" or "" from the first bytes.
const char* sniff_image_format(const uint8_t* b, size_t n);

// Decodes JPEG or PNG bytes; errors name `name_for_errors` (the file) and the problem.
Image decode_image(const uint8_t* bytes, size_t size, const std::string& name_for_errors,
                   const ImageLimits& limits);
Image decode_image(const uint8_t* bytes, size_t size, const std::string& name_for_errors);

// Reads the whole file, then decode_image; errors name the file.
Image load_image(const std::string& path, const ImageLimits& limits = ImageLimits());

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/data/image_decode_inl.hpp"
#endif
