// ONNX export, checked by code that is not ours.
//
// [onnx]: the exporter's own contract: torchvision's names on the initialisers, unknown layers named in the
// error, a training-mode model exported as eval mode with a warning, unwritable paths leaving no file.
// [checker]: exports ResNet-18/34/50/101/152 (folded and not), a v1 ResNet-50 with Softmax, a custom small
// model and resnet_export's output, writes our outputs for real photos (random inputs where the data set is
// absent) next to them, and runs tests/onnx/check_onnx.py under RESNET_PYTHON: onnx.checker's full check on
// every file, OpenCV's dnn module on the ResNet-18/50, custom and resnet_export files (within 1e-4 of ours).
//
// `test_onnx "[checker]"` exits 77 (ctest: skipped) when that Python lacks onnx or cv2; without
// libonnx-dev at build time the whole program exits 77.
#include "catch.hpp"
#include "catch_session.hpp"  // our own main(): skip (exit 77) when the exporter or the checkers are missing

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

#ifdef RESNET_HAVE_ONNX
#include "resnet/data/transforms.hpp"
#include "resnet/io/json_lite.hpp"
#include "resnet/io/onnx.hpp"
#include "resnet/models/fuse.hpp"
#include "test_util.hpp"
#ifdef RESNET_HAVE_ONNX_CHECKER  // libonnx: the C++ checker that python3-onnx wraps, run in-process
#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>
#endif

using namespace resnet;
namespace fs = std::filesystem;

