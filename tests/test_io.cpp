// Safetensors reader/writer and checkpoints: round trips (bit-exact, resume-exact), and refusal with a
// clear message of every kind of damaged or mismatched file.
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <locale>

#include "resnet/io/checkpoint.hpp"
#include "resnet/io/save_load.hpp"
#include "test_util.hpp"

using namespace resnet;
using testing::require_error_mentions;
namespace fs = std::filesystem;

namespace {

// A fresh folder per test case, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() /
           ("resnet_test_io_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
  size_t count() const {
    return static_cast<size_t>(std::distance(fs::directory_iterator(path), fs::directory_iterator()));
  }
};

std::vector<uint8_t> read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}
void write_file(const std::string& p, const std::vector<uint8_t>& bytes, size_t n) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(n));
}

// A safetensors image from a header string and `data_bytes` zero bytes of data.
std::vector<uint8_t> make_safetensors(const std::string& json, size_t data_bytes) {
  std::vector<uint8_t> out(8 + json.size() + data_bytes, 0);
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, json.data(), json.size());
  return out;
}

std::vector<uint8_t> bytes_of(const TensorBase& t) {
  TensorBase h = io::detail::host_contiguous(t);
  const auto* p = static_cast<const uint8_t*>(h.raw_data());
  return std::vector<uint8_t>(p, p + h.nbytes());
}

// Every tensor of `a` equals (bit for bit) the same-named tensor of `b`.
void require_same_state(const std::vector<std::pair<std::string, TensorBase>>& a,
                        const std::vector<std::pair<std::string, TensorBase>>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("tensor " << a[i].first);
    REQUIRE(a[i].first == b[i].first);
    REQUIRE(a[i].second.dtype() == b[i].second.dtype());
    REQUIRE(a[i].second.shape() == b[i].second.shape());
    CHECK(bytes_of(a[i].second) == bytes_of(b[i].second));
  }
}

// A tiny model with every kind of state: conv weight+bias, BN params, running stats and the int64 counter.
std::shared_ptr<nn::Sequential<float>> tiny_model(uint64_t seed) {
  Generator g(seed);
  auto m = std::make_shared<nn::Sequential<float>>();
  m->push_back(std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(3, 4, 3), g));
  m->push_back(std::make_shared<nn::BatchNorm2d<float>>(4));
  return m;
}

