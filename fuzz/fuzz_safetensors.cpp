// libFuzzer target: arbitrary bytes through the safetensors reader and the checkpoint loader. Whatever the
// input, the only acceptable outcomes are a clean parse or resnet::Error; a parse that succeeds must
// survive a write/read round trip unchanged (the writer's escaping and layout agree with the reader).
#include <cstdint>
#include <cstring>

#include "resnet/io/checkpoint.hpp"
#include "resnet/nn/batchnorm.hpp"
#include "resnet/nn/conv.hpp"
#include "resnet/nn/sequential.hpp"

using namespace resnet;

namespace {

// The shape a tiny checkpoint seed has (conv 3->4, BN 4), so the fuzzer reaches the model checks.
nn::Sequential<float>& tiny_model() {
  static nn::Sequential<float>* m = [] {
    Generator g(1);
    auto* s = new nn::Sequential<float>();
    s->push_back(std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(3, 4, 3), g));
    s->push_back(std::make_shared<nn::BatchNorm2d<float>>(4));
    return s;
  }();
  return *m;
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "fuzz_safetensors: %s\n", what);
  std::abort();
}

void round_trip(const io::SafetensorsReader& r) {
  std::vector<TensorBase> data;
  std::vector<io::SafetensorsEntry> entries;
  for (const auto& info : r.tensors()) {
    data.push_back(r.read(info.name));
    entries.push_back({info.name, info.dtype, info.shape, data.back().raw_data()});
  }
  std::string json = io::safetensors_header_json(entries, r.metadata(), "round trip");
  std::vector<uint8_t> bytes(8);
  for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(json.size() >> (8 * i));
  bytes.insert(bytes.end(), json.begin(), json.end());
  for (const auto& e : entries) {
    const auto* p = static_cast<const uint8_t*>(e.data);
    bytes.insert(bytes.end(), p, p + e.nbytes());
  }
  io::SafetensorsReader again = io::SafetensorsReader::from_memory(bytes.data(), bytes.size(), "round trip");
  if (again.metadata() != r.metadata()) die("metadata changed in a round trip");
  if (again.tensors().size() != r.tensors().size()) die("tensor count changed in a round trip");
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto* info = again.find(entries[i].name);
    if (!info || info->dtype != entries[i].dtype || info->shape != entries[i].shape)
      die("tensor changed in a round trip");
    TensorBase t = again.read(info->name);
    if (t.nbytes() && std::memcmp(t.raw_data(), entries[i].data, t.nbytes()) != 0)
      die("tensor bytes changed");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    io::SafetensorsReader r = io::SafetensorsReader::from_memory(data, size, "fuzz.safetensors");
    round_trip(r);
    try {
      io::load_checkpoint<float>(r, tiny_model(), nullptr);
    } catch (const Error&) {
    }
  } catch (const Error&) {
  }
  return 0;
}
