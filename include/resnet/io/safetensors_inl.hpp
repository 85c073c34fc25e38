// The definitions of safetensors.hpp: included by it in header-only mode, and compiled once into the
// library in the compiled mode (src/io/safetensors.cpp). Not for direct inclusion.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "resnet/core/abi.hpp"
#include "resnet/core/error.hpp"
#include "resnet/io/atomic_file.hpp"
#include "resnet/io/json_lite.hpp"
#include "resnet/io/safetensors.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace io {

RESNET_INLINE const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
    case DType::U8:
      return "U8";
  }
  RESNET_FAIL("dtype ", static_cast<int>(t), " has no safetensors name");
}

RESNET_INLINE bool parse_safetensors_dtype(const std::string& s, DType& out) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", DType::F32}, {"F64", DType::F64}, {"F16", DType::F16}, {"BF16", DType::BF16},
      {"I32", DType::I32}, {"I64", DType::I64}, {"U8", DType::U8}};
  for (const auto& kv : table)
    if (s == kv.first) {
      out = kv.second;
      return true;
    }
  return false;
}

namespace detail {

RESNET_INLINE SafetensorsTensorInfo parse_tensor_entry(JsonCursor& c, std::string name,
                                                       const std::string& where) {
  SafetensorsTensorInfo info;
  info.name = std::move(name);
  const std::string tensor = where + ": tensor '" + info.name + "'";
  bool have_dtype = false, have_shape = false, have_offsets = false;
  std::string dtype;
  std::vector<int64_t> dims;
  c.expect('{', "'{' opening the tensor's entry");
  if (!c.try_consume('}')) {
    do {
      std::string key = c.string("a field name");
      c.expect(':', "':' after a field name");
      if (key == "dtype") {
        if (have_dtype) c.fail("tensor '", info.name, "' has two 'dtype' fields");
        dtype = c.string("the dtype");
        have_dtype = true;
      } else if (key == "shape") {
        if (have_shape) c.fail("tensor '", info.name, "' has two 'shape' fields");
        c.expect('[', "'[' opening the shape");
        if (!c.try_consume(']')) {
          do {
            if (dims.size() >= 64) c.fail("tensor '", info.name, "' has more than 64 dimensions");
            dims.push_back(static_cast<int64_t>(c.integer("a dimension")));
          } while (c.try_consume(','));
          c.expect(']', "',' or ']' in the shape");
        }
        have_shape = true;
      } else if (key == "data_offsets") {
        if (have_offsets) c.fail("tensor '", info.name, "' has two 'data_offsets' fields");
        c.expect('[', "'[' opening data_offsets");
        info.begin = c.integer("the first data offset");
        c.expect(',', "',' between the two data offsets");
        info.end = c.integer("the second data offset");
        c.expect(']', "']' closing data_offsets (exactly two numbers)");
        have_offsets = true;
      } else {
        c.fail("tensor '", info.name, "' has an unknown field '", key, "'");
      }
    } while (c.try_consume(','));
    c.expect('}', "',' or '}' in the tensor's entry");
  }
  RESNET_CHECK(have_dtype, tensor, ": entry has no 'dtype'");
  RESNET_CHECK(have_shape, tensor, ": entry has no 'shape'");
  RESNET_CHECK(have_offsets, tensor, ": entry has no 'data_offsets'");
  RESNET_CHECK(parse_safetensors_dtype(dtype, info.dtype), tensor, ": unsupported dtype '", dtype,
               "' (supported: F32, F64, F16, BF16, I64, I32, U8)");
  info.shape = Shape(dims);
  uint64_t bytes = dtype_size(info.dtype);
  for (int64_t d : dims)
    RESNET_CHECK(!__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes), tensor, ": shape ",
                 info.shape, " is too large");
  RESNET_CHECK(info.begin <= info.end, tensor, ": data_offsets [", info.begin, ", ", info.end,
               "] end before they begin");
  RESNET_CHECK(info.end - info.begin == bytes, tensor, ": shape ", info.shape, " of ", dtype, " needs ",
               bytes, " bytes but data_offsets [", info.begin, ", ", info.end, "] hold ",
               info.end - info.begin);
  return info;
}

}  // namespace detail

RESNET_INLINE SafetensorsHeader parse_safetensors_header(const char* json, size_t size, uint64_t file_size,
                                                         const std::string& file) {
  const std::string where = "safetensors file '" + file + "'";
  SafetensorsHeader h;
  h.data_start = 8 + static_cast<uint64_t>(size);
  RESNET_CHECK(h.data_start <= file_size, where, ": header of ", size, " bytes does not fit in the file");
  h.data_size = file_size - h.data_start;
  size_t bad = utf8_invalid_offset(json, size);
  RESNET_CHECK(bad == size, where, ": header is not valid UTF-8 (byte ", bad, ")");

  JsonCursor c(json, size, where + ": JSON header");
  c.expect('{', "'{' opening the header");
  std::map<std::string, size_t> seen;
  bool have_metadata = false;
  if (!c.try_consume('}')) {
    do {
      std::string key = c.string("a tensor name");
      c.expect(':', "':' after a tensor name");
      if (key == "__metadata__") {
        if (have_metadata) c.fail("two '__metadata__' entries");
        have_metadata = true;
        c.expect('{', "'{' opening __metadata__ (a map of strings)");
        if (!c.try_consume('}')) {
          do {
            std::string k = c.string("a metadata key");
            c.expect(':', "':' after a metadata key");
            if (h.metadata.count(k)) c.fail("metadata key '", k, "' appears twice");
            h.metadata[k] = c.string("a metadata value (metadata values must be strings)");
          } while (c.try_consume(','));
          c.expect('}', "',' or '}' in __metadata__");
        }
        continue;
      }
      RESNET_CHECK(!key.empty(), where, ": a tensor has an empty name");
      if (seen.count(key)) c.fail("tensor '", key, "' appears twice");
      seen[key] = h.tensors.size();
      h.tensors.push_back(detail::parse_tensor_entry(c, key, where));
    } while (c.try_consume(','));
    c.expect('}', "',' or '}' after a tensor entry");
  }
  if (!c.at_end()) c.fail("unexpected text after the header's closing '}'");

  // The tensors must tile the data section: sorted by offset, each starts where the previous one ended.
  std::vector<const SafetensorsTensorInfo*> order;
  for (const auto& t : h.tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(),
                   [](const SafetensorsTensorInfo* a, const SafetensorsTensorInfo* b) {
                     return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
                   });
  uint64_t cursor = 0;
  const SafetensorsTensorInfo* prev = nullptr;
  for (const auto* t : order) {
    RESNET_CHECK(t->begin >= cursor, where, ": tensor '", t->name, "' data_offsets [", t->begin, ", ", t->end,
                 "] overlap tensor '", prev ? prev->name : "", "' which ends at ", cursor);
    RESNET_CHECK(t->begin == cursor, where, ": tensor '", t->name, "' starts at byte ", t->begin,
                 " of the data section, leaving a gap of ", t->begin - cursor, " bytes after ",
                 prev ? "tensor '" + prev->name + "'" : std::string("the header"));
    RESNET_CHECK(t->end <= h.data_size, where, ": tensor '", t->name, "' data_offsets [", t->begin, ", ",
                 t->end, "] run past the end of the file (data section has ", h.data_size,
                 " bytes): the file is truncated");
    cursor = t->end;
    prev = t;
  }
  RESNET_CHECK(cursor == h.data_size, where, ": ", h.data_size - cursor,
               " unexpected bytes after the last tensor", prev ? " '" + prev->name + "'" : std::string(),
               " (data section has ", h.data_size, " bytes, tensors cover ", cursor, ")");
  return h;
}