template <typename T>
void train_steps(nn::Module<T>& model, optim::Optimizer<acc_t<T>>& opt, int steps, uint64_t seed) {
  model.train();
  for (int s = 0; s < steps; ++s) {
    auto x = testing::random_tensor<T>({2, 3, 32, 32}, seed + static_cast<uint64_t>(s));
    auto loss = cross_entropy(model.forward(x), std::vector<int32_t>{1, 3});
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
}

io::TrainingState sample_state() {
  io::TrainingState s;
  s.arch = "resnet18";
  s.epoch = 3;
  s.step = 1234;
  s.lr = 0.1 * 0.3;  // not exactly representable: checks the round trip
  s.schedule = "cosine";
  s.seed = 18446744073709551615ull;
  s.class_names = {"cat", "dog", "with \"quotes\", commas\nand a newline", "caf\xc3\xa9"};
  s.extra["best_acc"] = "0.875";
  s.extra["image_size"] = "128";
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// safetensors format

TEST_CASE("safetensors: every dtype, scalars, empty tensors and metadata round-trip bit-exactly", "[io]") {
  TempDir dir;
  const std::string path = dir.file("all.safetensors");
  std::vector<float> f32{1.5f, -2.25f, 3e-38f, 7.0f, -0.0f, 1e30f};
  std::vector<double> f64{3.141592653589793, -1e-300};
  std::vector<uint16_t> f16{half_t(0.5f).bits, half_t(-65504.0f).bits, half_t(1e-7f).bits};
  std::vector<uint16_t> bf16{bf16_t(1.0f).bits, bf16_t(-3e38f).bits};
  std::vector<int32_t> i32{-2147483647 - 1, 7};
  std::vector<int64_t> i64{int64_t(1) << 62};
  std::vector<uint8_t> u8{0, 255, 17};
  std::vector<io::SafetensorsEntry> entries{{"f32", DType::F32, Shape{2, 3}, f32.data()},
                                            {"f64", DType::F64, Shape{2}, f64.data()},
                                            {"f16", DType::F16, Shape{3}, f16.data()},
                                            {"bf16", DType::BF16, Shape{1, 2}, bf16.data()},
                                            {"i32", DType::I32, Shape{2, 1}, i32.data()},
                                            {"scalar.i64", DType::I64, Shape{}, i64.data()},
                                            {"u8", DType::U8, Shape{3}, u8.data()},
                                            {"empty", DType::F32, Shape{0, 4}, nullptr},
                                            {"name \"quoted\" \xc3\xa9", DType::U8, Shape{1}, u8.data()}};
  std::map<std::string, std::string> meta{
      {"k", "v"}, {"tricky", "a\"b\\c\n\t\x01 \xe2\x82\xac"}, {"", "empty key"}};
  io::write_safetensors(path, entries, meta);

  auto bytes = read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<size_t>(i)];
  CHECK((8 + n) % 8 == 0);  // data section aligned
  CHECK(bytes.size() == 8 + n + 24 + 16 + 6 + 4 + 8 + 8 + 3 + 0 + 1);

  auto r = io::SafetensorsReader::open(path);
  CHECK(r.metadata() == meta);
  REQUIRE(r.tensors().size() == entries.size());
  for (const auto& e : entries) {
    INFO(e.name);
    const auto& info = r.at(e.name);
    CHECK(info.dtype == e.dtype);
    CHECK(info.shape == e.shape);
    TensorBase t = r.read(e.name);
    CHECK(t.shape() == e.shape);
    const auto* want = static_cast<const uint8_t*>(e.data);
    CHECK(bytes_of(t) == std::vector<uint8_t>(want, want + e.nbytes()));
  }
  // read_into checks dtype and shape before copying.
  auto dst = Tensor<float>::zeros({2, 3});
  TensorBase base = dst;
  r.read_into("f32", base);
  CHECK(dst.to_vector() == f32);
  TensorBase wrong_shape = Tensor<float>::zeros({3, 2});
  require_error_mentions([&] { r.read_into("f32", wrong_shape); }, {path, "'f32'", "shape [2, 3]", "[3, 2]"});
  TensorBase wrong_dtype = Tensor<double>::zeros({2, 3});
  require_error_mentions([&] { r.read_into("f32", wrong_dtype); }, {path, "'f32'", "dtype F32", "F64"});
  require_error_mentions([&] { r.read("nope"); }, {path, "missing tensor 'nope'"});
}

TEST_CASE("safetensors: reads a hand-written file with escapes, padding and unsorted entries", "[io]") {
  // Two floats stored out of header order, \u escapes (incl. a surrogate pair), trailing space padding.
  const std::string json =
      "{ \"b\" : {\"shape\": [1], \"dtype\":\"F32\", \"data_offsets\":[4,8]},\n"
      "  \"\\u0061\\/\\ud83d\\ude00\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]},"
      "  \"__metadata__\": {\"who\": \"caf\\u00e9\\n\"} }   ";
  auto file = make_safetensors(json, 8);
  float a = 2.5f, b = -1.0f;
  std::memcpy(&file[8 + json.size()], &a, 4);
  std::memcpy(&file[8 + json.size() + 4], &b, 4);
  auto r = io::SafetensorsReader::from_memory(file.data(), file.size(), "hand.safetensors");
  CHECK(r.metadata().at("who") == "caf\xc3\xa9\n");
  const std::string smiley = "a/\xf0\x9f\x98\x80";
  REQUIRE(r.find(smiley) != nullptr);
  CHECK(r.at(smiley).shape == Shape{});
  CHECK(Tensor<float>(r.read(smiley)).item() == 2.5f);
  CHECK(Tensor<float>(r.read("b")).to_vector() == std::vector<float>{-1.0f});
}

TEST_CASE("safetensors: malformed headers are refused with a message naming the file, tensor and problem",
          "[io]") {
  struct Case {
    std::string json;
    size_t data;
    std::vector<std::string> mentions;
  };
  const std::string ok = "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]";
  const std::vector<Case> cases{
      {"[]", 0, {"expected '{'", "byte 0"}},
      {"{\"x\":{" + ok + "}} x", 8, {"unexpected text after the header"}},
      {"{\"x\":{" + ok + "}", 8, {"expected ',' or '}'"}},
      {"{\"x\":{" + ok + "},}", 8, {"expected a tensor name"}},
      {"{\"x\" {" + ok + "}}", 8, {"expected ':'"}},
      {"{\"x\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,2]}}",
       2,
       {"tensor 'x'", "unsupported dtype 'F8'"}},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
       8,
       {"tensor 'x'", "needs 12 bytes", "hold 8"}},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}",
       8,
       {"tensor 'x'", "end before they begin"}},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 9, {"exactly two"}},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, {"between the two data offsets"}},
      {"{\"x\":{" + ok + "},\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
       12,
       {"tensor 'y'", "overlap tensor 'x'"}},
      {"{\"x\":{" + ok + "},\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
       20,
       {"tensor 'y'", "gap of 4 bytes"}},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, {"tensor 'x'", "gap"}},
      {"{\"x\":{" + ok + "}}", 5, {"tensor 'x'", "truncated"}},
      {"{\"x\":{" + ok + "}}", 9, {"1 unexpected bytes after the last tensor 'x'"}},
      {"{}", 3, {"3 unexpected bytes"}},
      {"{\"x\":{" + ok + "},\"x\":{" + ok + "}}", 16, {"tensor 'x' appears twice"}},
      {"{\"x\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, {"tensor 'x'", "no 'dtype'"}},
      {"{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, {"tensor 'x'", "no 'shape'"}},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, {"tensor 'x'", "no 'data_offsets'"}},
      {"{\"x\":{" + ok + ",\"extra\":1}}", 8, {"tensor 'x'", "unknown field 'extra'"}},
      {"{\"x\":{" + ok + ",\"dtype\":\"F32\"}}", 8, {"tensor 'x'", "two 'dtype'"}},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, {"negative"}},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, {"fraction or exponent"}},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 8, {"leading zero"}},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}",
       8,
       {"too large"}},
      {"{\"x\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}",
       8,
       {"tensor 'x'", "too large"}},
      {"{\"x\":{\"dtype\":F32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, {"expected the dtype (a string)"}},
      {"{\"__metadata__\":{\"a\":1}}", 0, {"metadata values must be strings"}},
      {"{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0, {"metadata key 'a' appears twice"}},
      {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, {"two '__metadata__'"}},
      {"{\"x\xff\":{" + ok + "}}", 8, {"not valid UTF-8", "byte 3"}},
      {"{\"x\xc0\x80\":{" + ok + "}}", 8, {"not valid UTF-8"}},  // overlong
      {"{\"a\tb\":{" + ok + "}}", 8, {"control character"}},
      {"{\"a\\qb\":{" + ok + "}}", 8, {"invalid escape"}},
      {"{\"a\\ud800\":{" + ok + "}}", 8, {"unpaired high surrogate"}},
      {"{\"a\\udc00\":{" + ok + "}}", 8, {"unpaired low surrogate"}},
      {"{\"a\\u12g4\":{" + ok + "}}", 8, {"invalid hex digit"}},
      {"{\"abc", 0, {"unterminated string"}},
      {"{\"\":{" + ok + "}}", 8, {"empty name"}},
  };
  for (const auto& c : cases) {
    INFO("header: " << c.json);
    auto file = make_safetensors(c.json, c.data);
    std::vector<std::string> mentions = c.mentions;
    mentions.push_back("safetensors file 'bad.safetensors'");
    require_error_mentions(
        [&] { io::SafetensorsReader::from_memory(file.data(), file.size(), "bad.safetensors"); }, mentions);
  }
}

TEST_CASE("safetensors: header length and file size are checked before anything is allocated", "[io]") {
  std::vector<uint8_t> tiny{1, 0, 0};
  require_error_mentions([&] { io::SafetensorsReader::from_memory(tiny.data(), tiny.size(), "t.st"); },
                         {"'t.st'", "3 bytes long", "too short"});
  auto file = make_safetensors("{}", 0);
  file[0] = 200;  // header length 200, only 2 bytes follow
  require_error_mentions([&] { io::SafetensorsReader::from_memory(file.data(), file.size(), "t.st"); },
                         {"'t.st'", "header length 200", "truncated"});
  file[0] = 0, file[5] = 1;  // 2^40 bytes: over the limit
  require_error_mentions([&] { io::SafetensorsReader::from_memory(file.data(), file.size(), "t.st"); },
                         {"'t.st'", "limit"});
  file[5] = 0, file[0] = 1;
  require_error_mentions([&] { io::SafetensorsReader::from_memory(file.data(), file.size(), "t.st"); },
                         {"'t.st'", "header length 1", "too small"});

  TempDir dir;
  require_error_mentions([&] { io::SafetensorsReader::open(dir.file("missing.safetensors")); },
                         {"cannot open", "missing.safetensors", "No such file"});
  require_error_mentions([&] { io::SafetensorsReader::open(dir.path.string()); },
                         {dir.path.string(), "not a regular file"});
}

