// Image decoding: exact pixels for PNG (every channel layout), close pixels for JPEG, and an error naming
// the file for truncated, corrupt, oversized or unsupported input. Test images are encoded in memory with
// stb_image_write (in Debian's libstb.so), so no image file is committed.
#include <stb/stb_image_write.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "resnet/data/image_checks.hpp"
#include "resnet/data/image_decode.hpp"
#include "test_util.hpp"

using namespace resnet;
using testing::require_error_mentions;

namespace {

void append(void* ctx, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(ctx);
  const auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

// w x h pixels with `comp` channels, every value distinct enough to catch a transposed or shifted decode.
std::vector<uint8_t> pattern(int w, int h, int comp) {
  std::vector<uint8_t> px(static_cast<size_t>(w * h * comp));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < comp; ++c)
        px[static_cast<size_t>((y * w + x) * comp + c)] = static_cast<uint8_t>(x * 37 + y * 11 + c * 71 + 5);
  return px;
}

std::vector<uint8_t> encode_png(int w, int h, int comp, const std::vector<uint8_t>& px) {
  std::vector<uint8_t> out;
  REQUIRE(stbi_write_png_to_func(append, &out, w, h, comp, px.data(), w * comp) != 0);
  return out;
}
std::vector<uint8_t> encode_jpg(int w, int h, int comp, const std::vector<uint8_t>& px, int quality) {
  std::vector<uint8_t> out;
  REQUIRE(stbi_write_jpg_to_func(append, &out, w, h, comp, px.data(), quality) != 0);
  return out;
}

// The RGB a decoder should produce from `comp`-channel pixels: grey replicated, alpha dropped.
std::vector<uint8_t> expected_rgb(const std::vector<uint8_t>& px, int comp) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i < px.size(); i += static_cast<size_t>(comp)) {
    if (comp <= 2) {
      out.insert(out.end(), 3, px[i]);
    } else {
      out.insert(out.end(), px.begin() + static_cast<long>(i), px.begin() + static_cast<long>(i) + 3);
    }
  }
  return out;
}

uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}
void put32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}
// A PNG signature, an IHDR chunk claiming w x h 8-bit RGB, and IEND (no pixel data).
std::vector<uint8_t> png_header_only(uint32_t w, uint32_t h) {
  std::vector<uint8_t> v{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  put32(v, 13);
  size_t type_at = v.size();
  for (char c : std::string("IHDR")) v.push_back(static_cast<uint8_t>(c));
  put32(v, w);
  put32(v, h);
  for (uint8_t b : {8, 2, 0, 0, 0}) v.push_back(b);
  put32(v, crc32(&v[type_at], v.size() - type_at));
  const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
  v.insert(v.end(), iend, iend + 12);
  return v;
}

}  // namespace

TEST_CASE("image decode: PNG with 1 to 4 channels decodes to exact RGB", "[image]") {
  for (int comp = 1; comp <= 4; ++comp) {
    INFO("channels " << comp);
    const int w = 7, h = 5;
    auto px = pattern(w, h, comp);
    auto png = encode_png(w, h, comp, px);
    data::Image img = data::decode_image(png.data(), png.size(), "mem.png");
    CHECK(img.width == w);
    CHECK(img.height == h);
    CHECK(img.channels == 3);
    CHECK(img.pixels == expected_rgb(px, comp));
  }
}

TEST_CASE("image decode: JPEG decodes close to its source, from memory and from a file", "[image]") {
  const int w = 24, h = 16;
  std::vector<uint8_t> px(static_cast<size_t>(w * h * 3));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &px[static_cast<size_t>((y * w + x) * 3)];
      p[0] = static_cast<uint8_t>(40 + x * 6), p[1] = static_cast<uint8_t>(60 + y * 8), p[2] = 128;  // smooth
    }
  auto jpg = encode_jpg(w, h, 3, px, 100);
  data::Image img = data::decode_image(jpg.data(), jpg.size(), "mem.jpg");
  REQUIRE(img.width == w);
  REQUIRE(img.height == h);
  int worst = 0;
  for (size_t i = 0; i < px.size(); ++i) worst = std::max(worst, std::abs(int(img.pixels[i]) - int(px[i])));
  CHECK(worst <= 6);

  auto path =
      (std::filesystem::temp_directory_path() / ("resnet_test_image_" + std::to_string(::getpid()) + ".jpg"))
          .string();
  {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(jpg.data()), static_cast<std::streamsize>(jpg.size()));
  }
  data::Image from_file = data::load_image(path);
  CHECK(from_file.pixels == img.pixels);
  // Grey JPEG: three equal channels.
  auto grey = pattern(w, h, 1);
  auto gj = encode_jpg(w, h, 1, grey, 90);
  data::Image g = data::decode_image(gj.data(), gj.size(), "grey.jpg");
  for (size_t i = 0; i < g.pixels.size(); i += 3) {
    CHECK(g.pixels[i] == g.pixels[i + 1]);
    CHECK(g.pixels[i] == g.pixels[i + 2]);
  }
  std::remove(path.c_str());
}

