// Structural checks of JPEG and PNG files, run before stb_image sees them. stb_image is lenient where
// lenience is harmful:
//  - it pads a truncated JPEG scan with grey, so a cut-off file would silently train on half a picture;
//  - it decodes scans with Huffman or quantisation tables the file never defined, and returns components
//    or coefficients no scan covered, from uninitialised memory (results vary from run to run, and its
//    internal assert can abort the process);
//  - it sizes a PNG buffer from the IDAT chunk lengths before reading them (a 100-byte file can cost 2 GB);
//  - its inflate accepts invalid PNG data streams and fills pixels from uninitialised memory.
// Walking the markers and chunks first turns each of these into an error message.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <zlib.h>

namespace resnet {
inline namespace RESNET_ABI {
namespace data {

namespace detail {
inline size_t be16(const uint8_t* p) { return (static_cast<size_t>(p[0]) << 8) | p[1]; }
}  // namespace detail

// "" when the JPEG's markers are well formed and run to an end-of-image marker, it has one frame, every
// scan uses tables the file defined before it, and every component gets its pixels; otherwise what is
// wrong.
inline std::string jpeg_structure_problem(const uint8_t* b, size_t n) {
  bool dc[4] = {}, ac[4] = {}, quant[4] = {};
  int comp_id[4] = {-1, -1, -1, -1}, comp_q[4] = {};
  // stb_image leaves a component's pixels (baseline) or coefficients (progressive) uninitialised until a
  // scan writes them: baseline needs a scan per component; progressive, a first DC scan per component
  // (which zeroes its blocks) before any other scan of that component.
  bool scanned[4] = {}, dc_first[4] = {};
  int ncomp = 0;
  bool progressive = false, have_frame = false;
  size_t i = 2;  // after SOI
  for (;;) {
    if (i >= n) return "truncated: no end-of-image marker";
    if (b[i] != 0xff) return "corrupt: expected a marker at byte " + std::to_string(i);
    while (i < n && b[i] == 0xff) ++i;  // fill bytes
    if (i >= n) return "truncated: no end-of-image marker";
    const uint8_t m = b[i++];
    if (m == 0xd9) {  // EOI
      if (!have_frame) return "corrupt: no frame header";
      for (int c = 0; c < ncomp; ++c)
        if (!scanned[c] || (progressive && !dc_first[c]))
          return "corrupt: a colour component has no scan (no image data)";
      return "";
    }
    if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) continue;  // markers without a length
    if (n - i < 2) return "truncated inside a marker segment";
    const size_t len = detail::be16(b + i);
    if (len < 2) return "corrupt: marker segment of length " + std::to_string(len);
    if (n - i < len) return "truncated inside a marker segment";
    const uint8_t* s = b + i + 2;  // the segment's payload
    const size_t sl = len - 2;
    i += len;
    if (m == 0xc4) {  // DHT: tables of (class, id, 16 counts, symbols)
      for (size_t k = 0; k < sl;) {
        if (sl - k < 17) return "corrupt Huffman table segment";
        const int cls = s[k] >> 4, id = s[k] & 15;
        size_t count = 0;
        for (int c = 1; c <= 16; ++c) count += s[k + c];
        if (sl - k - 17 < count) return "corrupt Huffman table segment";
        if (cls <= 1 && id <= 3) (cls == 0 ? dc : ac)[id] = true;
        k += 17 + count;
      }
    } else if (m == 0xdb) {  // DQT: tables of (precision, id, 64 entries)
      for (size_t k = 0; k < sl;) {
        const size_t size = 1 + 64 * ((s[k] >> 4) ? 2 : 1);
        if (sl - k < size) return "corrupt quantisation table segment";
        if ((s[k] & 15) <= 3) quant[s[k] & 15] = true;
        k += size;
      }
    } else if (m == 0xc0 || m == 0xc1 || m == 0xc2) {  // SOF: baseline, extended, progressive
      if (have_frame) return "corrupt: a second frame header";
      if (sl < 6) return "corrupt frame header";
      ncomp = s[5];
      if (ncomp < 1 || ncomp > 4 || sl < 6 + 3 * static_cast<size_t>(ncomp)) return "corrupt frame header";
      for (int c = 0; c < ncomp; ++c) comp_id[c] = s[6 + 3 * c], comp_q[c] = s[8 + 3 * c] & 15;
      progressive = m == 0xc2;
      have_frame = true;
    } else if (m == 0xda) {  // SOS: the tables this scan decodes with must exist by now
      if (!have_frame) return "corrupt: scan before the frame header";
      if (sl < 1 || sl < 1 + 2 * static_cast<size_t>(s[0]) + 3) return "corrupt scan header";
      const int ns = s[0];
      const int ss = s[1 + 2 * ns], se = s[2 + 2 * ns], ah = s[3 + 2 * ns] >> 4;
      if (ss > se || se > 63) return "corrupt scan header (spectral selection)";
      for (int k = 0; k < ns; ++k) {
        const int td = s[2 + 2 * k] >> 4, ta = s[2 + 2 * k] & 15;
        for (int c = 0; c < ncomp; ++c) {
          if (comp_id[c] != s[1 + 2 * k]) continue;
          if (comp_q[c] > 3 || !quant[comp_q[c]])
            return "corrupt: a component uses an undefined quantisation table";
          const bool need_dc = progressive ? (ss == 0 && ah == 0) : true;
          const bool need_ac = progressive ? ss > 0 : true;
          if (need_dc && (td > 3 || !dc[td])) return "corrupt: a scan uses an undefined DC Huffman table";
          if (need_ac && (ta > 3 || !ac[ta])) return "corrupt: a scan uses an undefined AC Huffman table";
          if (progressive && ss == 0 && ah == 0) dc_first[c] = true;
          if (progressive && !dc_first[c])
            return "corrupt: a progressive scan comes before its component's first DC scan";
          scanned[c] = true;
        }
      }
      // Entropy-coded data: ends at the first 0xFF that is not stuffing (FF 00) or a restart marker.
      while (i < n) {
        if (b[i] != 0xff) {
          ++i;
        } else if (i + 1 >= n) {
          return "truncated: no end-of-image marker";
        } else if (b[i + 1] == 0x00 || (b[i + 1] >= 0xd0 && b[i + 1] <= 0xd7)) {
          i += 2;
        } else if (b[i + 1] == 0xff) {
          ++i;
        } else {
          break;
        }
      }
    }
  }
}

namespace detail {
inline uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// Bytes of filtered scanlines a PNG's IDAT stream must inflate to (Adam7 passes included), 0 if the header
// is invalid.
inline uint64_t png_raw_bytes(uint32_t w, uint32_t h, int depth, int colour, int interlace) {
  int channels = colour == 0 || colour == 3 ? 1 : colour == 2 ? 3 : colour == 4 ? 2 : colour == 6 ? 4 : 0;
  bool depth_ok = depth == 8 || (depth == 16 && colour != 3) ||
                  ((depth == 1 || depth == 2 || depth == 4) && (colour == 0 || colour == 3));
  if (!channels || !depth_ok || w == 0 || h == 0 || interlace > 1) return 0;
  const uint64_t bpp = uint64_t(channels) * uint64_t(depth);  // bits per pixel
  auto pass = [&](uint64_t pw, uint64_t ph) { return pw && ph ? ph * (1 + (pw * bpp + 7) / 8) : 0; };
  if (!interlace) return pass(w, h);
  static const int adam7[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                  {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
  uint64_t total = 0;
  for (const auto& p : adam7) {
    uint64_t pw = w > uint32_t(p[0]) ? (w - p[0] + p[2] - 1) / p[2] : 0;
    uint64_t ph = h > uint32_t(p[1]) ? (h - p[1] + p[3] - 1) / p[3] : 0;
    total += pass(pw, ph);
  }
  return total;
}
}  // namespace detail

// "" when the PNG is a chain of whole chunks from IHDR to IEND whose image data is a valid zlib stream
// (zlib's own checks, Adler-32 included) of exactly the size the header implies; otherwise what is wrong.
// stb_image's inflate accepts some invalid streams (distance codes 30 and 31) and then copies uninitialised
// bytes into the pixels, hence the second opinion. Images over `max_side` or `max_pixels` skip the
// inflate: the caller refuses their dimensions anyway.
inline std::string png_structure_problem(const uint8_t* b, size_t n, int64_t max_side, int64_t max_pixels) {
  size_t i = 8;  // after the signature
  uint64_t raw = 0;
  bool big = false;
  z_stream z{};
  std::vector<uint8_t> out;
  uint64_t produced = 0;
  struct Cleanup {
    z_stream* z;
    bool active = false;
    ~Cleanup() {
      if (active) inflateEnd(z);
    }
  } cleanup{&z};
  bool ended = false;
  for (int chunk = 0;; ++chunk) {
    if (n - i < 12) return "truncated: no IEND chunk";  // length, type, CRC
    const uint32_t len = detail::be32(b + i);
    if (len > n - i - 12)
      return "truncated: a chunk claims " + std::to_string(len) + " bytes past the end of the file";
    const uint8_t* type = b + i + 4;
    const uint8_t* data = b + i + 8;
    if (chunk == 0) {
      if (std::memcmp(type, "IHDR", 4) != 0 || len != 13)
        return "corrupt: the first chunk is not a valid IHDR";
      const uint32_t w = detail::be32(data), h = detail::be32(data + 4);
      raw = detail::png_raw_bytes(w, h, data[8], data[9], data[12]);
      if (raw == 0) return "corrupt or unsupported header (size, bit depth, colour type or interlace method)";
      big = uint64_t(w) > uint64_t(max_side) || uint64_t(h) > uint64_t(max_side) ||
            uint64_t(w) * uint64_t(h) > uint64_t(max_pixels);
      if (!big) {
        if (inflateInit(&z) != Z_OK) return "zlib could not be initialised";
        cleanup.active = true;
        out.resize(1 << 16);
      }
    } else if (std::memcmp(type, "IEND", 4) == 0) {
      if (big) return "";
      if (!ended) return produced ? "truncated image data (the zlib stream does not end)" : "no image data";
      if (produced != raw)
        return "image data inflates to " + std::to_string(produced) + " bytes, the header implies " +
               std::to_string(raw);
      return "";
    } else if (std::memcmp(type, "IDAT", 4) == 0 && !big) {
      if (ended && len > 0) return "data after the end of the image's zlib stream";
      z.next_in = const_cast<uint8_t*>(data);
      z.avail_in = len;
      do {  // also drains output still pending when the input ran out exactly as the buffer filled
        z.next_out = out.data();
        z.avail_out = static_cast<uInt>(out.size());
        int r = inflate(&z, Z_NO_FLUSH);
        produced += out.size() - z.avail_out;
        if (r == Z_STREAM_END) {
          ended = true;
        } else if (r != Z_OK && r != Z_BUF_ERROR) {
          return std::string("corrupt image data (zlib: ") + (z.msg ? z.msg : "error " + std::to_string(r)) +
                 ")";
        }
        if (produced > raw) return "image data inflates to more bytes than the header implies";
      } while (!ended && (z.avail_in > 0 || z.avail_out == 0));
      if (ended && z.avail_in > 0) return "data after the end of the image's zlib stream";
    }
    i += 12 + size_t(len);
  }
}

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet
