// Fine-tuning and inference through the public API, as a user writes them: replacing a layer, freezing,
// non-strict checkpoint loading, optimizer hyper-parameters in checkpoints, BatchNorm folding and the
// Classifier, and the whole story end to end.
#include <resnet/resnet.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "catch.hpp"

using namespace resnet;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/resnet_finetune_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

models::ResNetOptions tiny(int64_t classes, uint64_t seed) {
  auto o = models::ResNetOptions().num_classes(classes).seed(seed);
  return o;
}

// Random running statistics, so folding and loading are really exercised (fresh BNs are the identity).
void randomise_bn(nn::Module<float>& net, uint64_t seed) {
  Generator gen(seed);
  for (auto& kv : net.named_buffers()) {
    if (kv.second.dtype() != DType::F32) continue;
    Tensor<float> t(kv.second);
    auto r = Tensor<float>::uniform(t.shape(), 0.0, 1.0, gen).to_vector();
    const bool var = kv.first.find("running_var") != std::string::npos;
    for (auto& v : r) v = var ? 0.5f + v : 0.4f * (v - 0.5f);
    copy_into(t, Tensor<float>::from_vector(r, t.shape()));
  }
  for (auto& kv : net.named_parameters())
    if (kv.second.rank() == 1 && kv.first.find("bn") != std::string::npos) {
      auto r = Tensor<float>::uniform(kv.second.shape(), 0.0, 1.0, gen).to_vector();
      for (auto& v : r) v = 0.5f + v;
      copy_into(kv.second, Tensor<float>::from_vector(r, kv.second.shape()));
    }
}

// The largest |a - b| / max(|b|, 1e-6) over two equal-length vectors; +inf on a non-finite value.
double max_relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, std::abs(double(a[i]) - b[i]) / std::max(std::abs(double(b[i])), 1e-6));
  }
  return worst;
}

std::vector<uint8_t> bytes(const TensorBase& t) {
  const TensorBase h = io::detail::host_contiguous(t);
  const uint8_t* p = static_cast<const uint8_t*>(h.raw_data());
  return std::vector<uint8_t>(p, p + h.nbytes());
}

void train_steps(models::ResNet<float>& net, optim::Optimizer<float>& opt, int steps, uint64_t seed) {
  net.train();
  Generator gen(seed);
  for (int s = 0; s < steps; ++s) {
    auto x = Tensor<float>::randn({4, 3, 32, 32}, gen);
    std::vector<int32_t> y;
    for (int i = 0; i < 4; ++i) y.push_back(static_cast<int32_t>((s + i) % net.num_classes()));
    opt.zero_grad();
    cross_entropy(net.forward(x), y).backward();
    opt.step();
  }
}

double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (!(d <= worst)) worst = d;  // NaN propagates
  }
  return worst / scale;
}

const TensorBase* find_state(const std::vector<std::pair<std::string, TensorBase>>& s, const std::string& n) {
  for (auto& kv : s)
    if (kv.first == n) return &kv.second;
  return nullptr;
}

}  // namespace