TEST_CASE("image decode: truncated files are refused with their name, never decoded into garbage",
          "[image]") {
  const int w = 20, h = 12;
  auto px = pattern(w, h, 3);
  auto jpg = encode_jpg(w, h, 3, px, 90);
  // Every cut of a JPEG (stb_image would pad a cut-off scan with grey) is an error.
  for (size_t n = 0; n < jpg.size(); ++n) {
    INFO("JPEG cut to " << n << " of " << jpg.size());
    require_error_mentions([&] { data::decode_image(jpg.data(), n, "cut.jpg"); }, {"'cut.jpg'"});
  }
  auto png = encode_png(w, h, 3, px);
  for (size_t n = 0; n < png.size(); ++n) {
    INFO("PNG cut to " << n << " of " << png.size());
    require_error_mentions([&] { data::decode_image(png.data(), n, "cut.png"); }, {"'cut.png'"});
  }
  // A chunk claiming more bytes than the file holds is refused before stb_image sizes a buffer from it.
  auto liar = png;
  const size_t idat = 8 + 25;  // after the signature and IHDR: the first IDAT's length
  REQUIRE(std::memcmp(&liar[idat + 4], "IDAT", 4) == 0);
  liar[idat] = 0x7f;
  require_error_mentions([&] { data::decode_image(liar.data(), liar.size(), "liar.png"); },
                         {"'liar.png' (PNG)", "truncated: a chunk claims"});
}

TEST_CASE(
    "image decode: a JPEG scan using an undefined table is refused (stb would read uninitialised memory)",
    "[image]") {
  auto jpg = encode_jpg(16, 8, 3, pattern(16, 8, 3), 90);
  REQUIRE(data::jpeg_structure_problem(jpg.data(), jpg.size()).empty());
  // Renumber the AC table 1 (chroma) as table 3 in every DHT segment: the scan still asks for AC table 1.
  int renumbered = 0;
  for (size_t i = 2; i + 4 < jpg.size();) {
    REQUIRE(jpg[i] == 0xff);
    const uint8_t m = jpg[i + 1];
    const size_t len = (size_t(jpg[i + 2]) << 8) | jpg[i + 3];
    if (m == 0xda) break;
    if (m == 0xc4) {
      for (size_t k = i + 4; k < i + 2 + len;) {
        size_t count = 0;
        for (int c = 1; c <= 16; ++c) count += jpg[k + size_t(c)];
        if (jpg[k] == 0x11) jpg[k] = 0x13, ++renumbered;
        k += 17 + count;
      }
    }
    i += 2 + len;
  }
  REQUIRE(renumbered == 1);
  require_error_mentions([&] { data::decode_image(jpg.data(), jpg.size(), "tables.jpg"); },
                         {"'tables.jpg' (JPEG)", "undefined AC Huffman table"});

  // Without its scan (SOS up to EOI removed) a JPEG has no pixels: stb would return uninitialised memory.
  auto ok = encode_jpg(16, 8, 3, pattern(16, 8, 3), 90);
  size_t sos = 0;
  for (size_t i = 2; i + 4 < ok.size() && !sos;) {
    if (ok[i + 1] == 0xda) sos = i;
    i += 2 + ((size_t(ok[i + 2]) << 8) | ok[i + 3]);
  }
  REQUIRE(sos > 0);
  std::vector<uint8_t> no_scan(ok.begin(), ok.begin() + static_cast<long>(sos));
  no_scan.push_back(0xff);
  no_scan.push_back(0xd9);
  require_error_mentions([&] { data::decode_image(no_scan.data(), no_scan.size(), "noscan.jpg"); },
                         {"'noscan.jpg' (JPEG)", "no scan"});
}