TEST_CASE("safetensors writer: refuses duplicate, empty or non-UTF-8 names", "[io]") {
  TempDir dir;
  float v = 1;
  const std::string p = dir.file("w.safetensors");
  require_error_mentions(
      [&] {
        io::write_safetensors(p, {{"a", DType::F32, Shape{1}, &v}, {"a", DType::F32, Shape{1}, &v}});
      },
      {p, "'a' appears twice"});
  require_error_mentions(
      [&] {
        io::write_safetensors(p, {{"", DType::F32, Shape{1}, &v}});
      },
      {p, "invalid tensor name"});
  require_error_mentions(
      [&] {
        io::write_safetensors(p, {{"__metadata__", DType::F32, Shape{1}, &v}});
      },
      {"invalid tensor name '__metadata__'"});
  require_error_mentions(
      [&] {
        io::write_safetensors(p, {{"a\xff", DType::F32, Shape{1}, &v}});
      },
      {"not valid UTF-8"});
  require_error_mentions(
      [&] {
        io::write_safetensors(p, {}, {{"k", "\xc3"}});
      },
      {"metadata value", "not valid UTF-8"});
  CHECK(dir.count() == 0);  // nothing written, no temporary left behind
}

// ---------------------------------------------------------------------------------------------------------
// checkpoints

TEST_CASE("checkpoint: model, SGD state and training state round-trip, and training resumes exactly",
          "[io]") {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  auto o = models::ResNetOptions().num_classes(4).seed(11);
  auto a = models::resnet18<float>(o);
  auto so = optim::SGDOptions().lr(0.05).momentum(0.9).weight_decay(1e-4);
  optim::SGD<float> opt_a(a->named_parameters(), so);
  train_steps(*a, opt_a, 2, 100);
  opt_a.set_lr(0.03);
  auto st = sample_state();
  st.optimizer = "sgd";
  st.lr = 0.03;
  io::save_checkpoint(path, *a, &opt_a, st);
  CHECK(dir.count() == 1);  // the temporary was renamed, not left behind

  // Tensor names are torchvision's, with the optimizer's under "optimizer.".
  auto r = io::SafetensorsReader::open(path);
  for (const char* name :
       {"conv1.weight", "bn1.running_mean", "bn1.num_batches_tracked", "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var", "fc.weight", "fc.bias",
        "optimizer.layer4.1.bn2.weight.momentum_buffer", "optimizer.fc.bias.momentum_buffer"}) {
    INFO(name);
    CHECK(r.find(name) != nullptr);
  }
  CHECK(r.at("bn1.num_batches_tracked").dtype == DType::I64);
  CHECK(r.at("bn1.num_batches_tracked").shape == Shape{});
  CHECK(Tensor<int64_t>(r.read("bn1.num_batches_tracked")).item() == 2);

  o.seed(99);  // different initial weights
  auto b = models::resnet18<float>(o);
  optim::SGD<float> opt_b(b->named_parameters(), so);
  io::TrainingState got = io::load_checkpoint(path, *b, &opt_b);
  require_same_state(a->state_dict(), b->state_dict());
  require_same_state(opt_a.state(), opt_b.state());
  CHECK(opt_b.step_count() == 2);
  CHECK(opt_b.lr() == 0.03);
  CHECK(got.arch == st.arch);
  CHECK(got.epoch == st.epoch);
  CHECK(got.step == st.step);
  CHECK(got.lr == st.lr);
  CHECK(got.optimizer == "sgd");
  CHECK(got.schedule == st.schedule);
  CHECK(got.seed == st.seed);
  CHECK(got.class_names == st.class_names);
  CHECK(got.extra == st.extra);
  io::TrainingState meta_only = io::read_training_state(path);
  CHECK(meta_only.class_names == st.class_names);
  CHECK(meta_only.arch == "resnet18");

  // Two more steps on both: identical weights, bit for bit (momentum, step count and BN counters restored).
  train_steps(*a, opt_a, 2, 200);
  train_steps(*b, opt_b, 2, 200);
  require_same_state(a->state_dict(), b->state_dict());

  // Weights only: the optimizer's tensors in the file are ignored.
  auto c = models::resnet18<float>(o);
  io::load_checkpoint<float>(path, *c, nullptr);
  auto file = io::SafetensorsReader::open(path);
  for (auto& kv : c->state_dict()) {
    INFO(kv.first);
    CHECK(bytes_of(kv.second) == bytes_of(file.read(kv.first)));
  }
}