TEST_CASE("replacing fc: every path sees the new head", "[finetune]") {
  auto net = models::resnet18<float>(tiny(10, 3));
  net->eval();
  net->fc = std::make_shared<nn::Linear<float>>(512, 3);  // what a user writes
  CHECK(net->num_classes() == 3);
  CHECK_FALSE(net->fc->is_training());  // took the parent's mode
  net->train();
  CHECK(net->fc->is_training());

  auto x = Tensor<float>::randn({2, 3, 32, 32});
  CHECK(net->forward(x).shape() == Shape({2, 3}));
  auto params = net->named_parameters();
  REQUIRE(params.back().first == "fc.bias");
  CHECK(params.back().second.shape() == Shape({3}));
  CHECK(params[params.size() - 2].second.raw_data() == net->fc->weight.raw_data());
  auto sd = net->state_dict();
  REQUIRE(find_state(sd, "fc.weight") != nullptr);
  CHECK(find_state(sd, "fc.weight")->shape() == Shape({3, 512}));
  CHECK(models::summarize(*net, Shape{1, 3, 64, 64}).output == Shape({1, 3}));

  // The optimizer built afterwards trains the new head.
  optim::SGD<float> opt(net->named_parameters(), optim::SGDOptions().lr(0.1).momentum(0.9));
  auto before = net->fc->weight.to_vector();
  train_steps(*net, opt, 1, 5);
  CHECK(net->fc->weight.to_vector() != before);

  // The checkpoint holds the new head.
  TempDir dir;
  io::TrainingState st;
  st.arch = "resnet18";
  io::save_checkpoint(dir.file("a.safetensors"), *net, &opt, st);
  auto r = io::SafetensorsReader::open(dir.file("a.safetensors"));
  CHECK(r.at("fc.weight").shape == Shape({3, 512}));
  CHECK(bytes(r.read("fc.weight")) == bytes(net->fc->weight));

  // Dotted paths, Sequential slots, typed-member checks, the block view and parameter members.
  auto bn = std::make_shared<nn::BatchNorm2d<float>>(512);
  net->replace_module("layer4.1.bn2", bn);
  CHECK(net->blocks.back()->bn2.get() == bn.get());
  CHECK(find_state(net->state_dict(), "layer4.1.bn2.running_var")->raw_data() == bn->running_var.raw_data());
  CHECK_THROWS_WITH(net->replace_module("fc", std::make_shared<nn::ReLU<float>>()),
                    Catch::Contains("typed member holding a Linear"));
  CHECK_THROWS_WITH(net->replace_module("nope", std::make_shared<nn::ReLU<float>>()),
                    Catch::Contains("no child 'nope'"));
  auto block = std::make_shared<models::ResidualBlock<float>>(models::ResidualBlockOptions());
  net->layers[0]->replace_module("1", block);  // a Sequential slot: forward runs the new block
  CHECK(net->blocks[1].get() == block.get());
  CHECK(find_state(net->state_dict(), "layer1.1.conv1.weight")->raw_data() ==
        block->conv1->weight.raw_data());
  net->fc->weight = Tensor<float>::zeros({3, 512});  // a parameter member is its registry entry too
  net->fc->bias = Tensor<float>::zeros({3});
  net->eval();
  auto p = softmax(net->forward(x)).to_vector();
  for (float v : p) CHECK(v == Approx(1.0 / 3.0));
}

TEST_CASE("non-strict loading: what fits is loaded, the rest reported", "[finetune]") {
  TempDir dir;
  auto src = models::resnet18<float>(tiny(10, 1));
  randomise_bn(*src, 2);
  io::save_checkpoint<float>(dir.file("src.safetensors"), *src, nullptr, io::TrainingState());

  auto dst = models::resnet18<float>(tiny(3, 7));
  auto head = dst->fc->weight.to_vector();
  CHECK_THROWS_WITH(io::load_checkpoint<float>(dir.file("src.safetensors"), *dst, nullptr),
                    Catch::Contains("fc.weight") && Catch::Contains("shape"));
  CHECK(dst->fc->weight.to_vector() == head);  // a failed strict load changed nothing

  io::LoadReport rep =
      io::load_checkpoint<float>(dir.file("src.safetensors"), *dst, nullptr, io::LoadOptions::non_strict());
  CHECK_FALSE(rep.complete());
  REQUIRE(rep.skipped.size() == 2);
  CHECK(rep.skipped[0].first.rfind("fc.", 0) == 0);
  CHECK(rep.skipped[0].second.find("[10, 512]") != std::string::npos);
  CHECK(rep.uninitialised == std::vector<std::string>({"fc.weight", "fc.bias"}));
  CHECK(rep.loaded.size() == src->state_dict().size() - 2);
  CHECK(rep.summary().find("skipped fc.weight: shape [10, 512], the model's is [3, 512]") !=
        std::string::npos);
  auto a = src->state_dict(), b = dst->state_dict();
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].first.rfind("fc.", 0) == 0) continue;
    INFO(a[i].first);
    CHECK(bytes(a[i].second) == bytes(b[i].second));
  }
  CHECK(dst->fc->weight.to_vector() == head);  // left as initialised

  // A model with an extra tensor the file lacks: reported as uninitialised.
  dst->conv1->set_bias(Tensor<float>::zeros({64}));
  rep = io::load_checkpoint<float>(dir.file("src.safetensors"), *dst, nullptr, io::LoadOptions::non_strict());
  CHECK(rep.uninitialised.front() == "conv1.bias");
  // Strict stays the default, and a non-strict load takes no optimizer.
  optim::SGD<float> opt(dst->named_parameters(), optim::SGDOptions());
  CHECK_THROWS_WITH(
      io::load_checkpoint<float>(dir.file("src.safetensors"), *dst, &opt, io::LoadOptions::non_strict()),
      Catch::Contains("takes no optimizer"));
}

TEST_CASE("optimizer hyper-parameters are saved and restored exactly", "[finetune]") {
  TempDir dir;
  SECTION("SGD") {
    auto a = models::resnet18<float>(tiny(3, 4)), b = models::resnet18<float>(tiny(3, 5));
    auto so = optim::SGDOptions()
                  .lr(0.0123456789012345)
                  .momentum(0.87)
                  .weight_decay(3.3e-4)
                  .nesterov(true)
                  .decay_1d(false);
    optim::SGD<float> oa(a->named_parameters(), so);
    train_steps(*a, oa, 2, 11);
    oa.set_lr(0.00987654321);
    io::save_checkpoint(dir.file("s.safetensors"), *a, &oa, io::TrainingState());  // TrainingState::lr is 0
    optim::SGD<float> ob(b->named_parameters(), optim::SGDOptions().lr(0.5).momentum(0.1));  // other values
    io::load_checkpoint(dir.file("s.safetensors"), *b, &ob);
    CHECK(ob.lr() == 0.00987654321);
    CHECK(ob.options().momentum() == 0.87);
    CHECK(ob.options().weight_decay() == 3.3e-4);
    CHECK(ob.options().nesterov());
    CHECK_FALSE(ob.options().decay_1d());
    CHECK(ob.hyper_parameters() == oa.hyper_parameters());
    train_steps(*a, oa, 1, 12);
    train_steps(*b, ob, 1, 12);
    auto sa = a->state_dict(), sb = b->state_dict();
    for (size_t i = 0; i < sa.size(); ++i) CHECK(bytes(sa[i].second) == bytes(sb[i].second));
  }
  SECTION("AdamW") {
    auto a = models::resnet18<float>(tiny(3, 4)), b = models::resnet18<float>(tiny(3, 5));
    auto ao = optim::AdamWOptions().lr(3.21e-4).beta1(0.81).beta2(0.9876).eps(1e-7).weight_decay(0.042);
    optim::AdamW<float> oa(a->named_parameters(), ao);
    train_steps(*a, oa, 2, 21);
    io::save_checkpoint(dir.file("a.safetensors"), *a, &oa, io::TrainingState());
    optim::AdamW<float> ob(b->named_parameters(), optim::AdamWOptions());
    io::load_checkpoint(dir.file("a.safetensors"), *b, &ob);
    CHECK(ob.hyper_parameters() == oa.hyper_parameters());
    CHECK(ob.options().beta2() == 0.9876);
    train_steps(*a, oa, 1, 22);
    train_steps(*b, ob, 1, 22);
    auto sa = a->state_dict(), sb = b->state_dict();
    for (size_t i = 0; i < sa.size(); ++i) CHECK(bytes(sa[i].second) == bytes(sb[i].second));
  }
}

TEST_CASE("freezing: frozen parameters are skipped, frozen BatchNorm stays in eval", "[finetune]") {
  auto net = models::resnet18<float>(tiny(3, 8));
  randomise_bn(*net, 9);
  net->requires_grad_(false);
  net->fc->requires_grad_(true);
  for (auto& kv : net->named_modules())  // the backbone's BatchNorms keep their running statistics
    if (kv.first.rfind("fc", 0) != 0 && dynamic_cast<nn::BatchNorm2d<float>*>(kv.second.get()))
      kv.second->keep_eval();
  net->train();
  CHECK_FALSE(net->bn1->is_training());
  CHECK_FALSE(net->blocks[2]->bn2->is_training());
  CHECK(net->is_training());
  CHECK(net->fc->is_training());

  optim::SGD<float> opt(net->named_parameters(),
                        optim::SGDOptions().lr(0.5).momentum(0.9));  // prints one line
  CHECK(opt.parameters().size() == 2);
  CHECK(opt.skipped().size() == net->named_parameters().size() - 2);
  CHECK(opt.state().size() == 2);
  CHECK(optim::trainable(net->named_parameters()).size() == 2);
  auto before = net->state_dict();
  std::vector<std::vector<uint8_t>> snap;
  for (auto& kv : before) snap.push_back(bytes(kv.second));
  train_steps(*net, opt, 2, 3);
  auto after = net->state_dict();
  for (size_t i = 0; i < after.size(); ++i) {
    INFO(after[i].first);
    const bool head = after[i].first.rfind("fc.", 0) == 0;
    CHECK((bytes(after[i].second) != snap[i]) == head);  // only the head moved; BN statistics too stayed
  }
  net->requires_grad_(false);
  CHECK_THROWS_WITH(optim::SGD<float>(net->named_parameters(), optim::SGDOptions()),
                    Catch::Contains("are frozen"));
}

TEST_CASE("fuse_for_inference folds every BatchNorm: same outputs", "[finetune]") {
  for (const char* arch : {"resnet18", "resnet50"}) {
    INFO(arch);
    auto net = models::resnet<float>(arch, tiny(5, 13));
    randomise_bn(*net, 14);
    net->eval();
    auto x = Tensor<float>::randn({2, 3, 48, 48});
    auto want = net->forward(x).to_vector();
    const int folded = models::fuse_for_inference(*net);
    CHECK(folded == (std::string(arch) == "resnet18" ? 20 : 53));
    CHECK(net->conv1->bias.defined());
    CHECK(find_state(net->state_dict(), "layer1.0.conv1.bias") != nullptr);
    auto got = net->forward(x).to_vector();
    CHECK(max_rel(got, want) < 1e-5);
    CHECK(models::fuse_for_inference(*net) == 0);  // idempotent
    TempDir dir;
    CHECK_THROWS_WITH(
        io::save_checkpoint<float>(dir.file("f.safetensors"), *net, nullptr, io::TrainingState()),
        Catch::Contains("fused for inference"));
    auto plain = models::resnet<float>(arch, tiny(5, 15));  // a good file does not load into a fused model
    io::save_checkpoint<float>(dir.file("p.safetensors"), *plain, nullptr, io::TrainingState());
    CHECK_THROWS_WITH(io::load_checkpoint<float>(dir.file("p.safetensors"), *net, nullptr),
                      Catch::Contains("fused for inference"));
    net->train();
    CHECK_THROWS_WITH(net->forward(x), Catch::Contains("cannot train"));
  }
}

TEST_CASE("Classifier: files, images of any size and channel count, tensors", "[finetune][infer]") {
  TempDir dir;
  auto net = models::resnet18<float>(tiny(3, 21));
  randomise_bn(*net, 22);
  io::TrainingState st;
  st.arch = "resnet18";
  st.class_names = {"cat", "dog", "fox"};
  st.extra["eval-size"] = "40";
  st.extra["eval-crop"] = "0.875";
  io::save_checkpoint<float>(dir.file("m.safetensors"), *net, nullptr, st);

  auto co = infer::ClassifierOptions().batch_size(2);
  auto clf = infer::Classifier::open(dir.file("m.safetensors"), co);
  CHECK(clf.class_names() == st.class_names);
  CHECK(clf.transform().size() == 40);
  co.fuse(false);
  auto plain = infer::Classifier::open(dir.file("m.safetensors"), co);

  // A grey image, the same as RGB and as RGBA, and a different size.
  data::Image grey;
  grey.width = 37;
  grey.height = 53;
  grey.channels = 1;
  Generator gen(5);
  for (float v : Tensor<float>::uniform({37 * 53}, 0.0, 1.0, gen).to_vector())
    grey.pixels.push_back(static_cast<uint8_t>(v * 255));
  data::Image rgb = data::to_rgb(grey), rgba = rgb;
  rgba.channels = 4;
  rgba.pixels.clear();
  for (size_t i = 0; i < rgb.pixels.size(); i += 3)
    rgba.pixels.insert(rgba.pixels.end(), {rgb.pixels[i], rgb.pixels[i + 1], rgb.pixels[i + 2], 7});
  data::Image big = rgb;
  big.width = 80;
  big.height = 61;
  big.pixels.assign(80 * 61 * 3, 0);
  for (size_t i = 0; i < big.pixels.size(); ++i) big.pixels[i] = static_cast<uint8_t>(i * 7 % 251);

  auto preds = clf.classify(std::vector<data::Image>{grey, rgb, rgba, big, grey}, 3);  // 3 batches of 2
  REQUIRE(preds.size() == 5);
  for (auto& p : preds) {
    REQUIRE(p.top.size() == 3);
    CHECK(p.top[0].probability >= p.top[1].probability);
    CHECK(p.top[1].probability >= p.top[2].probability);
    CHECK(p.top[0].probability + p.top[1].probability + p.top[2].probability == Approx(1.0).epsilon(1e-5));
    CHECK(p.top[0].label == st.class_names[static_cast<size_t>(p.top[0].index)]);
  }
  for (int i : {1, 2, 4})
    CHECK(preds[static_cast<size_t>(i)].top[0].probability == preds[0].top[0].probability);

  // The unfused model and the plain forward agree with the fused Classifier.
  auto ref = plain.classify(big, 3);
  CHECK(ref.top[0].index == preds[3].top[0].index);
  CHECK(ref.top[0].probability == Approx(preds[3].top[0].probability).epsilon(1e-5));
  Tensor<float> x = Tensor<float>::empty({1, 3, 40, 40});
  clf.preprocess(big, x.data());
  net->eval();
  auto logits = softmax(net->forward(x)).to_vector();
  CHECK(logits[static_cast<size_t>(ref.top[0].index)] == Approx(ref.top[0].probability).epsilon(1e-5));
  auto from_tensor = clf.classify(x, 1);
  CHECK(from_tensor[0].top[0].index == ref.top[0].index);
  Tensor<float> three = Tensor<float>::empty({3, 3, 40, 40});
  for (int i = 0; i < 3; ++i) clf.preprocess(i == 1 ? grey : big, three.data() + i * 3 * 40 * 40);
  auto batched = clf.classify(three, 1);  // batches of 2 and 1
  REQUIRE(batched.size() == 3);
  CHECK(batched[0].top[0].probability == Approx(preds[3].top[0].probability).epsilon(1e-5));
  CHECK(batched[1].top[0].probability == Approx(preds[0].top[0].probability).epsilon(1e-5));
  CHECK(batched[2].top[0].index == batched[0].top[0].index);

  // Files: a missing one and a folder are reported and skipped, the rest classified.
  auto results = clf.classify_files({dir.file("missing.png"), dir.path.string()}, 1);
  CHECK_FALSE(results[0].ok);
  CHECK(results[0].error.find("does not exist") != std::string::npos);
  CHECK_FALSE(results[1].ok);
  CHECK(results[1].error.find("is a folder") != std::string::npos);
}

// A Classifier over a model of one's own (any nn::Module with [N, classes] outputs) leaves that model as it
// was: the same bytes, not folded, not moved, its training mode back; logits and probabilities agree with
// the model's own forward in eval mode.
TEST_CASE("Classifier over a model in memory: any module, never changed, logits and probabilities",
          "[finetune][infer]") {
  auto model = std::make_shared<nn::Sequential<float>>(
      std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(3, 4, 3).padding(1)),
      std::make_shared<nn::BatchNorm2d<float>>(4), std::make_shared<nn::ReLU<float>>(),
      std::make_shared<nn::GlobalAvgPool2d<float>>(), std::make_shared<nn::Linear<float>>(4, 3));
  randomise_bn(*model, 9);
  model->train();
  std::vector<std::vector<uint8_t>> before;
  for (auto& kv : model->state_dict()) before.push_back(bytes(kv.second));
  auto co = infer::ClassifierOptions().batch_size(2);
  infer::Classifier clf(model, {"a", "b", "c"}, data::eval_transform(16, 1.0), co);
  Generator g(3);
  auto x = Tensor<float>::randn({5, 3, 16, 16}, g);
  const Tensor<float> logits = clf.logits(x);  // batches of 2, 2 and 1
  const Tensor<float> prob = clf.probabilities(x);
  REQUIRE(logits.shape() == Shape({5, 3}));
  REQUIRE(prob.shape() == Shape({5, 3}));
  CHECK(model->is_training());  // the mode is put back
  auto sd = model->state_dict();
  for (size_t i = 0; i < sd.size(); ++i) {
    INFO(sd[i].first);
    CHECK(bytes(sd[i].second) == before[i]);  // eval mode: running statistics untouched, nothing folded
  }
  model->eval();
  std::vector<float> want;
  {
    NoGradGuard ng;
    want = model->forward(x).to_vector();
  }
  model->train();
  CHECK(max_relative_error(logits.to_vector(), want) < 1e-6);
  const auto p = prob.to_vector();
  for (int64_t i = 0; i < 5; ++i) {
    double sum = 0;
    for (int64_t c = 0; c < 3; ++c) sum += p[static_cast<size_t>(i * 3 + c)];
    CHECK(sum == Approx(1.0).epsilon(1e-6));
  }
  const auto top = clf.classify(x, 3);
  REQUIRE(top.size() == 5);
  CHECK(top[4].top[0].probability == Approx(std::max({p[12], p[13], p[14]})).epsilon(1e-6));
  // A model whose outputs do not match the class names is refused by name, not misread.
  infer::Classifier wrong(model, {"a", "b"}, data::eval_transform(16, 1.0), co);
  CHECK_THROWS_WITH(wrong.logits(x),
                    Catch::Contains("expected [2, 2]") && Catch::Contains("one logit per class"));
  CHECK(model->is_training());
}

// A checkpoint without an evaluation size takes its training size; with neither, 224 px and a notice.
// BasicClassifier<bf16_t> opens the same file and agrees with the float one to bfloat16 rounding.
TEST_CASE("Classifier: the eval size comes from the checkpoint, and any float type opens it",
          "[finetune][infer]") {
  TempDir dir;
  auto net = models::resnet18<float>(tiny(2, 41));
  randomise_bn(*net, 42);
  io::TrainingState st;
  st.arch = "resnet18";
  st.class_names = {"x", "y"};
  st.extra["size"] = "48";
  io::save(*net, dir.file("sized.safetensors"), st);
  std::vector<std::string> notes;
  NoticeHandler previous = set_notice_handler([&](const std::string& l) { notes.push_back(l); });
  auto sized = infer::Classifier::open(dir.file("sized.safetensors"));
  CHECK(sized.transform().size() == 48);
  CHECK(notes.empty());
  st.extra.clear();
  io::save(*net, dir.file("bare.safetensors"), st);
  auto bare = infer::Classifier::open(dir.file("bare.safetensors"));
  CHECK(bare.transform().size() == 224);
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].find("224 px") != std::string::npos);
  set_notice_handler(previous);

  // bfloat16 activations (float32 weights, so the float file loads as it is), folded as the float one.
  auto in_bf16 = infer::BasicClassifier<bf16_t>::open(dir.file("sized.safetensors"));
  Generator g(8);
  auto x = Tensor<float>::randn({2, 3, 48, 48}, g);
  const auto pb = in_bf16.probabilities(x).to_vector(), pf = sized.probabilities(x).to_vector();
  REQUIRE(pb.size() == pf.size());
  for (size_t i = 0; i < pb.size(); ++i) CHECK(std::abs(pb[i] - pf[i]) < 0.05);  // bfloat16's rounding
}

// nn::freeze and nn::freeze_all_but: frozen parameters stop requiring grad, the optimizer skips them, their
// BatchNorms keep eval mode through train(), the rest trains; bad paths change nothing.
TEST_CASE("freeze: named sub-modules, or everything but the head", "[finetune]") {
  auto net = models::resnet18<float>(tiny(3, 51));
  nn::freeze(*net, {"conv1", "bn1", "layer1"});
  for (auto& kv : net->named_parameters()) {
    INFO(kv.first);
    const bool frozen = kv.first.rfind("conv1.", 0) == 0 || kv.first.rfind("bn1.", 0) == 0 ||
                        kv.first.rfind("layer1.", 0) == 0;
    CHECK(kv.second.requires_grad() == !frozen);
  }
  net->train();
  CHECK_FALSE(net->bn1->is_training());
  CHECK_FALSE(net->find_module("layer1.0.bn2")->is_training());
  CHECK(net->find_module("layer2.0.bn1")->is_training());

  auto other = models::resnet18<float>(tiny(3, 52));
  CHECK_THROWS_WITH(nn::freeze(*other, {"layer1", "layer9"}), Catch::Contains("no sub-module 'layer9'"));
  for (auto& kv : other->named_parameters()) CHECK(kv.second.requires_grad());  // nothing changed
  CHECK_THROWS_WITH(nn::freeze_all_but(*other, {}), Catch::Contains("nothing would train"));
  CHECK_THROWS_WITH(nn::freeze_all_but(*other, {"head"}), Catch::Contains("no child 'head'"));
  nn::freeze_all_but(*other, {"fc"});
  std::vector<std::string> notes;
  NoticeHandler previous = set_notice_handler([&](const std::string& l) { notes.push_back(l); });
  optim::SGD<float> opt(other->named_parameters(), optim::SGDOptions().lr(0.1).momentum(0.9));
  set_notice_handler(previous);
  REQUIRE(opt.parameters().size() == 2);  // fc.weight, fc.bias
  CHECK(opt.parameters()[0].first == "fc.weight");
  CHECK(opt.skipped().size() == other->named_parameters().size() - 2);
  REQUIRE(notes.size() == 1);
}

TEST_CASE("the fine-tuning story end to end", "[finetune][infer]") {
  TempDir dir;
  // A 1000-class checkpoint (what tools/torchvision_to_safetensors.py makes of ImageNet weights).
  {
    auto imagenet = models::resnet18<float>(tiny(1000, 31));
    randomise_bn(*imagenet, 32);
    io::TrainingState st;
    st.arch = "resnet18";
    io::save_checkpoint<float>(dir.file("imagenet.safetensors"), *imagenet, nullptr, st);
  }
  auto net = models::resnet18<float>(tiny(1000, 33));
  io::LoadReport rep = io::load_checkpoint<float>(dir.file("imagenet.safetensors"), *net, nullptr,
                                                  io::LoadOptions::non_strict());
  CHECK(rep.complete());
  net->fc = std::make_shared<nn::Linear<float>>(512, 3);
  net->requires_grad_(false);
  net->fc->requires_grad_(true);
  optim::SGD<float> opt(net->named_parameters(), optim::SGDOptions().lr(0.05).momentum(0.9));
  std::vector<std::vector<uint8_t>> snap;
  for (auto& kv : net->state_dict()) snap.push_back(bytes(kv.second));
  train_steps(*net, opt, 3, 40);
  auto sd = net->state_dict();
  for (size_t i = 0; i < sd.size(); ++i) {
    const std::string& n = sd[i].first;
    if (n.find("running_") != std::string::npos || n.find("num_batches") != std::string::npos) continue;
    INFO(n);
    CHECK((bytes(sd[i].second) != snap[i]) == (n.rfind("fc.", 0) == 0));
  }
  io::TrainingState st;
  st.arch = "resnet18";
  st.class_names = {"ant", "bee", "wasp"};
  st.extra["eval-size"] = "32";
  io::save_checkpoint(dir.file("fine.safetensors"), *net, &opt, st);

  auto clf = infer::Classifier::open(dir.file("fine.safetensors"));
  data::Image img;
  img.width = img.height = 45;
  img.pixels.assign(45 * 45 * 3, 0);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>(i * 13 % 256);
  auto p = clf.classify(img, 2);
  REQUIRE(p.top.size() == 2);
  Tensor<float> x = Tensor<float>::empty({1, 3, 32, 32});
  clf.preprocess(img, x.data());
  net->eval();
  auto want = softmax(net->forward(x)).to_vector();
  const auto best = static_cast<size_t>(std::max_element(want.begin(), want.end()) - want.begin());
  CHECK(p.top[0].label == st.class_names[best]);
  CHECK(p.top[0].probability == Approx(want[best]).epsilon(1e-5));
}
