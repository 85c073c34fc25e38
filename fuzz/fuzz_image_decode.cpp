// libFuzzer target: arbitrary bytes through resnet::data::decode_image (format sniffing, the JPEG marker
// walk, stb_image's header and pixel decoders). Only a decoded image of the promised size or resnet::Error
// are acceptable. stb_image is compiled into this program (stb_image_impl.c) so the fuzzer sees its branches
// and AddressSanitizer checks its memory accesses.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "resnet/data/image_decode.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  resnet::data::ImageLimits limits;  // small: keeps each run fast and its memory bounded
  limits.max_side = 4096;
  limits.max_pixels = int64_t(1) << 22;
  try {
    resnet::data::Image img = resnet::data::decode_image(data, size, "fuzz.img", limits);
    const size_t want = static_cast<size_t>(img.width) * static_cast<size_t>(img.height) * 3;
    if (img.channels != 3 || img.width <= 0 || img.height <= 0 || img.pixels.size() != want) {
      std::fprintf(stderr, "fuzz_image_decode: inconsistent image %dx%dx%d with %zu bytes\n", img.width,
                   img.height, img.channels, img.pixels.size());
      std::abort();
    }
  } catch (const resnet::Error&) {
  }
  return 0;
}