// io::save / io::load: one line each, no optimizer pointer to cast; the same files as save_checkpoint.
TEST_CASE("io::save and io::load: weights alone, with the optimizer, and the non-strict load", "[io]") {
  TempDir dir;
  auto o = models::ResNetOptions().num_classes(4).seed(5);
  auto a = models::resnet18<float>(o);
  auto so = optim::SGDOptions().lr(0.05).momentum(0.9);
  optim::SGD<float> opt_a(a->named_parameters(), so);
  train_steps(*a, opt_a, 2, 300);

  // Weights only: no optimizer tensors in the file, and a fresh model loads them bit for bit.
  const std::string weights = dir.file("weights.safetensors");
  io::save(*a, weights);
  auto r = io::SafetensorsReader::open(weights);
  for (const auto& t : r.tensors()) CHECK(t.name.rfind("optimizer.", 0) != 0);
  o.seed(77);
  auto b = models::resnet18<float>(o);
  io::load(*b, weights);
  require_same_state(a->state_dict(), b->state_dict());

  // With the optimizer: its momentum and step count come back, so two more steps agree bit for bit.
  const std::string run = dir.file("run.safetensors");
  io::TrainingState st;
  st.arch = "resnet18";
  st.epoch = 4;
  io::save(*a, opt_a, run, st);
  auto c = models::resnet18<float>(o);
  optim::SGD<float> opt_c(c->named_parameters(), so);
  const io::TrainingState got = io::load(*c, opt_c, run);
  CHECK(got.epoch == 4);
  CHECK(opt_c.step_count() == 2);
  require_same_state(opt_a.state(), opt_c.state());
  train_steps(*a, opt_a, 2, 400);
  train_steps(*c, opt_c, 2, 400);
  require_same_state(a->state_dict(), c->state_dict());

  // Strict refuses another head; load_matching takes what fits and names the rest.
  o.num_classes(6);
  auto d = models::resnet18<float>(o);
  const auto fc_before = bytes_of(d->fc->weight);
  CHECK_THROWS_AS(io::load(*d, weights), Error);
  const io::LoadReport rep = io::load_matching(*d, weights);
  CHECK_FALSE(rep.complete());
  CHECK(rep.loaded.size() == d->state_dict().size() - 2);
  CHECK(bytes_of(d->fc->weight) == fc_before);
  CHECK(bytes_of(d->conv1->weight) == bytes_of(b->conv1->weight));
}

TEST_CASE("checkpoint: AdamW state and a double-precision model round-trip", "[io]") {
  TempDir dir;
  const std::string path = dir.file("adamw.safetensors");
  auto a = tiny_model(1);
  auto b = tiny_model(2);
  optim::AdamWOptions ao;
  optim::AdamW<float> opt_a(a->named_parameters(), ao), opt_b(b->named_parameters(), ao);
  a->train();
  for (int s = 0; s < 3; ++s) {
    auto y = a->forward(testing::random_tensor<float>({2, 3, 6, 6}, 7 + s));
    auto loss = sum(mul(y, y));
    opt_a.zero_grad();
    loss.backward();
    opt_a.step();
  }
  io::save_checkpoint(path, *a, &opt_a, io::TrainingState());
  auto st = io::load_checkpoint(path, *b, &opt_b);
  CHECK(st.optimizer == "adamw");
  CHECK(opt_b.step_count() == 3);
  require_same_state(a->state_dict(), b->state_dict());
  require_same_state(opt_a.state(), opt_b.state());
  CHECK(io::SafetensorsReader::open(path).find("optimizer.0.weight.exp_avg_sq") != nullptr);

  auto o = models::ResNetOptions().num_classes(3).seed(5);
  auto d = models::resnet18<double>(o);
  io::save_checkpoint<double>(dir.file("d.safetensors"), *d, nullptr, io::TrainingState());
  o.seed(6);
  auto e = models::resnet18<double>(o);
  io::load_checkpoint<double>(dir.file("d.safetensors"), *e, nullptr);
  require_same_state(d->state_dict(), e->state_dict());
  CHECK(io::SafetensorsReader::open(dir.file("d.safetensors")).at("fc.weight").dtype == DType::F64);
}

