// Structural checks of JPEG and PNG files, run before stb_image sees them. stb_image is lenient where
// lenience is harmful:
//  - it pads a truncated JPEG scan with grey, so a cut-off file would silently train on half a picture;
//  - it decodes scans with Huffman or quantisation tables the file never defined, and returns components
//    or coefficients no scan covered, from uninitialised memory (results vary from run to run, and its
//    internal assert can abort the process);
//  - it sizes a PNG buffer from the IDAT chunk lengths before reading them (a 100-byte file can cost 2 GB).
// Walking the markers and chunks first turns each of these into an error message.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace resnet {
namespace data {

namespace detail {
inline size_t be16(const uint8_t* p) { return (static_cast<size_t>(p[0]) << 8) | p[1]; }
}  // namespace detail

// "" when the JPEG's markers are well formed and run to an end-of-image marker, every scan uses tables the
// file defined before it, and the scans cover every component (and, progressive, every coefficient);
// otherwise what is wrong.
inline std::string jpeg_structure_problem(const uint8_t* b, size_t n) {
  bool dc[4] = {}, ac[4] = {}, quant[4] = {};
  int comp_id[4] = {-1, -1, -1, -1}, comp_q[4] = {};
  // What the scans cover per component: baseline needs one scan each, progressive a first DC scan and
  // first AC scans over coefficients 1..63 (bit k). stb_image leaves anything uncovered uninitialised.
  bool scanned[4] = {}, dc_first[4] = {};
  uint64_t ac_first[4] = {};
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
      const uint64_t all_ac = ~uint64_t(1);  // bits 1..63
      for (int c = 0; c < ncomp; ++c) {
        if (!progressive && !scanned[c]) return "corrupt: a colour component has no scan (no image data)";
        if (progressive && (!dc_first[c] || (ac_first[c] & all_ac) != all_ac))
          return "corrupt: the progressive scans do not cover every coefficient of every component";
      }
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
          scanned[c] = true;
          if (progressive && ah == 0) {
            if (ss == 0) dc_first[c] = true;
            for (int k = std::max(ss, 1); k <= se; ++k) ac_first[c] |= uint64_t(1) << k;
          }
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

// "" when the PNG is a chain of whole chunks ending with IEND; otherwise what is wrong.
inline std::string png_structure_problem(const uint8_t* b, size_t n) {
  size_t i = 8;  // after the signature
  for (;;) {
    if (n - i < 12) return "truncated: no IEND chunk";  // length, type, CRC
    const uint32_t len =
        (uint32_t(b[i]) << 24) | (uint32_t(b[i + 1]) << 16) | (uint32_t(b[i + 2]) << 8) | uint32_t(b[i + 3]);
    if (len > n - i - 12)
      return "truncated: a chunk claims " + std::to_string(len) + " bytes past the end of the file";
    if (std::memcmp(b + i + 4, "IEND", 4) == 0) return "";
    i += 12 + size_t(len);
  }
}

}  // namespace data
}  // namespace resnet
