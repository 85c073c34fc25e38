// libFuzzer target: arbitrary bytes through resnet::data::decode_image (format sniffing, the structure
// checks, stb_image's header and pixel decoders). Acceptable outcomes: resnet::Error, or an image of the
// promised size. Each input is decoded twice, with stb_image's allocations filled with 0x00 and then 0xff
// (see stb_image_impl.c): the two outcomes (pixels or error message) must agree, or the decode read
// uninitialised memory.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "resnet/data/image_decode.hpp"

extern "C" unsigned char fuzz_stbi_fill;

namespace {

struct Outcome {
  bool ok = false;
  resnet::data::Image img;
  std::string error;  // stb_image's failure reason is part of the message
};

Outcome decode(const uint8_t* data, size_t size, unsigned char fill) {
  fuzz_stbi_fill = fill;
  resnet::data::ImageLimits limits;  // small: keeps each run fast and its memory bounded
  limits.max_side = 4096;
  limits.max_pixels = int64_t(1) << 22;
  Outcome o;
  try {
    o.img = resnet::data::decode_image(data, size, "fuzz.img", limits);
    o.ok = true;
  } catch (const resnet::Error& e) {
    o.error = e.what();
  }
  return o;
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "fuzz_image_decode: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Outcome a = decode(data, size, 0x00);
  if (a.ok) {
    const size_t want = static_cast<size_t>(a.img.width) * static_cast<size_t>(a.img.height) * 3;
    if (a.img.channels != 3 || a.img.width <= 0 || a.img.height <= 0 || a.img.pixels.size() != want)
      die("decoded image has inconsistent dimensions");
  }
  Outcome b = decode(data, size, 0xff);
  if (a.ok != b.ok || a.error != b.error) die("the outcome depends on uninitialised memory");
  if (a.ok && (a.img.width != b.img.width || a.img.height != b.img.height || a.img.pixels != b.img.pixels))
    die("decoded pixels depend on uninitialised memory");
  return 0;
}