namespace {
// One saved ResNet-18 and one differently initialised target, shared by the sections below (building a
// ResNet-18 costs more than the checks).
struct MismatchFixture {
  TempDir dir;
  models::ResNetOptions o;
  std::shared_ptr<models::ResNet<float>> src, target;
  io::TrainingState st;
  std::string path;
  MismatchFixture() {
    o.num_classes(4);
    o.seed(3);
    src = models::resnet18<float>(o);
    st.arch = "resnet18";
    path = dir.file("r18.safetensors");
    io::save_checkpoint<float>(path, *src, nullptr, st);
    o.seed(4);
    target = models::resnet18<float>(o);
  }
};
}  // namespace

TEST_CASE("checkpoint: mismatched checkpoints are refused and leave the model untouched", "[io]") {
  static MismatchFixture fx;
  const TempDir& dir = fx.dir;
  const models::ResNetOptions& o = fx.o;
  auto& src = fx.src;
  auto& target = fx.target;
  const io::TrainingState& st = fx.st;
  const std::string& path = fx.path;
  std::vector<std::vector<uint8_t>> before;
  for (auto& kv : target->state_dict()) before.push_back(bytes_of(kv.second));
  auto untouched = [&] {
    auto now = target->state_dict();
    for (size_t i = 0; i < now.size(); ++i) {
      INFO(now[i].first);
      CHECK(bytes_of(now[i].second) == before[i]);
    }
  };

  SECTION("another architecture") {
    auto r34 = models::resnet34<float>(o);
    require_error_mentions([&] { io::load_checkpoint<float>(path, *r34, nullptr); },
                           {path, "missing tensor 'layer1.2.conv1.weight'", "and ", "saved from a resnet18"});
  }
  SECTION("another number of classes") {
    models::ResNetOptions o5 = o;
    o5.num_classes(5);
    auto r5 = models::resnet18<float>(o5);
    require_error_mentions([&] { io::load_checkpoint<float>(path, *r5, nullptr); },
                           {path, "tensor 'fc.weight'", "shape [4, 512]", "expects [5, 512]"});
  }
  SECTION("another dtype") {
    auto dbl = models::resnet18<double>(o);
    require_error_mentions([&] { io::load_checkpoint<double>(path, *dbl, nullptr); },
                           {path, "tensor 'conv1.weight'", "dtype F32", "expects F64"});
  }
  // Files rewritten with one tensor changed, missing or added.
  auto rewrite = [&](const std::string& out, const std::string& drop, const std::string& add, DType retype) {
    auto r = io::SafetensorsReader::open(path);
    std::vector<TensorBase> keep;
    std::vector<io::SafetensorsEntry> entries;
    for (const auto& info : r.tensors()) {
      if (info.name == drop) continue;
      keep.push_back(r.read(info.name));
      DType dt = info.name == "bn1.running_var" ? retype : info.dtype;
      Shape sh = dt == info.dtype
                     ? info.shape
                     : Shape{info.shape.numel() * int64_t(dtype_size(info.dtype) / dtype_size(dt))};
      entries.push_back({info.name, dt, sh, keep.back().raw_data()});
    }
    float extra = 1;
    if (!add.empty()) entries.push_back({add, DType::F32, Shape{1}, &extra});
    io::write_safetensors(out, entries, r.metadata());
  };
  SECTION("a missing tensor") {
    rewrite(dir.file("m.safetensors"), "layer3.1.bn2.running_mean", "", DType::F32);
    require_error_mentions([&] { io::load_checkpoint<float>(dir.file("m.safetensors"), *target, nullptr); },
                           {"m.safetensors", "missing tensor 'layer3.1.bn2.running_mean'"});
  }
  SECTION("an unexpected tensor") {
    rewrite(dir.file("u.safetensors"), "", "layer9.weight", DType::F32);
    require_error_mentions([&] { io::load_checkpoint<float>(dir.file("u.safetensors"), *target, nullptr); },
                           {"u.safetensors", "unexpected tensor 'layer9.weight'"});
  }
  SECTION("a wrong dtype in the file") {
    rewrite(dir.file("d.safetensors"), "", "", DType::F16);
    require_error_mentions([&] { io::load_checkpoint<float>(dir.file("d.safetensors"), *target, nullptr); },
                           {"d.safetensors", "tensor 'bn1.running_var'", "dtype F16", "expects F32"});
  }
  SECTION("optimizer state that is absent or of another optimizer") {
    auto so = optim::SGDOptions().momentum(0.9);
    optim::SGD<float> sgd(target->named_parameters(), so);
    require_error_mentions([&] { io::load_checkpoint<float>(path, *target, &sgd); },
                           {path, "no optimizer state"});
    io::save_checkpoint<float>(dir.file("sgd.safetensors"), *src, &sgd, st);
    optim::AdamW<float> adam(target->named_parameters(), optim::AdamWOptions());
    require_error_mentions([&] { io::load_checkpoint<float>(dir.file("sgd.safetensors"), *target, &adam); },
                           {"sgd.safetensors", "holds sgd optimizer state, not adamw"});
    optim::SGD<float> plain(target->named_parameters(), optim::SGDOptions());  // no momentum: no buffers
    require_error_mentions([&] { io::load_checkpoint<float>(dir.file("sgd.safetensors"), *target, &plain); },
                           {"sgd.safetensors", "unexpected tensor 'optimizer.conv1.weight.momentum_buffer'"});
    require_error_mentions(
        [&] {
          io::TrainingState bad;
          bad.optimizer = "adamw";
          io::save_checkpoint<float>(dir.file("x.safetensors"), *src, &sgd, bad);
        },
        {"x.safetensors", "'adamw' but the optimizer is 'sgd'"});
  }
  SECTION("bad metadata") {
    auto r = io::SafetensorsReader::open(path);
    auto meta = r.metadata();
    std::vector<TensorBase> keep;
    std::vector<io::SafetensorsEntry> entries;
    for (const auto& info : r.tensors()) {
      keep.push_back(r.read(info.name));
      entries.push_back({info.name, info.dtype, info.shape, keep.back().raw_data()});
    }
    auto with = [&](const std::string& k, const std::string& v) {
      auto m = meta;
      m[k] = v;
      io::write_safetensors(dir.file("meta.safetensors"), entries, m);
      return dir.file("meta.safetensors");
    };
    require_error_mentions([&] { io::read_training_state(with("epoch", "3x")); },
                           {"meta.safetensors", "'epoch' = '3x'"});
    require_error_mentions([&] { io::read_training_state(with("seed", "-1")); },
                           {"meta.safetensors", "'seed'"});
    require_error_mentions([&] { io::read_training_state(with("lr", "")); }, {"meta.safetensors", "'lr'"});
    require_error_mentions([&] { io::read_training_state(with("class_names", "[\"a\",]")); },
                           {"meta.safetensors", "class_names"});
    require_error_mentions([&] { io::read_training_state(with("format_version", "2")); },
                           {"meta.safetensors", "format_version 2 is not supported"});
    require_error_mentions([&] { io::read_training_state(with("format", "other")); },
                           {"meta.safetensors", "'format' is 'other'"});
  }
  untouched();
}

