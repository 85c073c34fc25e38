// The definitions of image_decode.hpp: included by it in header-only mode, and compiled once into the
// library in the compiled mode (src/data/image_decode.cpp). Not for direct inclusion.
#pragma once

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <stb/stb_image.h>

#include "resnet/core/abi.hpp"
#include "resnet/core/error.hpp"
#include "resnet/data/image_checks.hpp"
#include "resnet/data/image_decode.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {

// "JPEG", "PNG" or "" from the first bytes.
RESNET_INLINE const char* sniff_image_format(const uint8_t* b, size_t n) {
  if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return "JPEG";
  static const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n >= 8 && std::memcmp(b, png, 8) == 0) return "PNG";
  return "";
}

// Decodes JPEG or PNG bytes; errors name `name_for_errors` (the file) and the problem.
RESNET_INLINE Image decode_image(const uint8_t* bytes, size_t size, const std::string& name_for_errors,
                                 const ImageLimits& limits) {
  const std::string& name = name_for_errors;
  RESNET_CHECK(bytes != nullptr || size == 0, "image '", name, "': null data");
  RESNET_CHECK(size > 0, "image '", name, "' is empty (0 bytes)");
  RESNET_CHECK(size <= limits.max_file_bytes && size <= static_cast<size_t>(INT_MAX), "image '", name,
               "' is ", size, " bytes, more than the ", limits.max_file_bytes, "-byte limit");
  const char* format = sniff_image_format(bytes, size);
  RESNET_CHECK(format[0] != '\0', "image '", name, "' is not a JPEG or PNG file (unrecognised first bytes)");
  const std::string problem = std::strcmp(format, "JPEG") == 0
                                  ? jpeg_structure_problem(bytes, size)
                                  : png_structure_problem(bytes, size, limits.max_side, limits.max_pixels);
  RESNET_CHECK(problem.empty(), "image '", name, "' (", format, "): ", problem);
  const int len = static_cast<int>(size);
  int w = 0, h = 0, c = 0;
  // The header alone first: refuse absurd dimensions before stb allocates for them.
  RESNET_CHECK(stbi_info_from_memory(bytes, len, &w, &h, &c) != 0, "image '", name,
               "': corrupt or truncated ", format, " header (",
               stbi_failure_reason() ? stbi_failure_reason() : "unknown error", ")");
  RESNET_CHECK(w > 0 && h > 0 && w <= limits.max_side && h <= limits.max_side &&
                   static_cast<int64_t>(w) * h <= limits.max_pixels,
               "image '", name, "': ", format, " dimensions ", w, "x", h, " exceed the limits (",
               limits.max_side, " pixels per side, ", limits.max_pixels, " pixels in all)");
  std::unique_ptr<stbi_uc, void (*)(void*)> px(stbi_load_from_memory(bytes, len, &w, &h, &c, 3),
                                               stbi_image_free);
  RESNET_CHECK(px != nullptr, "image '", name, "': cannot decode ", format, " data (",
               stbi_failure_reason() ? stbi_failure_reason() : "unknown error",
               "): corrupt or truncated file");
  RESNET_CHECK(w > 0 && h > 0 && w <= limits.max_side && h <= limits.max_side, "image '", name, "': decoded ",
               format, " has dimensions ", w, "x", h, " that differ from its header");
  Image img;
  img.width = w;
  img.height = h;
  img.channels = 3;
  img.pixels.assign(px.get(), px.get() + static_cast<size_t>(w) * static_cast<size_t>(h) * 3);
  return img;
}

RESNET_INLINE Image decode_image(const uint8_t* bytes, size_t size, const std::string& name_for_errors) {
  return decode_image(bytes, size, name_for_errors, ImageLimits());
}

// Reads the whole file, then decode_image; errors name the file.
RESNET_INLINE Image load_image(const std::string& path, const ImageLimits& limits) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  RESNET_CHECK(f != nullptr, "cannot open image '", path, "': ", std::strerror(errno));
  std::vector<uint8_t> bytes(size_t(1) << 16);
  size_t used = 0;
  for (;;) {
    if (used == bytes.size()) bytes.resize(bytes.size() * 2);
    size_t n = std::fread(bytes.data() + used, 1, bytes.size() - used, f.get());
    used += n;
    RESNET_CHECK(used <= limits.max_file_bytes, "image '", path, "' is larger than the ",
                 limits.max_file_bytes, "-byte limit");
    if (n == 0) break;
  }
  RESNET_CHECK(!std::ferror(f.get()), "cannot read image '", path, "': ", std::strerror(errno));
  return decode_image(bytes.data(), used, path, limits);
}

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet
