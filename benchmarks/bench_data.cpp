// bench_data: does the data pipeline keep up with training? Measures, in one run and on the same images:
//   1. the loader alone (decode + augment + batch), images/s for each number of worker threads;
//   2. the training step alone (forward, loss, backward, SGD) on a batch already in memory, images/s;
//   3. the training step fed by the loader, images/s and the share of time spent waiting for data;
// and prints the ratio loader / training step. Uses the cats-and-dogs training split (--data, $RESNET_DATA,
// ./data/catsdogs or ../shared/data/catsdogs); without it, synthetic 200x200 JPEGs in a temporary folder.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <stb/stb_image_write.h>
#include <unistd.h>

#include "resnet/data/data.hpp"
#include "resnet/resnet.hpp"
#include "resnet/train/recipe_fields.hpp"
#include "flags.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using resnet::Tensor;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Synthetic stand-in for the dataset: smooth colour fields with noise, JPEG-compressed like the photos.
std::string make_synthetic(const std::string& root, int per_class) {
  resnet::Generator gen(5);
  std::vector<unsigned char> px(200 * 200 * 3);
  for (const char* cls : {"cat", "dog"}) {
    fs::create_directories(fs::path(root) / "train" / cls);
    for (int i = 0; i < per_class; ++i) {
      const double a = gen.uniform(0, 255), b = gen.uniform(0, 255);
      for (int y = 0; y < 200; ++y)
        for (int x = 0; x < 200; ++x)
          for (int c = 0; c < 3; ++c) {
            double v = (c == 0 ? a : b) * (x + y) / 400.0 + gen.normal(0, 20) + 40 * c;
            px[(static_cast<size_t>(y) * 200 + x) * 3 + c] = static_cast<unsigned char>(v < 0     ? 0
                                                                                        : v > 255 ? 255
                                                                                                  : v);
          }
      std::string path =
          (fs::path(root) / "train" / cls / (std::string(cls) + "." + std::to_string(i) + ".jpg")).string();
      RESNET_CHECK(stbi_write_jpg(path.c_str(), 200, 200, 3, px.data(), 90) != 0, "cannot write ", path);
    }
  }
  return root;
}

}  // namespace

int main(int argc, char** argv) {
  std::string tmp, data, arch = "resnet18", aug = "rrc", workers = "0,1,2";
  int64_t size = 96, batch = 64, n_batches = 30, steps = 5;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  CLI::App app("Loader throughput against training-step throughput on the cats-and-dogs training split.",
               "bench_data");
  flags::setup(app);
  app.add_option("--data", data, "dataset folder with train/, or synthetic")
      ->option_text("DIR")
      ->default_str("$RESNET_DATA, ./data/catsdogs, ../shared/data/catsdogs, else synthetic");
  app.add_option("--arch", arch, "network of the training step")
      ->option_text("NAME")
      ->check(flags::one_of(resnet::train::recipe_archs()))
      ->capture_default_str();
  app.add_option("--size", size, "crop size")
      ->option_text("S")
      ->check(flags::int_in(16, 1024))
      ->capture_default_str();
  app.add_option("--batch", batch, "batch size")
      ->option_text("N")
      ->check(flags::int_in(1, 4096))
      ->capture_default_str();
  app.add_option("--aug", aug, "augmentation")
      ->option_text("rrc|crop|none")
      ->check(flags::one_of({"rrc", "crop", "none"}))
      ->capture_default_str();
  app.add_option("--workers", workers, "loader thread counts to measure (0: in the calling thread)")
      ->option_text("LIST")
      ->check(flags::list_of(flags::int_in(0, 64)))
      ->capture_default_str();
  app.add_option("--batches", n_batches, "batches per loader measurement")
      ->option_text("N")
      ->check(flags::int_in(1, 100000))
      ->capture_default_str();
  app.add_option("--steps", steps, "training steps per training measurement (after one warm-up step)")
      ->option_text("N")
      ->check(flags::int_in(1, 100000))
      ->capture_default_str();
  app.add_option("--threads", threads, "compute threads")
      ->option_text("N")
      ->check(flags::int_in(1, 1024))
      ->default_str("all cores");
  const int parsed = flags::parse(app, argc, argv);
  if (parsed >= 0) return parsed;
  try {
    resnet::set_num_threads(threads);
    std::vector<int> worker_list;
    for (const auto& w : flags::split_list(workers)) worker_list.push_back(std::stoi(w));

    std::error_code ec;
    if (data.empty() && std::getenv("RESNET_DATA") && *std::getenv("RESNET_DATA"))
      data = std::getenv("RESNET_DATA");
    if (data.empty())
      for (const char* c : {"./data/catsdogs", "../shared/data/catsdogs"})
        if (fs::is_directory(c, ec)) {
          data = c;
          break;
        }
    if (data.empty() || data == "synthetic") {
      tmp = (fs::temp_directory_path() / ("bench_data_" + std::to_string(::getpid()))).string();
      int per_class = static_cast<int>(std::min<int64_t>(512, (n_batches * batch + 1) / 2 + batch));
      data = make_synthetic(tmp, per_class);
      std::printf("bench_data: no dataset found; %d synthetic 200x200 JPEGs per class in %s\n", per_class,
                  tmp.c_str());
    }
    auto t = resnet::data::TransformOptions()
                 .size(static_cast<int>(size))
                 .augment(resnet::data::parse_augment(aug));
    auto ds = std::make_shared<resnet::data::ImageFolderDataset>(
        resnet::data::ImageFolder((fs::path(data) / "train").string()), t);
    std::printf("bench_data: %s/train (%lld images), %s, %lld px, batch %lld, aug %s, %d compute threads\n",
                data.c_str(), static_cast<long long>(ds->size()), arch.c_str(), static_cast<long long>(size),
                static_cast<long long>(batch), aug.c_str(), threads);

    // 1. The loader alone.
    auto make_loader = [&](int workers) {
      auto o =
          resnet::data::LoaderOptions().batch_size(batch).workers(workers).shuffle(true).seed(1).drop_last(
              true);
      return std::make_unique<resnet::data::DataLoader>(ds, o);
    };
    double best_loader = 0;
    int best_workers = worker_list.empty() ? 1 : worker_list[0];
    for (int w : worker_list) {
      auto loader = make_loader(w);
      loader->start_epoch(0);
      resnet::data::Batch b;
      int64_t images = 0, got = 0, epoch = 0;
      auto t0 = Clock::now();
      while (got < n_batches) {
        if (!loader->next(b)) {
          loader->start_epoch(++epoch);  // a short dataset: go round again
          continue;
        }
        images += b.size();
        ++got;
      }
      double rate = static_cast<double>(images) / seconds_since(t0);
      std::printf("loader, %d worker%s %*s %10.1f images/s\n", w, w == 1 ? " " : "s", 14, "", rate);
      if (rate > best_loader) best_loader = rate, best_workers = w;
    }

    // 2. The training step alone, on a batch already in memory.
    auto mo = resnet::models::ResNetOptions().num_classes(2).seed(3);
    auto model = resnet::models::resnet<float>(arch, mo);
    model->train();
    auto so = resnet::optim::SGDOptions().lr(0.01).momentum(0.9);
    resnet::optim::SGD<float> opt(model->named_parameters(), so);
    auto step = [&](const Tensor<float>& x, const std::vector<int32_t>& y) {
      Tensor<float> loss = resnet::cross_entropy(model->forward(x), y, 0.1);
      opt.zero_grad();
      loss.backward();
      opt.step();
    };
    resnet::Generator g(1);
    Tensor<float> x = Tensor<float>::randn({batch, 3, size, size}, g);
    std::vector<int32_t> y(static_cast<size_t>(batch));
    for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<int32_t>(i % 2);
    step(x, y);  // warm-up: allocations, caches
    auto t0 = Clock::now();
    for (int64_t i = 0; i < steps; ++i) step(x, y);
    const double train_rate = static_cast<double>(steps * batch) / seconds_since(t0);
    std::printf("training step, batch in memory          %10.1f images/s\n", train_rate);

    // 3. The training step fed by the loader (the loader threads share the cores with the step).
    const int feed_workers = std::max(1, best_workers);
    auto loader = make_loader(feed_workers);
    loader->start_epoch(1);
    resnet::data::Batch b;
    RESNET_CHECK(loader->next(b), "the dataset holds less than one batch");
    step(b.images, b.labels);
    double waiting = 0;
    int64_t images = 0;
    t0 = Clock::now();
    for (int64_t i = 0; i < steps; ++i) {
      auto w0 = Clock::now();
      if (!loader->next(b)) {
        loader->start_epoch(2 + i);
        RESNET_CHECK(loader->next(b), "empty epoch");
      }
      waiting += seconds_since(w0);
      step(b.images, b.labels);
      images += b.size();
    }
    const double total = seconds_since(t0);
    std::printf(
        "training step fed by %d loader worker%s  %10.1f images/s, waiting for data %.1f%% of the time\n",
        feed_workers, feed_workers == 1 ? " " : "s", static_cast<double>(images) / total,
        100.0 * waiting / total);
    std::printf("loader (best, %d worker%s) / training step: %.1fx\n", best_workers,
                best_workers == 1 ? "" : "s", best_loader / train_rate);
    if (!tmp.empty()) fs::remove_all(tmp, ec);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_data: error: %s\n", e.what());
    if (!tmp.empty()) {
      std::error_code ec;
      fs::remove_all(tmp, ec);
    }
    return 1;
  }
}