TEST_CASE("checkpoint: a file truncated at any offset is refused with its name", "[io]") {
  TempDir dir;
  const std::string good = dir.file("good.safetensors");
  auto m = tiny_model(1);
  io::save_checkpoint<float>(good, *m, nullptr, sample_state());
  auto bytes = read_file(good);
  REQUIRE(bytes.size() > 600);
  auto target = tiny_model(2);
  // Every cut, in memory; a cut inside the length, the header or the data says "truncated" or "too short".
  for (size_t n = 0; n < bytes.size(); ++n) {
    INFO("truncated to " << n << " of " << bytes.size() << " bytes");
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    try {
      io::load_checkpoint<float>(
          io::SafetensorsReader::from_memory(cut.data(), cut.size(), "cut.safetensors"), *target, nullptr);
      FAIL("a truncated checkpoint loaded");
    } catch (const Error& e) {
      std::string msg = e.what();
      CHECK(msg.find("'cut.safetensors'") != std::string::npos);
      CHECK((msg.find("truncated") != std::string::npos || msg.find("too short") != std::string::npos));
    }
  }
  // And some cuts on disk, through the file reader.
  const std::string cut = dir.file("cut.safetensors");
  for (size_t n : {size_t(0), size_t(5), size_t(8), size_t(40), bytes.size() / 2, bytes.size() - 1}) {
    write_file(cut, bytes, n);
    INFO("truncated to " << n);
    require_error_mentions([&] { io::load_checkpoint<float>(cut, *target, nullptr); }, {cut});
  }
  require_same_state(tiny_model(2)->state_dict(), target->state_dict());
}

