// safetensors: an 8-byte little-endian header length N, N bytes of JSON header, then the raw little-endian
// tensor bytes. The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the data section) plus an optional "__metadata__" string-to-string map.
//
// The reader trusts nothing: header length bounds, UTF-8, JSON syntax, known dtypes, shape versus byte
// count, offsets that tile the data section exactly (no gap, no overlap, nothing past the end or after
// the last tensor). Every error names the file, the tensor and the problem. Tensor bytes are read on
// demand, so opening a checkpoint only reads its header.
#pragma once
//
// Declarations; the definitions are in safetensors_inl.hpp (compiled into libresnet in the compiled mode).

#include "resnet/core/abi.hpp"

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "resnet/core/compiled_mode.hpp"
#include "resnet/core/tensor.hpp"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "resnet/io/safetensors.hpp: safetensors data is little-endian; big-endian hosts are not supported"
#endif

namespace resnet {
inline namespace RESNET_ABI {
namespace io {

// Headers above this size are refused before allocating (the reference implementation's limit).
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100u * 1000u * 1000u;

const char* safetensors_dtype_name(DType t);
bool parse_safetensors_dtype(const std::string& s, DType& out);

struct SafetensorsTensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range inside the data section
  uint64_t nbytes() const { return end - begin; }
  std::string describe() const { return std::string(safetensors_dtype_name(dtype)) + shape.to_string(); }
};

struct SafetensorsHeader {
  std::vector<SafetensorsTensorInfo> tensors;  // in header order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // file offset of the data section (8 + header length)
  uint64_t data_size = 0;
};

// Parses and validates a header. `json` is the N header bytes, `file_size` the size of the whole file;
// `file` names it in errors.
SafetensorsHeader parse_safetensors_header(const char* json, size_t size, uint64_t file_size,
                                           const std::string& file);

// A validated safetensors file (on disk or in memory) whose tensors are read on demand.
class SafetensorsReader {
 public:
  static SafetensorsReader open(const std::string& path);
  // A view of `size` bytes owned by the caller (fuzzing, tests); `name` stands for the file in errors.
  static SafetensorsReader from_memory(const void* data, size_t size, const std::string& name);

  const std::string& path() const { return name_; }
  const std::vector<SafetensorsTensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const SafetensorsTensorInfo* find(const std::string& name) const;
  const SafetensorsTensorInfo& at(const std::string& name) const;

  // Copies a tensor's raw bytes (info.nbytes() of them) into `dst`.
  void read_bytes(const SafetensorsTensorInfo& info, void* dst) const;
  // A new CPU tensor with the stored dtype, shape and values.
  TensorBase read(const std::string& name) const;
  // Checks that the stored tensor has dst's dtype and shape, then copies it into dst (any device).
  void read_into(const std::string& name, TensorBase& dst) const;
  // Throws unless `info` has `expected`'s dtype and shape; the message names the file and the tensor.
  void check_matches(const SafetensorsTensorInfo& info, const TensorBase& expected) const;

 private:
  struct FileCloser {
    void operator()(FILE* f) const { std::fclose(f); }
  };
  SafetensorsReader() = default;
  static uint64_t header_length(const unsigned char* b, uint64_t file_size, const std::string& name);
  void index();
  void read_exact(uint64_t offset, void* dst, size_t n, const std::string& what) const;

  std::string name_;
  std::unique_ptr<FILE, FileCloser> file_;
  const unsigned char* memory_ = nullptr;
  size_t memory_size_ = 0;
  SafetensorsHeader header_;
  std::map<std::string, size_t> by_name_;
};

// One tensor to write: host memory holding shape.numel() contiguous elements of dtype.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  const void* data = nullptr;
  uint64_t nbytes() const { return static_cast<uint64_t>(shape.numel()) * dtype_size(dtype); }
};

// The header JSON for `entries` (data laid out in the given order), padded with spaces so the data section
// starts 8-byte aligned.
std::string safetensors_header_json(const std::vector<SafetensorsEntry>& entries,
                                    const std::map<std::string, std::string>& metadata,
                                    const std::string& file);

// Writes a safetensors file atomically (see AtomicFile): a failure leaves any previous file untouched.
void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace io
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/io/safetensors_inl.hpp"
#endif
