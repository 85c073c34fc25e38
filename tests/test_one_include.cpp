// resnet/resnet.hpp is the one include users need: this program reaches every public header's main entry
// point through it alone (it includes nothing else from the library), and runs each once on tiny inputs.
#include <resnet/resnet.hpp>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "catch.hpp"

using namespace resnet;
namespace fs = std::filesystem;

TEST_CASE("one include declares the whole public API", "[api]") {
  char tmpl[] = "/tmp/resnet_one_include_XXXXXX";
  const fs::path dir = mkdtemp(tmpl);

  // core, autograd, ops
  set_num_threads(get_num_threads());
  Generator gen(1);
  auto x = Tensor<float>::randn({2, 3, 32, 32}, gen);
  auto w = Tensor<float>::randn({4, 3, 3, 3}, gen).requires_grad_();
  {
    NoGradGuard guard;
    CHECK_FALSE(conv2d(x, w, ConvParams{1, 1, 1, 1}).requires_grad());
  }
  sum(relu(conv2d(x, w, ConvParams{1, 1, 1, 1}))).backward();
  CHECK(w.grad().defined());
  CHECK_THROWS_AS(reshape(x, Shape{5}), Error);

  // cuda::is_available() and device_count() in every build: false and 0 without the CUDA backend, with a
  // reason either way when there is no device.
  CHECK(cuda::is_available() == (cuda::device_count() > 0));
  if (!RESNET_WITH_CUDA) CHECK(cuda::device_count() == 0);
  if (!cuda::is_available()) CHECK_FALSE(cuda::unavailable_reason().empty());

  // nn, models (+ summary, fuse)
  nn::Sequential<float> seq;
  seq.push_back(std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(3, 4, 3).padding(1)));
  seq.push_back(std::make_shared<nn::BatchNorm2d<float>>(4));
  seq.push_back(std::make_shared<nn::ReLU<float>>());
  seq.push_back(std::make_shared<nn::GlobalAvgPool2d<float>>());
  seq.push_back(std::make_shared<nn::Linear<float>>(4, 2));
  CHECK(seq.forward(x).shape() == Shape({2, 2}));
  auto mo = models::ResNetOptions().num_classes(2).seed(3);
  CHECK(dist::init()->size() == 1);  // dist::init comes with the one include: a single process here
  auto net = models::resnet18<float>(mo);
  CHECK(models::format_summary(models::summarize(*net, Shape{1, 3, 32, 32})).find("total parameters") !=
        std::string::npos);

  // optim
  optim::SGD<float> sgd(net->named_parameters(), optim::SGDOptions().lr(0.1).momentum(0.9));
  optim::AdamW<float> adam(optim::trainable(net->named_parameters()), optim::AdamWOptions());
  auto so = optim::ScheduleOptions().kind(optim::ScheduleKind::Cosine).total_steps(10);
  CHECK(optim::make_schedule(so)->lr(0) > 0);
  nn::CrossEntropyLoss<float> criterion;
  sgd.zero_grad();
  criterion(net->forward(x), std::vector<int32_t>{0, 1}).backward();
  sgd.step();

  // io
  io::TrainingState st;
  st.arch = "resnet18";
  st.class_names = {"a", "b"};
  st.extra["eval-size"] = "32";
  const std::string ckpt = (dir / "m.safetensors").string();
  io::save_checkpoint(ckpt, *net, &sgd, st);
  CHECK(io::SafetensorsReader::open(ckpt).find("fc.weight") != nullptr);
  CHECK(io::load_checkpoint<float>(ckpt, *net, nullptr, io::LoadOptions::non_strict()).complete());
  {
    io::AtomicFile f((dir / "note.txt").string());
    f.write(std::string("ok"));
    f.commit();
  }

  // data
  data::TransformOptions t = data::eval_transform(32, 0.875);
  data::Image img;
  img.width = img.height = 8;
  img.channels = 1;
  img.pixels.assign(64, 100);
  std::vector<float> chw(3 * 32 * 32);
  data::SampleRng rng(0);
  data::apply_transform(data::to_rgb(img), t, rng, chw.data());
  CHECK(std::string(data::sniff_image_format(img.pixels.data(), img.pixels.size())).empty());
  fs::create_directories(dir / "set" / "a");
  fs::create_directories(dir / "set" / "b");
  CHECK_THROWS_AS(data::ImageFolder((dir / "set").string()), Error);  // classes without images
  data::LoaderOptions lo;
  CHECK(lo.batch_size() > 0);

  // infer
  auto clf = infer::Classifier::open(ckpt);
  CHECK(clf.classify(img, 2).top.size() == 2);

  // tools
  tools::ProgressLine progress(30.0, false);
  progress.clear();
  CHECK(tools::metrics_csv({}).find("epoch") == 0);

  // train (the training loop) and dist (the world of one)
  auto one = dist::single_process_group();
  CHECK(one->size() == 1);
  train::TrainerOptions topts;
  topts.batch(4);
  topts.out_dir((dir / "run").string());
  CHECK(train::global_batches(10, topts.batch(), one->size(), true) == 2);

  fs::remove_all(dir);
}
