// The data pipeline: ImageFolder scanning, the resampler, the transforms and the threaded loader.
// Fixtures are tiny PNG images written to a temporary folder with stb_image_write (in Debian's libstb).
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>

#include <stb/stb_image_write.h>
#include <unistd.h>

#include "test_util.hpp"
#include "resnet/data/data.hpp"

namespace fs = std::filesystem;
using namespace resnet::data;
using resnet::Shape;
using testing::require_error_mentions;

namespace {

// A fresh, empty temporary directory removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("resnet_test_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Writes a w x h PNG (or JPEG when the name ends in .jpg/.jpeg) whose pixel (x, y) channel c is f(x, y, c).
template <typename F>
void write_image(const fs::path& file, int w, int h, F f) {
  fs::create_directories(file.parent_path());
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        px[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<uint8_t>(f(x, y, c));
  std::string ext = file.extension().string();
  int ok = (ext == ".jpg" || ext == ".jpeg") ? stbi_write_jpg(file.c_str(), w, h, 3, px.data(), 95)
                                             : stbi_write_png(file.c_str(), w, h, 3, px.data(), w * 3);
  REQUIRE(ok != 0);
}
void write_bytes(const fs::path& file, const std::string& bytes) {
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << bytes;
}

Image make_image(int w, int h, const std::function<int(int, int, int)>& f) {
  Image img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        img.pixels[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<uint8_t>(f(x, y, c));
  return img;
}

// A dataset whose sample i is filled with the value i + 0.25 * r (r drawn from the sample's rng), so tests
// can read back which sample landed where and which random stream it used. Chosen indices throw.
class FakeDataset : public Dataset {
 public:
  FakeDataset(int64_t n, std::set<int64_t> unreadable = {}, int64_t crash_at = -1)
      : n_(n), unreadable_(std::move(unreadable)), crash_at_(crash_at) {}
  int64_t size() const override { return n_; }
  Shape sample_shape() const override { return Shape{1, 2, 2}; }
  int32_t label(int64_t i) const override { return static_cast<int32_t>(i % 3); }
  std::string name(int64_t i) const override { return "sample" + std::to_string(i) + ".jpg"; }
  void load(int64_t i, SampleRng& rng, float* out) const override {
    if (i == crash_at_) throw std::logic_error("worker bug at sample " + std::to_string(i));
    if (unreadable_.count(i)) RESNET_FAIL("cannot decode image 'sample", i, ".jpg': corrupt JPEG");
    float r = static_cast<float>(rng.below(4));
    for (int k = 0; k < 4; ++k) out[k] = static_cast<float>(i) + 0.25f * r;
  }

 private:
  int64_t n_;
  std::set<int64_t> unreadable_;
  int64_t crash_at_;
};

// Every batch of one epoch, flattened: (sample value, label) pairs in delivery order.
std::vector<std::pair<float, int32_t>> run_epoch(DataLoader& loader, int64_t epoch, int64_t first_batch = 0) {
  loader.start_epoch(epoch, first_batch);
  std::vector<std::pair<float, int32_t>> out;
  Batch b;
  int64_t expect_index = first_batch;
  while (loader.next(b)) {
    CHECK(b.index >= expect_index);
    expect_index = b.index + 1;
    REQUIRE(b.images.dim(0) == b.size());
    for (int64_t s = 0; s < b.size(); ++s) {
      const float* p = b.images.data() + s * 4;
      for (int k = 1; k < 4; ++k) REQUIRE(p[k] == p[0]);
      out.emplace_back(p[0], b.labels[static_cast<size_t>(s)]);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("sample rng: deterministic streams, bounded draws and epoch permutations") {
  SampleRng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    uint64_t x = a.next_u64();
    REQUIRE(x == b.next_u64());
    differs = differs || x != c.next_u64();
  }
  CHECK(differs);
  SampleRng r(7);
  std::vector<int> hist(5, 0);
  for (int i = 0; i < 5000; ++i) {
    double u = r.uniform();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    uint64_t k = r.below(5);
    REQUIRE(k < 5);
    ++hist[k];
  }
  for (int h : hist) CHECK(h > 800);  // each of 5 values near 1000 times

  auto p0 = epoch_permutation(1000, 1, 0), p0b = epoch_permutation(1000, 1, 0);
  auto p1 = epoch_permutation(1000, 1, 1), q0 = epoch_permutation(1000, 2, 0);
  CHECK(p0 == p0b);
  CHECK(p0 != p1);
  CHECK(p0 != q0);
  std::vector<int64_t> sorted = p1;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) REQUIRE(sorted[static_cast<size_t>(i)] == i);
  CHECK(sample_seed(1, 0, 5) != sample_seed(1, 1, 5));
  CHECK(sample_seed(1, 0, 5) != sample_seed(1, 0, 6));
}

TEST_CASE("ImageFolder: sorted classes and files, ignored entries, per-class limit") {
  TempDir tmp;
  auto px = [](int, int, int) { return 128; };
  for (const char* f : {"dog/b.png", "dog/a.PNG", "dog/c.jpg", "cat/z.jpeg", "cat/y.png"})
    write_image(tmp.path / f, 2, 2, px);
  write_bytes(tmp.path / "cat/notes.txt", "not an image");
  write_bytes(tmp.path / "cat/.hidden.jpg", "hidden");
  fs::create_directories(tmp.path / ".cache/x");
  write_bytes(tmp.path / "README.md", "top-level files are not classes");

  ImageFolder all(tmp.path.string());
  REQUIRE(all.classes() == std::vector<std::string>{"cat", "dog"});
  REQUIRE(all.size() == 5);
  std::vector<std::string> names;
  for (auto& f : all.files())
    names.push_back(fs::path(f.path).parent_path().filename().string() + "/" +
                    fs::path(f.path).filename().string() + ":" + std::to_string(f.label));
  CHECK(names ==
        std::vector<std::string>{"cat/y.png:0", "cat/z.jpeg:0", "dog/a.PNG:1", "dog/b.png:1", "dog/c.jpg:1"});
  CHECK(all.class_counts() == std::vector<int64_t>{2, 3});

  ImageFolderOptions o;
  o.limit(3);  // 2 from the first class, 1 from the second
  ImageFolder three(tmp.path.string(), o);
  CHECK(three.class_counts() == std::vector<int64_t>{2, 1});
  CHECK(fs::path(three.files()[2].path).filename() == "a.PNG");
  o.limit(6);  // more than the first class has: it keeps all it has
  CHECK(ImageFolder(tmp.path.string(), o).class_counts() == std::vector<int64_t>{2, 3});
  o.limit(1);
  require_error_mentions([&] { ImageFolder f(tmp.path.string(), o); }, {"limit 1", "2 classes"});
}

TEST_CASE("ImageFolder: missing, empty and class-less folders are clear errors") {
  TempDir tmp;
  std::string missing = (tmp.path / "nope").string();
  require_error_mentions([&] { ImageFolder f(missing); }, {missing, "does not exist"});
  require_error_mentions([&] { ImageFolder f(tmp.path.string()); },
                         {tmp.path.string(), "no class sub-folders"});
  fs::create_directories(tmp.path / "cat");
  write_image(tmp.path / "dog/1.png", 2, 2, [](int, int, int) { return 0; });
  write_bytes(tmp.path / "cat/readme.txt", "x");
  require_error_mentions([&] { ImageFolder f(tmp.path.string()); },
                         {(tmp.path / "cat").string(), "holds no images"});
  write_image(tmp.path / "file.png", 2, 2, [](int, int, int) { return 0; });
  require_error_mentions([&] { ImageFolder f((tmp.path / "file.png").string()); }, {"not a directory"});
}

// A folder of one class would train a classifier to a loss of 0: the library refuses it, naming the folder
// and the count, whichever way it is reached (ImageFolder, then ImageFolderDataset and a Trainer over it).
TEST_CASE("ImageFolder: one class is refused by name") {
  TempDir tmp;
  for (const char* f : {"cat/1.png", "cat/2.png"})
    write_image(tmp.path / f, 2, 2, [](int, int, int) { return 9; });
  const std::string root = tmp.path.string();
  require_error_mentions(
      [&] { ImageFolder f(root); },
      {"image folder '" + root + "' has 1 class sub-folder ('cat')", "at least two classes"});
  fs::create_directories(tmp.path / "dog");
  write_image(tmp.path / "dog/1.png", 2, 2, [](int, int, int) { return 9; });
  CHECK(ImageFolder(root).classes().size() == 2);  // a second class is enough
}

TEST_CASE("crop_resize: identity, constant, linear ramps and antialiasing") {
  Image ramp = make_image(16, 12, [](int x, int y, int c) { return x * 10 + y + c; });
  std::vector<float> out(16 * 12 * 3);
  crop_resize(ramp.pixels.data(), 16, 12, 3, CropBox{0, 0, 16, 12}, 16, 12, out.data());
  for (size_t i = 0; i < out.size(); ++i) REQUIRE(out[i] == Approx(ramp.pixels[i]).margin(1e-4));

  // Upscaling a horizontal ramp: interior samples lie on the line through the pixel centres.
  std::vector<float> up(32 * 12 * 3);
  crop_resize(ramp.pixels.data(), 16, 12, 3, CropBox{0, 0, 16, 12}, 32, 12, up.data());
  for (int x = 2; x < 30; ++x) {
    double src_x = (x + 0.5) / 2.0 - 0.5;  // output centre in source pixel-index units
    CHECK(up[(5 * 32 + x) * 3 + 0] == Approx(src_x * 10 + 5).margin(1e-3));
  }

  // A crop box picks the right region: the 4x4 box at (8, 4) of the ramp, same size.
  std::vector<float> crop(4 * 4 * 3);
  crop_resize(ramp.pixels.data(), 16, 12, 3, CropBox{8, 4, 4, 4}, 4, 4, crop.data());
  CHECK(crop[0] == Approx(8 * 10 + 4).margin(1e-4));
  CHECK(crop[(3 * 4 + 3) * 3 + 2] == Approx(11 * 10 + 7 + 2).margin(1e-4));

  // A one-pixel checkerboard shrunk 4x averages to grey; point-sampled bilinear would give 0 or 255.
  Image checker = make_image(64, 64, [](int x, int y, int) { return ((x + y) % 2) * 255; });
  std::vector<float> small(16 * 16 * 3);
  crop_resize(checker.pixels.data(), 64, 64, 3, CropBox{0, 0, 64, 64}, 16, 16, small.data());
  for (float v : small) REQUIRE(v == Approx(127.5).margin(20.0));

  Image grey = make_image(7, 5, [](int, int, int c) { return 40 + c; });
  std::vector<float> g(9 * 9 * 3);
  crop_resize(grey.pixels.data(), 7, 5, 3, CropBox{0.5, 0.25, 5.5, 4.5}, 9, 9, g.data());
  for (size_t i = 0; i < g.size(); ++i) REQUIRE(g[i] == Approx(40 + static_cast<int>(i % 3)).margin(1e-3));
}

TEST_CASE("transforms: normalisation, eval centre crop, flips and per-seed determinism") {
  auto t = TransformOptions().size(8);
  Image grey = make_image(20, 10, [](int, int, int c) { return 100 + 20 * c; });
  std::vector<float> out(3 * 8 * 8);
  SampleRng rng(1);
  apply_transform(grey, t, rng, out.data());
  for (int c = 0; c < 3; ++c) {
    float expect = ((100 + 20 * c) / 255.0f - t.mean()[c]) / t.std()[c];
    for (int i = 0; i < 64; ++i) REQUIRE(out[c * 64 + i] == Approx(expect).margin(1e-5));
  }

  // Eval keeps the centre square: a 20x10 image whose outer columns are white stays black inside.
  // (At scale 1, so no filter tap reaches outside the square.)
  Image framed = make_image(20, 10, [](int x, int, int) { return (x < 5 || x >= 15) ? 255 : 0; });
  TransformOptions ten = t;
  ten.size(10);
  std::vector<float> out10(3 * 10 * 10);
  apply_transform(framed, ten, rng, out10.data());
  const float black = (0.0f - t.mean()[0]) / t.std()[0];
  for (int i = 0; i < 100; ++i) REQUIRE(out10[i] == Approx(black).margin(1e-5));
  ten.crop_fraction(0.6);  // a 6x6 centre square, upscaled: still black
  apply_transform(framed, ten, rng, out10.data());
  for (int i = 0; i < 100; ++i) REQUIRE(out10[i] == Approx(black).margin(1e-5));

  // Pad-crop without padding only flips: each output is the image or its mirror, and both occur.
  Image left_bright = make_image(8, 8, [](int x, int, int) { return x < 4 ? 255 : 0; });
  TransformOptions aug = t;
  aug.augment(Augment::PadCrop);
  aug.padding(0);
  int mirrored = 0;
  for (uint64_t s = 0; s < 40; ++s) {
    SampleRng r(s);
    apply_transform(left_bright, aug, r, out.data());
    bool flipped = out[0] < out[7];
    mirrored += flipped;
    SampleRng again(s);
    std::vector<float> out2(out.size());
    apply_transform(left_bright, aug, again, out2.data());
    REQUIRE(out == out2);
  }
  CHECK(mirrored > 5);
  CHECK(mirrored < 35);

  // Padding shifts the content and fills with zero-valued (black) pixels.
  aug.padding(2);
  aug.flip(false);
  Image white = make_image(8, 8, [](int, int, int) { return 255; });
  int padded = 0;
  for (uint64_t s = 0; s < 20; ++s) {
    SampleRng r(s);
    apply_transform(white, aug, r, out.data());
    for (int i = 0; i < 64; ++i) padded += out[i] == Approx(black).margin(1e-5) ? 1 : 0;
  }
  CHECK(padded > 0);

  // Resized crops: always inside the image, areas within the scale range.
  TransformOptions rrc = t;
  rrc.augment(Augment::ResizedCrop);
  rrc.scale_min(0.3);
  rrc.scale_max(0.6);
  for (uint64_t s = 0; s < 200; ++s) {
    SampleRng r(s);
    CropBox b = detail::random_resized_box(50, 40, rrc, r);
    REQUIRE(b.x >= 0);
    REQUIRE(b.y >= 0);
    REQUIRE(b.x + b.width <= 50);
    REQUIRE(b.y + b.height <= 40);
    double area = b.width * b.height / 2000.0;
    REQUIRE(area > 0.25);
    REQUIRE(area < 0.66);
  }
  TransformOptions bad = t;
  bad.crop_fraction(1.5);
  require_error_mentions([&] { bad.validate(); }, {"crop fraction"});
}

TEST_CASE("loader: every sample once per epoch, in an order that does not depend on the workers") {
  auto ds = std::make_shared<FakeDataset>(103);
  std::vector<std::vector<std::pair<float, int32_t>>> runs;
  for (int workers : {0, 1, 3}) {
    auto o = LoaderOptions().batch_size(10).shuffle(true).seed(9).workers(workers).prefetch(2);
    DataLoader loader(ds, o);
    REQUIRE(loader.num_batches() == 11);
    auto e0 = run_epoch(loader, 0);
    auto e1 = run_epoch(loader, 1);
    REQUIRE(e0.size() == 103);
    std::set<int> seen;
    for (auto& s : e0) {
      int idx = static_cast<int>(std::floor(s.first));
      seen.insert(idx);
      CHECK(s.second == idx % 3);
    }
    CHECK(seen.size() == 103);
    CHECK(e0 != e1);  // reshuffled, and fresh augmentation draws
    e0.insert(e0.end(), e1.begin(), e1.end());
    runs.push_back(e0);
  }
  CHECK(runs[0] == runs[1]);
  CHECK(runs[0] == runs[2]);
}

TEST_CASE("loader: starting mid-epoch gives the rest of the uninterrupted epoch; drop_last; no shuffle") {
  auto ds = std::make_shared<FakeDataset>(50);
  auto o = LoaderOptions().batch_size(8).shuffle(true).seed(3).workers(2);
  DataLoader loader(ds, o);
  auto full = run_epoch(loader, 4);
  auto tail = run_epoch(loader, 4, 3);
  REQUIRE(tail.size() == 50 - 24);
  CHECK(std::equal(tail.begin(), tail.end(), full.begin() + 24));

  o.drop_last(true);
  o.shuffle(false);
  DataLoader dropping(ds, o);
  CHECK(dropping.num_batches() == 6);
  auto kept = run_epoch(dropping, 0);
  REQUIRE(kept.size() == 48);
  for (size_t i = 0; i < kept.size(); ++i) CHECK(static_cast<size_t>(std::floor(kept[i].first)) == i);
}

TEST_CASE("loader: an epoch as a range-for gives the same batches as start_epoch and next") {
  auto ds = std::make_shared<FakeDataset>(37);
  auto o = LoaderOptions().batch_size(5).shuffle(true).seed(4).workers(2);
  DataLoader loader(ds, o);
  for (int64_t first : {int64_t(0), int64_t(3)}) {
    const auto want = run_epoch(loader, 2, first);
    std::vector<std::pair<float, int32_t>> got;
    int64_t batches = 0, expect_index = first;
    for (const Batch& b : loader.epoch(2, first)) {
      CHECK(b.index == expect_index++);
      for (int64_t s = 0; s < b.size(); ++s)
        got.emplace_back(b.images.data()[s * 4], b.labels[static_cast<size_t>(s)]);
      ++batches;
    }
    CHECK(batches == loader.num_batches() - first);
    CHECK(got == want);
  }
}

TEST_CASE("loader: unreadable samples are skipped with one warning each; other errors propagate") {
  auto ds = std::make_shared<FakeDataset>(20, std::set<int64_t>{3, 4, 5, 6, 17});
  std::vector<std::string> warnings;
  std::mutex mu;
  auto o = LoaderOptions().batch_size(4).workers(2).warn([&](const std::string& m) {
    std::lock_guard<std::mutex> lock(mu);
    warnings.push_back(m);
  });
  DataLoader loader(ds, o);
  for (int epoch = 0; epoch < 2; ++epoch) {
    auto got = run_epoch(loader, epoch);
    REQUIRE(got.size() == 15);  // batch 1 (samples 4..7) keeps only 7; nothing of 3, 17 either
  }
  REQUIRE(warnings.size() == 5);  // once per file, not once per epoch
  std::sort(warnings.begin(), warnings.end());
  CHECK(warnings[0].find("sample17.jpg") != std::string::npos);
  CHECK(warnings[0].find("corrupt JPEG") != std::string::npos);
  CHECK(loader.skipped_count() == 5);

  // A batch whose every sample is unreadable is passed over.
  auto all_bad = std::make_shared<FakeDataset>(8, std::set<int64_t>{0, 1, 2, 3});
  LoaderOptions q = o;
  q.warn([](const std::string&) {});
  DataLoader skipping(all_bad, q);
  skipping.start_epoch(0);
  Batch b;
  REQUIRE(skipping.next(b));
  CHECK(b.index == 1);
  CHECK_FALSE(skipping.next(b));

  auto buggy = std::make_shared<FakeDataset>(20, std::set<int64_t>{}, 9);
  for (int workers : {0, 2}) {
    auto p = LoaderOptions().batch_size(4).workers(workers);
    DataLoader crashing(buggy, p);
    crashing.start_epoch(0);
    REQUIRE(crashing.next(b));
    REQUIRE(crashing.next(b));
    CHECK_THROWS_WITH(crashing.next(b), Catch::Contains("worker bug at sample 9"));
  }
}

TEST_CASE("loader: destruction mid-epoch and restarts do not hang") {
  auto ds = std::make_shared<FakeDataset>(1000);
  for (int i = 0; i < 5; ++i) {
    auto o = LoaderOptions().batch_size(7).workers(3).prefetch(1);
    DataLoader loader(ds, o);
    loader.start_epoch(0);
    Batch b;
    REQUIRE(loader.next(b));
    loader.start_epoch(1, 5);  // abandons epoch 0 while workers may be busy
    REQUIRE(loader.next(b));
    CHECK(b.index == 5);
  }
  auto o = LoaderOptions().batch_size(0);
  require_error_mentions([&] { DataLoader l(ds, o); }, {"batch size"});
}

TEST_CASE("ImageFolderDataset: decodes files, labels by folder, skips a corrupt file") {
  TempDir tmp;
  for (int i = 0; i < 3; ++i) {
    write_image(tmp.path / "cat" / ("c" + std::to_string(i) + ".png"), 12, 10,
                [](int, int, int) { return 10; });
    write_image(tmp.path / "dog" / ("d" + std::to_string(i) + ".jpg"), 9, 14,
                [](int, int, int) { return 250; });
  }
  write_bytes(tmp.path / "dog" / "d9.jpg", "\xff\xd8\xff\xe0 this is not really a JPEG");
  auto t = TransformOptions().size(6).augment(Augment::ResizedCrop);
  auto ds = std::make_shared<ImageFolderDataset>(ImageFolder(tmp.path.string()), t);
  REQUIRE(ds->size() == 7);
  CHECK(ds->sample_shape() == Shape{3, 6, 6});
  std::vector<std::string> warnings;
  auto o = LoaderOptions().batch_size(4).workers(1);
  o.warn([&](const std::string& m) { warnings.push_back(m); });
  DataLoader loader(ds, o);
  loader.start_epoch(0);
  Batch b;
  int64_t n = 0;
  while (loader.next(b)) {
    for (int64_t s = 0; s < b.size(); ++s) {
      float v = b.images.data()[s * 108];  // first red value: 10 or 250 before normalisation
      float expect = ((b.labels[static_cast<size_t>(s)] == 0 ? 10 : 250) / 255.0f - t.mean()[0]) / t.std()[0];
      CHECK(v == Approx(expect).margin(1e-4));
    }
    n += b.size();
  }
  CHECK(n == 6);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("d9.jpg") != std::string::npos);
}