RESNET_INLINE SafetensorsReader SafetensorsReader::open(const std::string& path) {
  SafetensorsReader r;
  r.name_ = path;
  FILE* f = std::fopen(path.c_str(), "rb");
  RESNET_CHECK(f != nullptr, "cannot open safetensors file '", path, "': ", std::strerror(errno));
  r.file_.reset(f);
  struct stat st;
  RESNET_CHECK(::fstat(::fileno(f), &st) == 0, "cannot stat safetensors file '", path,
               "': ", std::strerror(errno));
  RESNET_CHECK(S_ISREG(st.st_mode), "safetensors file '", path, "' is not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  unsigned char len[8];
  RESNET_CHECK(size >= 8, "safetensors file '", path, "' is ", size,
               " bytes long: too short for the 8-byte header length (truncated or not a safetensors file)");
  r.read_exact(0, len, 8, "the header length");
  uint64_t n = header_length(len, size, path);
  std::string json(static_cast<size_t>(n), '\0');
  r.read_exact(8, &json[0], json.size(), "the header");
  r.header_ = parse_safetensors_header(json.data(), json.size(), size, path);
  r.index();
  return r;
}

RESNET_INLINE SafetensorsReader SafetensorsReader::from_memory(const void* data, size_t size,
                                                               const std::string& name) {
  SafetensorsReader r;
  r.name_ = name;
  r.memory_ = static_cast<const unsigned char*>(data);
  r.memory_size_ = size;
  RESNET_CHECK(size >= 8, "safetensors file '", name, "' is ", size,
               " bytes long: too short for the 8-byte header length (truncated or not a safetensors file)");
  uint64_t n = header_length(r.memory_, size, name);
  r.header_ = parse_safetensors_header(reinterpret_cast<const char*>(r.memory_) + 8, static_cast<size_t>(n),
                                       size, name);
  r.index();
  return r;
}

RESNET_INLINE const SafetensorsTensorInfo* SafetensorsReader::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &header_.tensors[it->second];
}

RESNET_INLINE const SafetensorsTensorInfo& SafetensorsReader::at(const std::string& name) const {
  const SafetensorsTensorInfo* t = find(name);
  RESNET_CHECK(t != nullptr, "safetensors file '", name_, "': missing tensor '", name, "'");
  return *t;
}

RESNET_INLINE void SafetensorsReader::read_bytes(const SafetensorsTensorInfo& info, void* dst) const {
  read_exact(header_.data_start + info.begin, dst, static_cast<size_t>(info.nbytes()),
             "tensor '" + info.name + "'");
}

RESNET_INLINE TensorBase SafetensorsReader::read(const std::string& name) const {
  const SafetensorsTensorInfo& info = at(name);
  TensorBase t = TensorBase::empty(info.shape, info.dtype, Device::cpu());
  read_bytes(info, t.raw_data());
  return t;
}

RESNET_INLINE void SafetensorsReader::read_into(const std::string& name, TensorBase& dst) const {
  const SafetensorsTensorInfo& info = at(name);
  check_matches(info, dst);
  if (dst.device().is_cpu() && dst.is_contiguous()) {
    read_bytes(info, dst.raw_data());
  } else {
    TensorBase host = read(name);
    copy_into(dst, host);
  }
}

RESNET_INLINE void SafetensorsReader::check_matches(const SafetensorsTensorInfo& info,
                                                    const TensorBase& expected) const {
  RESNET_CHECK(info.dtype == expected.dtype(), "safetensors file '", name_, "': tensor '", info.name,
               "' has dtype ", safetensors_dtype_name(info.dtype), " (", dtype_name(info.dtype), ") but ",
               safetensors_dtype_name(expected.dtype()), " (", dtype_name(expected.dtype()), ") is expected");
  RESNET_CHECK(info.shape == expected.shape(), "safetensors file '", name_, "': tensor '", info.name,
               "' has shape ", info.shape, " but ", expected.shape(), " is expected");
}

RESNET_INLINE uint64_t SafetensorsReader::header_length(const unsigned char* b, uint64_t file_size,
                                                        const std::string& name) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[i];
  RESNET_CHECK(n >= 2, "safetensors file '", name, "': header length ", n,
               " is too small for a JSON object (not a safetensors file?)");
  RESNET_CHECK(n <= kMaxSafetensorsHeaderBytes, "safetensors file '", name, "': header length ", n,
               " exceeds the ", kMaxSafetensorsHeaderBytes,
               "-byte limit (corrupt or not a safetensors file)");
  RESNET_CHECK(n <= file_size - 8, "safetensors file '", name, "': header length ", n, " exceeds the ",
               file_size - 8, " bytes that follow it: the file is truncated or not a safetensors file");
  return n;
}