TEST_CASE("checkpoint: flipped header bytes never load garbage", "[io]") {
  TempDir dir;
  const std::string good = dir.file("good.safetensors");
  auto m = tiny_model(1);
  io::save_checkpoint<float>(good, *m, nullptr, sample_state());
  auto bytes = read_file(good);
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | bytes[static_cast<size_t>(i)];
  const auto fresh = tiny_model(2)->state_dict();
  int refused = 0, loaded = 0;
  for (size_t pos = 0; pos < 8 + header; ++pos) {
    for (uint8_t mask : {uint8_t(0x01), uint8_t(0x04), uint8_t(0x20), uint8_t(0x80)}) {
      auto copy = bytes;
      copy[pos] ^= mask;
      auto target = tiny_model(2);
      INFO("byte " << pos << " xor " << int(mask));
      try {
        io::load_checkpoint<float>(
            io::SafetensorsReader::from_memory(copy.data(), copy.size(), "flip.safetensors"), *target,
            nullptr);
        // Only harmless flips can load (in the metadata, say): the weights must then be exactly right.
        require_same_state(m->state_dict(), target->state_dict());
        ++loaded;
      } catch (const Error& e) {
        CHECK(std::string(e.what()).find("'flip.safetensors'") != std::string::npos);
        require_same_state(fresh, target->state_dict());  // a refused load changed nothing
        ++refused;
      }
    }
  }
  CHECK(refused > 3 * loaded);
}

TEST_CASE("checkpoint: a failed write keeps the previous checkpoint and leaves no temporary file", "[io]") {
  TempDir dir;
  const std::string path = dir.file("last.safetensors");
  auto m1 = tiny_model(1);
  io::TrainingState s1;
  s1.epoch = 1;
  io::save_checkpoint<float>(path, *m1, nullptr, s1);
  const auto before = read_file(path);

  // A file-size limit makes the write fail part-way (EFBIG), as a full disk would.
  auto o = models::ResNetOptions().num_classes(10);
  auto big = models::resnet18<float>(o);
  struct rlimit old;
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old;
  lim.rlim_cur = 1 << 20;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
  io::TrainingState s2;
  s2.epoch = 2;
  bool threw = false;
  std::string msg;
  try {
    io::save_checkpoint<float>(path, *big, nullptr, s2);
  } catch (const Error& e) {
    threw = true;
    msg = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  REQUIRE(threw);
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("previous file (if any) is unchanged") != std::string::npos);
  CHECK(read_file(path) == before);
  CHECK(dir.count() == 1);
  CHECK(io::read_training_state(path).epoch == 1);

  require_error_mentions(
      [&] { io::save_checkpoint<float>(dir.file("no/such/dir/x.safetensors"), *m1, nullptr, s1); },
      {"no/such/dir/x.safetensors", "No such file"});

  // An abandoned write (an exception between write and commit) also leaves the old file alone.
  {
    io::AtomicFile f(path);
    f.write("partial");
  }
  CHECK(read_file(path) == before);
  CHECK(dir.count() == 1);
}

namespace {
struct CommaDecimal : std::numpunct<char> {
  char do_decimal_point() const override { return ','; }
};
}  // namespace

TEST_CASE("checkpoint: numbers in the metadata do not depend on the program's locale", "[io]") {
  TempDir dir;
  auto m = tiny_model(1);
  io::TrainingState s;
  s.lr = 0.125;
  std::locale saved = std::locale::global(std::locale(std::locale::classic(), new CommaDecimal));
  io::save_checkpoint<float>(dir.file("c.safetensors"), *m, nullptr, s);
  double lr = io::read_training_state(dir.file("c.safetensors")).lr;
  std::locale::global(saved);
  CHECK(io::SafetensorsReader::open(dir.file("c.safetensors")).metadata().at("lr") == "0.125");
  CHECK(lr == 0.125);
  s.lr = HUGE_VAL;  // a diverged run's state still saves and loads
  io::save_checkpoint<float>(dir.file("inf.safetensors"), *m, nullptr, s);
  CHECK(std::isinf(io::read_training_state(dir.file("inf.safetensors")).lr));
}

TEST_CASE("checkpoint: plain safetensors weights (no metadata) load as weights only", "[io]") {
  TempDir dir;
  auto m = tiny_model(1);
  std::vector<TensorBase> keep;
  std::vector<io::SafetensorsEntry> entries;
  for (auto& kv : m->state_dict()) {
    keep.push_back(kv.second);
    entries.push_back({kv.first, kv.second.dtype(), kv.second.shape(), kv.second.raw_data()});
  }
  io::write_safetensors(dir.file("plain.safetensors"), entries);
  auto target = tiny_model(2);
  io::TrainingState s = io::load_checkpoint<float>(dir.file("plain.safetensors"), *target, nullptr);
  CHECK(s.arch.empty());
  CHECK(s.optimizer.empty());
  require_same_state(m->state_dict(), target->state_dict());
}
