// Writes the fuzzers' seed corpora (tiny, valid inputs) at build time, so no binary file is committed:
// <out>/safetensors: a checkpoint of the tiny model fuzz_safetensors checks against, a file with every dtype,
// plain weights without metadata and an empty header; <out>/images: small PNGs (1-4 channels) and JPEGs.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include <filesystem>
#include <fstream>

#include "resnet/io/checkpoint.hpp"
#include "resnet/nn/batchnorm.hpp"
#include "resnet/nn/conv.hpp"
#include "resnet/nn/sequential.hpp"

using namespace resnet;
namespace fs = std::filesystem;

static void append(void* ctx, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(ctx);
  out->insert(out->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}
static void save(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<long>(bytes.size()));
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUT_DIR\n");
    return 2;
  }
  const fs::path out = argv[1];
  fs::create_directories(out / "safetensors");
  fs::create_directories(out / "images");

  Generator g(1);
  nn::Sequential<float> m;
  m.push_back(std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(3, 4, 3), g));
  m.push_back(std::make_shared<nn::BatchNorm2d<float>>(4));
  io::TrainingState st;
  st.arch = "tiny";
  st.class_names = {"cat", "dog"};
  st.extra["note"] = "caf\xc3\xa9 \"quoted\"";
  io::save_checkpoint<float>((out / "safetensors" / "checkpoint.safetensors").string(), m, nullptr, st);
  std::vector<io::SafetensorsEntry> plain;
  for (auto& kv : m.state_dict())
    plain.push_back({kv.first, kv.second.dtype(), kv.second.shape(), kv.second.raw_data()});
  io::write_safetensors((out / "safetensors" / "plain.safetensors").string(), plain);
  float f32[2] = {1, 2};
  double f64 = 3;
  uint16_t h16[2] = {0x3c00, 0xc000};
  int64_t i64 = 7;
  int32_t i32[3] = {1, 2, 3};
  uint8_t u8[4] = {1, 2, 3, 4};
  io::write_safetensors((out / "safetensors" / "dtypes.safetensors").string(),
                        {{"f32", DType::F32, Shape{2}, f32},
                         {"f64", DType::F64, Shape{}, &f64},
                         {"f16", DType::F16, Shape{2}, h16},
                         {"bf16", DType::BF16, Shape{1, 2}, h16},
                         {"i64", DType::I64, Shape{1}, &i64},
                         {"i32", DType::I32, Shape{3, 1}, i32},
                         {"u8", DType::U8, Shape{2, 2}, u8},
                         {"empty", DType::F32, Shape{0}, nullptr}},
                        {{"k", "v"}});
  io::write_safetensors((out / "safetensors" / "empty.safetensors").string(), {});

  for (int comp = 1; comp <= 4; ++comp) {
    const int w = 5, h = 4;
    std::vector<uint8_t> px(static_cast<size_t>(w * h * comp));
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 37);
    std::vector<uint8_t> png;
    stbi_write_png_to_func(append, &png, w, h, comp, px.data(), w * comp);
    save(out / "images" / ("c" + std::to_string(comp) + ".png"), png);
  }
  for (int comp : {1, 3}) {
    const int w = 17, h = 9;  // not a multiple of the 8x8 block
    std::vector<uint8_t> px(static_cast<size_t>(w * h * comp));
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 13) ^ (i >> 3));
    std::vector<uint8_t> jpg;
    stbi_write_jpg_to_func(append, &jpg, w, h, comp, px.data(), 75);
    save(out / "images" / ("c" + std::to_string(comp) + ".jpg"), jpg);
  }
  return 0;
}