RESNET_INLINE void SafetensorsReader::index() {
  for (size_t i = 0; i < header_.tensors.size(); ++i) by_name_[header_.tensors[i].name] = i;
}

RESNET_INLINE void SafetensorsReader::read_exact(uint64_t offset, void* dst, size_t n,
                                                 const std::string& what) const {
  if (n == 0) return;
  if (memory_) {
    RESNET_CHECK(offset <= memory_size_ && n <= memory_size_ - offset, "safetensors file '", name_,
                 "': reading ", what, " past the end of the data");
    std::memcpy(dst, memory_ + offset, n);
    return;
  }
  FILE* f = file_.get();
  RESNET_CHECK(::fseeko(f, static_cast<off_t>(offset), SEEK_SET) == 0, "safetensors file '", name_,
               "': seeking to ", what, " failed: ", std::strerror(errno));
  size_t got = std::fread(dst, 1, n, f);
  RESNET_CHECK(
      got == n, "safetensors file '", name_, "': reading ", what, " failed after ", got, " of ", n,
      " bytes: ", std::ferror(f) ? std::strerror(errno) : "the file ended early (changed while reading?)");
}

RESNET_INLINE std::string safetensors_header_json(const std::vector<SafetensorsEntry>& entries,
                                                  const std::map<std::string, std::string>& metadata,
                                                  const std::string& file) {
  const std::string where = "writing safetensors file '" + file + "'";
  auto check_utf8 = [&](const std::string& s, const char* what) {
    RESNET_CHECK(utf8_invalid_offset(s.data(), s.size()) == s.size(), where, ": ", what, " '", s,
                 "' is not valid UTF-8");
  };
  std::string json = "{";
  bool first = true;
  if (!metadata.empty()) {
    json += "\"__metadata__\":{";
    for (auto it = metadata.begin(); it != metadata.end(); ++it) {
      check_utf8(it->first, "metadata key");
      check_utf8(it->second, "metadata value");
      json += (it == metadata.begin() ? "" : ",") + json_quote(it->first) + ":" + json_quote(it->second);
    }
    json += "}";
    first = false;
  }
  std::map<std::string, int> names;
  uint64_t offset = 0;
  for (const auto& e : entries) {
    RESNET_CHECK(!e.name.empty() && e.name != "__metadata__", where, ": invalid tensor name '", e.name, "'");
    check_utf8(e.name, "tensor name");
    RESNET_CHECK(names[e.name]++ == 0, where, ": tensor '", e.name, "' appears twice");
    for (int64_t d : e.shape.dims())
      RESNET_CHECK(d >= 0, where, ": tensor '", e.name, "' has shape ", e.shape);
    RESNET_CHECK(e.data != nullptr || e.nbytes() == 0, where, ": tensor '", e.name, "' has no data");
    json += first ? "" : ",";
    first = false;
    json += json_quote(e.name) + ":{\"dtype\":\"" + safetensors_dtype_name(e.dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < e.shape.dims().size(); ++i)
      json += (i ? "," : "") + std::to_string(e.shape.dims()[i]);
    json +=
        "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + e.nbytes()) + "]}";
    offset += e.nbytes();
  }
  json += "}";
  json.append((8 - json.size() % 8) % 8, ' ');
  return json;
}

RESNET_INLINE void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                                     const std::map<std::string, std::string>& metadata) {
  const std::string json = safetensors_header_json(entries, metadata, path);
  unsigned char len[8];
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  AtomicFile out(path);
  out.write(len, 8);
  out.write(json);
  for (const auto& e : entries) out.write(e.data, static_cast<size_t>(e.nbytes()));
  out.commit();
}

}  // namespace io
}  // namespace RESNET_ABI
}  // namespace resnet