namespace {

std::string quote(const std::string& s) { return "'" + s + "'"; }

struct WorkDir {
  fs::path path;
  explicit WorkDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("resnet_onnx_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~WorkDir() {
    std::error_code ec;
    fs::remove_all(path, ec);  // a few hundred MB of exported weights
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_f32(const std::string& path, const Tensor<float>& t) {
  std::vector<float> v = t.to_vector();
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  REQUIRE(f.good());
}

std::string json_dims(const Shape& s) {
  std::string out = "[";
  for (int64_t i = 0; i < s.rank(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

// Random BN affine weights and statistics, so that folding (and a swapped statistic) shows in the outputs.
void randomize_batchnorm(nn::Module<float>& m, Generator& g) {
  if (auto* bn = dynamic_cast<nn::BatchNorm2d<float>*>(&m)) {
    for (int64_t i = 0; i < bn->weight.numel(); ++i) {
      bn->weight.data()[i] = static_cast<float>(g.uniform(0.5, 1.5));
      bn->bias.data()[i] = static_cast<float>(g.normal(0.0, 0.2));
      bn->running_mean.data()[i] = static_cast<float>(g.normal(0.0, 0.2));
      bn->running_var.data()[i] = static_cast<float>(g.uniform(0.5, 2.0));
    }
  }
  for (const auto& c : m.named_children()) randomize_batchnorm(*c.second, g);
}
void randomize_batchnorm(nn::Module<float>& m, uint64_t seed) {
  Generator g(seed);
  randomize_batchnorm(m, g);
}

// The first `per_class` sorted photos of each class of the test split, as the evaluation transform makes
// them; random images when the data set is not beside the checkout (CI has it in ../shared).
Tensor<float> photos(int64_t per_class, int size, std::string* what) {
  const fs::path src(RESNET_SOURCE_DIR);
  const char* env = std::getenv("RESNET_DATA");
  for (const fs::path& dir : {env ? fs::path(env) : fs::path(), src / "../shared/data/catsdogs-128",
                              src / "../shared/data/catsdogs"}) {
    if (dir.empty()) continue;
    const fs::path root = dir / "test";
    std::error_code ec;
    if (!fs::is_directory(root / "cat", ec) || !fs::is_directory(root / "dog", ec)) continue;
    std::vector<std::string> files;
    for (const char* cls : {"cat", "dog"}) {
      std::vector<std::string> all;
      for (const auto& e : fs::directory_iterator(root / cls)) all.push_back(e.path().string());
      std::sort(all.begin(), all.end());
      for (int64_t i = 0; i < per_class && i < static_cast<int64_t>(all.size()); ++i) files.push_back(all[i]);
    }
    auto t = data::TransformOptions().size(size);
    auto x = Tensor<float>::zeros({static_cast<int64_t>(files.size()), 3, size, size});
    for (size_t i = 0; i < files.size(); ++i) {
      data::SampleRng rng(1);
      data::apply_transform(data::load_image(files[i]), t, rng, x.data() + i * 3 * size * size);
    }
    *what = "photos";
    std::cout << "inputs: " << files.size() << " photos from " << dir.string() << "\n";
    return x;
  }
  *what = "synthetic";
  std::cout << "inputs: no data set beside the checkout; random images instead of photos\n";
  return testing::random_tensor<float>({2 * per_class, 3, size, size}, 404);
}

// The cases for check_onnx.py, as JSON.
class Manifest {
 public:
  explicit Manifest(const WorkDir& dir) : dir_(dir) {}

  // Exports `net` (eval mode), runs it on each input and records what the checker must verify.
  template <typename M>
  void add(const std::string& name, M& net, const io::OnnxExportOptions& o, bool opencv,
           const std::vector<std::pair<std::string, Tensor<float>>>& inputs,
           const std::vector<std::string>& initializers, bool check_names = true,
           bool every_bn_folds = true) {
    io::OnnxExportInfo info = io::export_onnx(net, dir_.file(name + ".onnx"), o);
    std::string runs;
    if (opencv) {
      NoGradGuard ng;
      for (const auto& in : inputs) {
        Tensor<float> y = net.forward(in.second);
        if (o.softmax()) y = softmax(y);
        const std::string base = name + "." + in.first;
        write_f32(dir_.file(base + ".in"), in.second);
        write_f32(dir_.file(base + ".out"), y);
        runs += std::string(runs.empty() ? "" : ",") + "{\"label\":" + io::json_quote(in.first) +
                ",\"input\":" + io::json_quote(base + ".in") +
                ",\"input_shape\":" + json_dims(in.second.shape()) +
                ",\"output\":" + io::json_quote(base + ".out") + ",\"output_shape\":" + json_dims(y.shape()) +
                "}";
      }
    }
    std::string meta;
    for (const auto& kv : o.metadata())
      meta +=
          std::string(meta.empty() ? "" : ",") + io::json_quote(kv.first) + ":" + io::json_quote(kv.second);
    add_raw("{\"name\":" + io::json_quote(name) + ",\"onnx\":" + io::json_quote(name + ".onnx") +
            ",\"opset\":" + std::to_string(io::kOnnxOpset) + ",\"opencv\":" + (opencv ? "true" : "false") +
            ",\"initializers\":" + (check_names ? io::json_string_array(initializers) : "null") +
            ",\"metadata\":{" + meta + "}" +
            ",\"forbid_ops\":" + (o.fold_batchnorm() && every_bn_folds ? "[\"BatchNormalization\"]" : "[]") +
            ",\"require_ops\":" + (o.softmax() ? "[\"Softmax\"]" : "[]") + ",\"runs\":[" + runs + "]}");
    std::cout << "exported " << name << ": " << info.nodes << " nodes, " << info.initializers
              << " initialisers, " << info.bytes / 1000000.0 << " MB\n";
  }
  void add_raw(const std::string& json) { cases_.push_back(json); }

  // Writes the manifest and runs the checker; its exit status.
  int check() const {
    const std::string path = dir_.file("cases.json");
    std::ofstream f(path);
    f << "{\"cases\":[\n";
    for (size_t i = 0; i < cases_.size(); ++i) f << (i ? ",\n" : "") << cases_[i];
    f << "\n]}\n";
    f.close();
    const std::string cmd = quote(RESNET_PYTHON) + " " + quote(RESNET_ONNX_CHECKER) + " " + quote(path);
    std::cout << "running: " << cmd << std::endl;
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }

 private:
  const WorkDir& dir_;
  std::vector<std::string> cases_;
};

// torchvision's names of what an unfolded export carries: every parameter and BN statistic.
template <typename M>
std::vector<std::string> state_names(const M& net) {
  std::vector<std::string> v;
  for (const auto& kv : net.state_dict())
    if (kv.first.find("num_batches_tracked") == std::string::npos) v.push_back(kv.first);
  return v;
}
// ... and a folded one: each conv's weight and bias (the BN folded in) and the fc.
template <typename M>
std::vector<std::string> folded_names(const M& net) {
  std::vector<std::string> v;
  for (const auto& kv : net.named_parameters()) {
    const std::string& n = kv.first;
    if (kv.second.shape().rank() == 4) {
      v.push_back(n);
      v.push_back(n.substr(0, n.size() - 6) + "bias");  // "<conv>.weight" -> "<conv>.bias"
    } else if (n.rfind("fc.", 0) == 0) {
      v.push_back(n);
    }
  }
  return v;
}

std::shared_ptr<models::ResNet<float>> test_resnet(const std::string& arch, int64_t classes,
                                                   bool v1 = false) {
  auto o = models::ResNetOptions().num_classes(classes).seed(2024).stride_on_1x1(v1);
  auto net = models::resnet<float>(arch, o);
  randomize_batchnorm(*net, 7);
  net->eval();
  return net;
}

// A small model of every layer type: conv with bias, BN after a conv and alone, both pools (padding counted
// and not), v1.5 and v1 bottleneck blocks with projections, global pooling, Linear and Softmax. Eval mode,
// random BN.
std::shared_ptr<nn::Sequential<float>> custom_model() {
  auto p = std::make_shared<nn::Sequential<float>>();
  nn::Sequential<float>& net = *p;
  Generator g(5);
  net.push_back(std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(3, 8, 3).padding(1), g));
  net.push_back(std::make_shared<nn::BatchNorm2d<float>>(8));
  net.push_back(std::make_shared<nn::ReLU<float>>());
  net.push_back(std::make_shared<nn::MaxPool2d<float>>(2, 2));
  auto bo =
      models::ResidualBlockOptions().in_channels(8).planes(4).kind(models::BlockKind::Bottleneck).stride(2);
  net.push_back(std::make_shared<models::ResidualBlock<float>>(bo, g));
  bo.in_channels(16);
  bo.stride_on_1x1(true);  // the paper's v1 placement, projecting shortcut
  net.push_back(std::make_shared<models::ResidualBlock<float>>(bo, g));
  net.push_back(std::make_shared<nn::AvgPool2d<float>>(3, 1, 1));  // padding counted (PyTorch's default)
  net.push_back(std::make_shared<nn::AvgPool2d<float>>(3, 1, 1, /*count_include_pad=*/false));
  net.push_back(std::make_shared<nn::BatchNorm2d<float>>(16));  // after a pool: nothing to fold into
  net.push_back(std::make_shared<nn::AvgPool2d<float>>(2, 2, 0));
  net.push_back(std::make_shared<nn::GlobalAvgPool2d<float>>());
  net.push_back(std::make_shared<nn::Linear<float>>(16, 6, true, g));
  net.push_back(std::make_shared<nn::Softmax<float>>());
  randomize_batchnorm(net, 11);
  net.eval();
  return p;
}

int64_t count_batchnorms(const nn::Module<float>& m) {
  int64_t n = dynamic_cast<const nn::BatchNorm2d<float>*>(&m) != nullptr;
  for (const auto& c : m.named_children()) n += count_batchnorms(*c.second);
  return n;
}

// A layer the exporter has never heard of.
class Shuffle : public nn::Module<float> {
 public:
  Tensor<float> forward(const Tensor<float>& x) override { return x; }
  std::string type_name() const override { return "ChannelShuffle"; }
};

bool file_exists(const std::string& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}
int count_entries(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) (void)e, ++n;
  return n;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------

TEST_CASE("onnx: initialisers carry torchvision's names; folding replaces BN tensors by conv biases",
          "[onnx]") {
  auto net = test_resnet("resnet18", 3);
  auto o = io::OnnxExportOptions().height(32).width(32);
  io::OnnxExportInfo info;
  ::onnx::ModelProto m = io::to_onnx(*net, o, &info);
  std::vector<std::string> got;
  for (const auto& t : m.graph().initializer()) got.push_back(t.name());
  std::vector<std::string> want = state_names(*net);
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  CHECK(got == want);
  CHECK(m.opset_import(0).version() == io::kOnnxOpset);
  CHECK(m.graph().input(0).type().tensor_type().shape().dim(0).dim_param() == "N");
  CHECK(m.graph().output(0).name() == "logits");
  CHECK(info.output_shape == std::vector<int64_t>{-1, 3});
  CHECK(info.warnings.empty());

  o.fold_batchnorm(true);
  ::onnx::ModelProto f = io::to_onnx(*net, o, &info);
  got.clear();
  for (const auto& t : f.graph().initializer()) got.push_back(t.name());
  want = folded_names(*net);
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  CHECK(got == want);
  int bn = 0;
  for (const auto& n : f.graph().node()) bn += n.op_type() == "BatchNormalization";
  CHECK(bn == 0);
  CHECK(f.graph().node_size() < m.graph().node_size() - 15);  // 20 BNs gone
}

#ifdef RESNET_HAVE_ONNX_CHECKER
// onnx.checker.check_model(full_check=True), as python3-onnx runs it: the structural check, then strict
// shape inference (types, ranks, every inferred shape against the declared output).
void full_check(::onnx::ModelProto m) {
  ::onnx::checker::check_model(m);
  ::onnx::ShapeInferenceOptions strict{/*check_type=*/true, /*error_mode=*/1,
                                       /*enable_data_propagation=*/false};
  ::onnx::shape_inference::InferShapes(m, ::onnx::OpSchemaRegistry::Instance(), strict);
  REQUIRE(m.graph().output_size() == 1);
}

TEST_CASE("onnx: all five ResNets (v1.5 and v1, folded or not) and a custom model pass libonnx's full check",
          "[onnx]") {
  for (const char* arch : {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}) {
    auto net = test_resnet(arch, 10);
    const int64_t blocks = static_cast<int64_t>(net->blocks.size());
    const int64_t bns = count_batchnorms(*net);
    for (bool fold : {false, true}) {
      auto o = io::OnnxExportOptions().height(64).width(64).fold_batchnorm(fold);
      ::onnx::ModelProto m = io::to_onnx(*net, o);
      INFO(arch << (fold ? " folded" : ""));
      std::map<std::string, int64_t> ops;
      for (const auto& n : m.graph().node()) ++ops[n.op_type()];
      REQUIRE_NOTHROW(full_check(std::move(m)));
      CHECK(ops["Add"] == blocks);
      CHECK(ops["BatchNormalization"] == (fold ? 0 : bns));
      CHECK(ops["Conv"] == bns);  // one BN per convolution in a ResNet
      CHECK(ops["MaxPool"] == 1);
      CHECK(ops["GlobalAveragePool"] == 1);
      CHECK(ops["Gemm"] == 1);
    }
  }
  auto v1 = test_resnet("resnet50", 10, /*v1=*/true);
  auto o = io::OnnxExportOptions().height(64).width(64).softmax(true);
  REQUIRE_NOTHROW(full_check(io::to_onnx(*v1, o)));
  o.height(20).width(20);
  for (bool fold : {false, true}) {
    o.fold_batchnorm(fold);
    REQUIRE_NOTHROW(full_check(io::to_onnx(*custom_model(), o)));
  }
}

TEST_CASE("onnx: libonnx's checker is not a rubber stamp", "[onnx]") {
  auto net = test_resnet("resnet18", 2);
  auto o = io::OnnxExportOptions().height(32).width(32);
  ::onnx::ModelProto m = io::to_onnx(*net, o);
  m.mutable_graph()
      ->mutable_output(0)
      ->mutable_type()
      ->mutable_tensor_type()
      ->mutable_shape()
      ->mutable_dim(1)
      ->set_dim_value(3);
  CHECK_THROWS(full_check(std::move(m)));  // declared [N, 3], inferred [N, 2]
  m = io::to_onnx(*net, o);
  m.mutable_graph()->mutable_node(3)->set_input(0, "nowhere");
  CHECK_THROWS(full_check(std::move(m)));  // a node reading a value nothing defines
}
#endif

TEST_CASE("onnx: a model already fused for inference exports the network it computes", "[onnx]") {
  // models::fuse_for_inference (what infer::Classifier runs) leaves identity BatchNorms behind; folding
  // them again must give the same weights as folding the unfused model.
  auto net = test_resnet("resnet18", 2);
  auto fused = test_resnet("resnet18", 2);
  REQUIRE(models::fuse_for_inference(*fused) == 20);
  auto o = io::OnnxExportOptions().height(32).width(32).fold_batchnorm(true);
  ::onnx::ModelProto a = io::to_onnx(*net, o), b = io::to_onnx(*fused, o);
  REQUIRE(a.graph().initializer_size() == b.graph().initializer_size());
  double worst = 0;
  for (int i = 0; i < a.graph().initializer_size(); ++i) {
    const auto &x = a.graph().initializer(i), &y = b.graph().initializer(i);
    REQUIRE(x.name() == y.name());
    REQUIRE(x.raw_data().size() == y.raw_data().size());
    const float* p = reinterpret_cast<const float*>(x.raw_data().data());
    const float* q = reinterpret_cast<const float*>(y.raw_data().data());
    double scale = 1e-30, diff = 0;
    for (size_t k = 0; k < x.raw_data().size() / sizeof(float); ++k) {
      scale = std::max(scale, std::abs(double(p[k])));
      diff = std::max(diff, std::abs(double(p[k]) - double(q[k])));
    }
    worst = std::max(worst, diff / scale);
  }
  CHECK(worst < 1e-6);
}

TEST_CASE("onnx: a layer without an ONNX form is an error naming it", "[onnx]") {
  auto inner = std::make_shared<nn::Sequential<float>>();
  inner->push_back(std::make_shared<nn::ReLU<float>>());
  inner->push_back(std::make_shared<Shuffle>());
  nn::Sequential<float> outer;
  outer.push_back(std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(3, 4, 3)));
  outer.push_back(inner);
  outer.eval();
  WorkDir dir("unknown");
  const std::string out = dir.file("m.onnx");
  try {
    io::export_onnx(outer, out, io::OnnxExportOptions());
    FAIL("export_onnx accepted an unknown layer");
  } catch (const Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("layer '1.1'") != std::string::npos);
    CHECK(msg.find("ChannelShuffle") != std::string::npos);
  }
  CHECK(!file_exists(out));
  CHECK(count_entries(dir.path) == 0);
}

TEST_CASE("onnx: a model in training mode warns, exports its eval-mode graph and stays as it was", "[onnx]") {
  auto net = test_resnet("resnet18", 2);
  auto o = io::OnnxExportOptions().height(32).width(32);
  std::string eval_bytes, train_bytes;
  REQUIRE(io::to_onnx(*net, o).SerializeToString(&eval_bytes));
  net->train();
  const int64_t tracked = net->bn1->num_batches_tracked.data()[0];
  std::vector<std::string> seen;
  o.warn([&](const std::string& m) { seen.push_back(m); });
  io::OnnxExportInfo info;
  REQUIRE(io::to_onnx(*net, o, &info).SerializeToString(&train_bytes));
  REQUIRE(info.warnings.size() == 1);
  CHECK(seen == info.warnings);
  CHECK(info.warnings[0].find("training mode") != std::string::npos);
  CHECK(train_bytes == eval_bytes);  // the same eval-mode graph, byte for byte
  CHECK(net->is_training());
  CHECK(net->blocks[0]->is_training());
  CHECK(net->bn1->num_batches_tracked.data()[0] == tracked);
}

TEST_CASE("onnx: an unwritable path is a clear error and leaves no file", "[onnx]") {
  auto net = test_resnet("resnet18", 2);
  auto o = io::OnnxExportOptions().height(32).width(32);
  WorkDir dir("unwritable");
  auto fails_naming = [&](const std::string& path) {
    try {
      io::export_onnx(*net, path, o);
      FAIL("export_onnx wrote to " << path);
    } catch (const Error& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find("cannot write '" + path + "'") != std::string::npos);
    }
  };
  fails_naming(dir.file("no_such_folder/model.onnx"));  // missing folder
  std::ofstream(dir.file("a_file")) << "x";
  fails_naming(dir.file("a_file/model.onnx"));  // a file where a folder should be (fails even as root)
  fs::create_directories(dir.file("a_folder"));
  fails_naming(dir.file("a_folder"));  // the target is a folder: the rename fails after the whole write
  CHECK(fs::is_directory(dir.file("a_folder")));
  CHECK(fs::is_empty(dir.file("a_folder")));
  CHECK(count_entries(dir.path) == 2);  // a_file and a_folder: no temporary or partial file left

  // A failed export over an existing model leaves it as it was.
  const std::string good = dir.file("model.onnx");
  io::export_onnx(*net, good, o);
  const auto size = fs::file_size(good);
  nn::Sequential<float> bad;
  bad.push_back(std::make_shared<Shuffle>());
  bad.eval();
  auto three = io::OnnxExportOptions().channels(3);
  CHECK_THROWS_AS(io::export_onnx(bad, good, three), Error);
  CHECK(fs::file_size(good) == size);
  CHECK(count_entries(dir.path) == 3);
}

// ---------------------------------------------------------------------------------------------------------

TEST_CASE("onnx: every export passes onnx.checker, and OpenCV gives our outputs", "[checker]") {
  WorkDir dir("checker");
  Manifest man(dir);
  std::string what;
  const int size = 64;
  Tensor<float> pics = photos(2, size, &what);
  Tensor<float> rnd = testing::random_tensor<float>({3, 3, size, size}, 99);

  for (const char* arch : {"resnet18", "resnet50"}) {
    auto net = test_resnet(arch, 2);
    for (bool fold : {false, true}) {
      auto o = io::OnnxExportOptions().height(size).width(size).fold_batchnorm(fold);
      man.add(std::string(arch) + (fold ? "_folded" : ""), *net, o, true, {{what, pics}, {"random", rnd}},
              fold ? folded_names(*net) : state_names(*net));
    }
  }
  // ResNet-34/101/152 (500 MB of files, ~20 s here) go through python3-onnx only when asked: libonnx's
  // checker passes them in-process in the [onnx] cases.
  const bool large = std::getenv("RESNET_ONNX_LARGE") != nullptr;
  for (const char* arch : {"resnet34", "resnet101", "resnet152"}) {
    if (!large) continue;
    auto net = test_resnet(arch, 2);
    auto o = io::OnnxExportOptions().height(size).width(size);
    man.add(arch, *net, o, false, {}, state_names(*net));
  }
  {  // a custom model from every layer type: conv with bias, lone BN, both pools, Linear, Softmax
    auto net_ptr = custom_model();
    auto& net = *net_ptr;
    Tensor<float> x = testing::random_tensor<float>({2, 3, 20, 20}, 5);
    for (bool fold : {false, true}) {
      auto o = io::OnnxExportOptions().height(20).width(20).fold_batchnorm(fold).metadata(
          {{"purpose", "custom model"}});
      man.add(fold ? "custom_folded" : "custom", net, o, true, {{"random", x}}, {}, false, false);
    }
  }
  const int rc = man.check();
  REQUIRE(rc != 77);
  CHECK(rc == 0);
}

TEST_CASE("onnx: resnet_export turns a train_catsdogs checkpoint into a model OpenCV runs", "[checker]") {
  WorkDir dir("export");
  auto net = test_resnet("resnet18", 2);
  io::TrainingState st;
  st.arch = "resnet18";
  st.epoch = 3;
  st.class_names = {"cat", "dog"};
  st.extra["size"] = "56";
  st.extra["eval-size"] = "48";
  st.extra["eval-crop"] = "0.875";
  const std::string ckpt = dir.file("epoch3.safetensors");
  io::save_checkpoint<float>(ckpt, *net, nullptr, st);
  const std::string out = dir.file("resnet_export.onnx");
  const std::string cmd = quote(RESNET_EXPORT_BIN) + " --weights " + quote(ckpt) + " --out " + quote(out) +
                          " --fold-bn --softmax";
  std::cout << "running: " << cmd << std::endl;
  REQUIRE(std::system(cmd.c_str()) == 0);

  std::string what;
  Tensor<float> x = photos(1, 48, &what);
  NoGradGuard ng;
  Tensor<float> p = softmax(net->forward(x));
  write_f32(dir.file("export.in"), x);
  write_f32(dir.file("export.out"), p);
  Manifest man(dir);
  man.add_raw("{\"name\":\"resnet_export\",\"onnx\":\"resnet_export.onnx\",\"opset\":" +
              std::to_string(io::kOnnxOpset) +
              ",\"opencv\":true,\"initializers\":" + io::json_string_array(folded_names(*net)) +
              ",\"metadata\":{\"arch\":\"resnet18\",\"class_names\":" +
              io::json_quote(io::json_string_array({"cat", "dog"})) +
              ",\"image_size\":\"48\",\"mean\":\"0.485,0.456,0.406\",\"std\":\"0.229,0.224,0.225\","
              "\"output\":\"probabilities\",\"batchnorm_folded\":\"true\",\"num_classes\":\"2\"},"
              "\"forbid_ops\":[\"BatchNormalization\"],\"require_ops\":[\"Softmax\"],\"runs\":[{\"label\":" +
              io::json_quote(what) + ",\"input\":\"export.in\",\"input_shape\":" + json_dims(x.shape()) +
              ",\"output\":\"export.out\",\"output_shape\":" + json_dims(p.shape()) + "}]}");
  const int rc = man.check();
  REQUIRE(rc != 77);
  CHECK(rc == 0);

  // Bad command lines: exit 2 with the flag named; a missing checkpoint exits 1.
  const std::string err = dir.file("err.txt");
  auto run = [&](const std::string& args) {
    int r = std::system((quote(RESNET_EXPORT_BIN) + " " + args + " 2>" + quote(err)).c_str());
    std::ifstream f(err);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return std::make_pair(WIFEXITED(r) ? WEXITSTATUS(r) : -1, text);
  };
  auto r = run("--weights " + quote(ckpt));
  CHECK(r.first == 2);
  CHECK(r.second.find("--out") != std::string::npos);
  r = run("--weights " + quote(dir.file("missing.safetensors")) + " --out " + quote(dir.file("x.onnx")));
  CHECK(r.first == 1);
  CHECK(r.second.find("missing.safetensors' does not exist") != std::string::npos);
  CHECK(!file_exists(dir.file("x.onnx")));
}

int main(int argc, char* argv[]) {
  // Only the [checker] cases need Python's onnx and cv2; without them they are skipped, not passed.
  bool checker = false;
  for (int i = 1; i < argc; ++i)
    checker = checker || std::string(argv[i]).find("[checker]") != std::string::npos;
  if (checker) {
    const std::string probe = quote(RESNET_PYTHON) + " -c 'import numpy, onnx, cv2' >/dev/null 2>&1";
    if (std::system(probe.c_str()) != 0) {
      std::cout << "SKIPPED: " << RESNET_PYTHON
                << " cannot import onnx and cv2 (apt-get install python3-onnx python3-opencv)\n";
      return 77;
    }
  }
  return run_catch_session(argc, argv);
}

#else  // built without libonnx-dev / libprotobuf-dev

int main() {
  std::cout << "SKIPPED: resnet was configured without the ONNX exporter (apt-get install libonnx-dev "
               "libprotobuf-dev, then re-run cmake)\n";
  return 77;
}

#endif