TEST_CASE("image decode: progressive JPEG, and its scans out of order", "[image]") {
  // A 20x12 progressive JPEG (stb_image_write cannot write one), the fuzzer's seed.
  std::ifstream f(RESNET_FUZZ_SEEDS "/progressive.jpg", std::ios::binary);
  std::vector<uint8_t> jpg((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  REQUIRE(jpg.size() > 100);
  data::Image img = data::decode_image(jpg.data(), jpg.size(), "progressive.jpg");
  CHECK(img.width == 20);
  CHECK(img.height == 12);
  // Turn its first scan (DC, first pass) into a refinement pass: it now refines coefficients no scan wrote.
  size_t i = 2;
  while (!(jpg[i] == 0xff && jpg[i + 1] == 0xda)) i += 2 + ((size_t(jpg[i + 2]) << 8) | jpg[i + 3]);
  const size_t ns = jpg[i + 4];
  uint8_t& ah_al = jpg[i + 4 + 1 + 2 * ns + 2];
  REQUIRE((ah_al >> 4) == 0);
  ah_al = static_cast<uint8_t>(ah_al | 0x10);
  require_error_mentions([&] { data::decode_image(jpg.data(), jpg.size(), "order.jpg"); },
                         {"'order.jpg' (JPEG)", "before its component's first DC scan"});
}

TEST_CASE("image decode: corrupt, oversized, unsupported and missing files give clear errors", "[image]") {
  auto png = encode_png(8, 8, 3, pattern(8, 8, 3));
  auto corrupt = png;
  for (size_t i = 45; i < corrupt.size() - 20; ++i) corrupt[i] ^= 0x5a;  // scramble the compressed pixels
  require_error_mentions([&] { data::decode_image(corrupt.data(), corrupt.size(), "bad.png"); },
                         {"'bad.png' (PNG)", "corrupt image data (zlib"});
  // Found by fuzz_image_decode: a deflate stream with an invalid distance code that stb_image's inflate
  // accepts, copying uninitialised bytes into the pixels. zlib refuses it.
  const std::vector<uint8_t> fuzzed{
      0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
      0x52, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x63,
      0x58, 0xaa, 0x9c, 0x00, 0x00, 0x00, 0x1e, 0x49, 0x44, 0x41, 0x54, 0x78, 0x5e, 0x63, 0x64,
      0x50, 0x05, 0x02, 0x96, 0x9d, 0x2a, 0x63, 0x64, 0x50, 0x05, 0xec, 0x3f, 0xbd, 0x7f, 0xff,
      0x3e, 0x1f, 0x00, 0x5b, 0x9d, 0x0a, 0x00, 0x5b, 0x9d, 0x0a, 0x28, 0x03, 0x17, 0x74, 0xe0,
      0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
  require_error_mentions([&] { data::decode_image(fuzzed.data(), fuzzed.size(), "fuzzed.png"); },
                         {"'fuzzed.png' (PNG)", "corrupt image data (zlib: invalid"});
  // Image data that inflates to less than the header's 8x8 RGB.
  auto short_png = encode_png(8, 4, 3, pattern(8, 4, 3));
  short_png[16 + 7] = 8;  // IHDR height 4 -> 8 (the checksum is not checked)
  require_error_mentions([&] { data::decode_image(short_png.data(), short_png.size(), "short.png"); },
                         {"'short.png' (PNG)", "inflates to 100 bytes, the header implies 200"});

  auto huge = png_header_only(16000, 16000);
  require_error_mentions([&] { data::decode_image(huge.data(), huge.size(), "huge.png"); },
                         {"'huge.png'", "16000x16000", "exceed the limits"});
  auto absurd = png_header_only(100000, 100000);  // refused by stb_image's own header check
  require_error_mentions([&] { data::decode_image(absurd.data(), absurd.size(), "absurd.png"); },
                         {"'absurd.png'"});
  auto wide = png_header_only(20000, 2);
  require_error_mentions([&] { data::decode_image(wide.data(), wide.size(), "wide.png"); }, {"20000x2"});
  data::ImageLimits small;
  small.max_pixels = 32;
  require_error_mentions([&] { data::decode_image(png.data(), png.size(), "p.png", small); },
                         {"8x8", "exceed"});

  const std::string text = "GIF89a not supported";
  require_error_mentions(
      [&] { data::decode_image(reinterpret_cast<const uint8_t*>(text.data()), text.size(), "anim.gif"); },
      {"'anim.gif'", "not a JPEG or PNG"});
  require_error_mentions([&] { data::decode_image(png.data(), 0, "empty.png"); }, {"'empty.png'", "empty"});
  require_error_mentions([&] { data::load_image("/nonexistent/dir/cat.1.jpg"); },
                         {"'/nonexistent/dir/cat.1.jpg'", "No such file"});
  require_error_mentions([&] { data::load_image(std::filesystem::temp_directory_path().string()); },
                         {"cannot read image"});
}
