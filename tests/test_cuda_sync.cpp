// No host waits in a steady-state step, on a GPU: a ResNet-18 trains a few steps on cuda:0 and the
// runtime's host-synchronisation counter (cuda::host_sync_count) must not move during a steady-state step:
// labels and images go up through the pinned staging ring (switched on here: off by default), the learning
// rate into the optimizer's step state, the loss into device-side sums, BatchNorm counts its batches on the
// device. Also the pieces of the default GPU path that changed since the last GPU run: upload_async without
// the ring, the ring's growth past 64 MiB, eval-mode BatchNorm's backward with its invstd made on the
// device. The GPU cases are hidden ([.gpu]); `test_cuda_sync --gpu` runs them and exits 77 (skipped)
// without a device. Written without a GPU: it has never run on one.
#include <cmath>
#include <cstdlib>
#include <vector>

#include "resnet/resnet.hpp"
#include "test_util.hpp"

using namespace resnet;

TEST_CASE("cuda sync: the counter starts from the copies it names, without a device", "[cuda_sync]") {
  cuda::SyncCounter c;
  CHECK(c.count() == 0);
  CHECK(c.describe() == "0");
  CHECK(std::string(cuda::host_sync_name(cuda::HostSync::CopyToHost)) == "copy to host");
}

namespace {

// Sets upload_async's staging ring for a scope.
struct RingSwitch {
  bool was = cuda::staging_ring_enabled();
  explicit RingSwitch(bool on) { cuda::set_staging_ring(on); }
  ~RingSwitch() { cuda::set_staging_ring(was); }
};

}  // namespace

TEST_CASE("cuda sync: the staging ring and the half packs are off unless asked for, without a device",
          "[cuda_sync]") {
  // Neither has run on a GPU, so neither is the default (the environment may ask for them).
  if (config().source(SettingId::CudaStaging) == SettingSource::Default)
    CHECK_FALSE(cuda::staging_ring_enabled());
  if (config().source(SettingId::CudaHalfPacks) == SettingSource::Default)
    CHECK_FALSE(cuda::half_packs_enabled());
  {
    RingSwitch on(true);
    CHECK(cuda::staging_ring_enabled());
    CHECK(config().cuda_staging());  // one switch: the setting and the backend's setter read back alike
  }
  {
    const ConfigSnapshot saved = config().snapshot();
    config().set_cuda_half_packs(true);
    CHECK(cuda::half_packs_enabled());
    config().set_cuda_half_packs(std::nullopt);  // back to the kernel policy: off, never run on a GPU
    if (config().source(SettingId::CudaHalfPacks) == SettingSource::Default)
      CHECK_FALSE(cuda::half_packs_enabled());
    config().restore(saved);
  }
  RingSwitch off(false);
  CHECK_FALSE(cuda::staging_ring_enabled());
}

namespace {

struct Step {
  Device dev = Device::cuda(0);
  std::shared_ptr<models::ResNet<float>> net;
  std::shared_ptr<optim::Optimizer<float>> opt;
  Tensor<double> stats;
  Tensor<float> images;  // host batches
  std::vector<int32_t> labels;
  int64_t done = 0;

  explicit Step(bool adam) {
    auto o = models::ResNetOptions().num_classes(10).seed(7);
    net = models::resnet<float>("resnet18", o);
    net->to(dev);
    net->train();
    if (adam)
      opt = std::make_shared<optim::AdamW<float>>(net->named_parameters(), optim::AdamWOptions().lr(1e-3));
    else
      opt = std::make_shared<optim::SGD<float>>(
          net->named_parameters(), optim::SGDOptions().lr(0.05).momentum(0.9).weight_decay(5e-4));
    stats = Tensor<double>::zeros({loss_stats::kSize}, dev);
    Generator gen(3);
    images = Tensor<float>::randn({8, 3, 32, 32}, gen);
    for (int i = 0; i < 8; ++i) labels.push_back(i % 10);
  }
  // One training step as train::Trainer runs it, with nothing read on the host.
  void run(bool nan_loss = false) {
    Tensor<float> x = train::to_input<float>(images, dev);
    Tensor<int32_t> y = to_device_async(Tensor<int32_t>::from_vector(labels, {8}), dev);
    opt->set_lr(0.05 / static_cast<double>(1 + done));  // a schedule: a new value every step
    Tensor<float> loss = cross_entropy(net->forward(x), y);
    if (nan_loss) loss = scale(loss, std::nan(""));
    cuda::record_step_loss(loss, stats, &opt->step_state(), 8, 8);
    opt->zero_grad();
    loss.backward();
    opt->step();
    ++done;
  }
};

}  // namespace

TEST_CASE("cuda sync: a steady-state ResNet-18 training step waits for the device nowhere",
          "[.gpu][cuda_sync]") {
  RingSwitch ring(true);  // without the ring each upload is a (counted) pageable copy
  for (bool adam : {false, true}) {
    INFO((adam ? "AdamW" : "SGD"));
    Step s(adam);
    for (int i = 0; i < 3; ++i) s.run();  // warm-up: cuDNN's algorithm search, first allocations
    cuda::synchronize();
    for (int i = 0; i < 3; ++i) {
      cuda::SyncCounter c;
      s.run();
      INFO("host waits in step " << s.done << ": " << c.describe());
      CHECK(c.count() == 0);
    }
    // Reading the sums is one wait, and they hold the six steps' losses.
    cuda::SyncCounter c;
    const std::vector<double> st = s.stats.to_vector();
    CHECK(c.count(cuda::HostSync::CopyToHost) == 1);
    CHECK(st[loss_stats::kStep] == 6);
    CHECK(st[loss_stats::kBadStep] == 0);
    CHECK(std::isfinite(st[loss_stats::kEpochSum]));
    CHECK(st[loss_stats::kEpochSum] > 0);
    const std::vector<double> os = s.opt->step_state().to_vector();
    CHECK(os[optim_state::kStep] == 6);
    CHECK(os[optim_state::kLr] == 0.05 / 6);
    CHECK(s.net->bn1->num_batches_tracked.item() == 6);
  }
}

TEST_CASE("cuda sync: a non-finite loss skips the update on the device, and every one after it",
          "[.gpu][cuda_sync]") {
  Step s(false);
  for (int i = 0; i < 2; ++i) s.run();
  std::vector<std::vector<float>> before;
  for (auto& kv : s.net->named_parameters()) before.push_back(kv.second.to_vector());
  s.run(true);  // step 3's loss is NaN
  s.run();      // finite, still skipped
  size_t i = 0;
  for (auto& kv : s.net->named_parameters()) {
    INFO(kv.first);
    CHECK(kv.second.to_vector() == before[i++]);
  }
  const std::vector<double> st = s.stats.to_vector();
  CHECK(st[loss_stats::kBadStep] == 3);
  CHECK(st[loss_stats::kBadKind] == 1);
  CHECK(s.opt->step_state().to_vector()[optim_state::kStep] == 2);
}

TEST_CASE("cuda sync: upload_async keeps each upload's bytes while the ring comes round",
          "[.gpu][cuda_sync]") {
  // More uploads than the ring holds at once, each reused host buffer overwritten right after the call:
  // every device tensor must hold what its call was given.
  RingSwitch ring(true);
  const int64_t n = 3 << 20;  // 12 MiB of int32: the 64 MiB ring wraps every ~5 uploads
  std::vector<Tensor<int32_t>> up;
  std::vector<int32_t> host(static_cast<size_t>(n));
  for (int k = 0; k < 12; ++k) {
    for (int64_t i = 0; i < n; i += 4096)
      host[static_cast<size_t>(i)] = k * 1000 + static_cast<int32_t>(i % 977);
    Tensor<int32_t> d = Tensor<int32_t>::empty({n}, Device::cuda(0));
    cuda::upload_async(d.data(), host.data(), static_cast<size_t>(n) * sizeof(int32_t), 0);
    up.push_back(d);
  }
  for (int k = 0; k < 12; ++k) {
    const std::vector<int32_t> v = up[static_cast<size_t>(k)].to_vector();
    bool ok = true;
    for (int64_t i = 0; i < n; i += 4096)
      ok = ok && v[static_cast<size_t>(i)] == k * 1000 + static_cast<int32_t>(i % 977);
    INFO("upload " << k);
    CHECK(ok);
  }
}

TEST_CASE("cuda sync: without the ring, upload_async is a pageable copy, counted", "[.gpu][cuda_sync]") {
  RingSwitch off(false);
  std::vector<int32_t> host(1000);
  for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<int32_t>(i * 3 + 1);
  Tensor<int32_t> d = Tensor<int32_t>::empty({1000}, Device::cuda(0));
  cuda::SyncCounter c;
  cuda::upload_async(d.data(), host.data(), host.size() * sizeof(int32_t), 0);
  const std::vector<int32_t> want = host;
  std::fill(host.begin(), host.end(), -1);  // the source may be reused on return
  CHECK(c.count(cuda::HostSync::PageableUpload) == 1);
  CHECK(c.count(cuda::HostSync::StagingWait) == 0);
  CHECK(d.to_vector() == want);
}

TEST_CASE("cuda sync: the staging ring grows past 64 MiB for a batch of 128 images at 224 px",
          "[.gpu][cuda_sync][ring]") {
  RingSwitch ring(true);
  // A small upload first, left in flight when the large one grows the ring: its bytes must survive.
  std::vector<int32_t> small(4096);
  for (size_t i = 0; i < small.size(); ++i) small[i] = static_cast<int32_t>(i) - 77;
  Tensor<int32_t> ds = Tensor<int32_t>::empty({4096}, Device::cuda(0));
  cuda::upload_async(ds.data(), small.data(), small.size() * sizeof(int32_t), 0);
  CHECK(cuda::staging_ring_bytes(0) >= size_t(64) << 20);
  // 128 x 3 x 224 x 224 floats = 73.5 MiB: more than a quarter of a 64 or 128 MiB ring.
  const Shape s{128, 3, 224, 224};
  const size_t bytes = static_cast<size_t>(s.numel()) * sizeof(float);
  std::vector<Tensor<float>> up;
  std::vector<std::vector<float>> want;
  Generator gen(5);
  for (int k = 0; k < 3; ++k) {
    Tensor<float> h = Tensor<float>::randn(s, gen);
    want.push_back(h.to_vector());
    up.push_back(to_device_async(h, Device::cuda(0)));
    h.fill_(-1.f);  // the host batch is reused at once, as a loader's is
  }
  INFO("ring " << cuda::staging_ring_bytes(0) << " bytes for uploads of " << bytes);
  CHECK(cuda::staging_ring_bytes(0) >= 4 * bytes);
  CHECK(ds.to_vector() == small);
  for (size_t k = 0; k < up.size(); ++k) {
    INFO("upload " << k);
    CHECK(up[k].to_vector() == want[k]);
  }
}

TEST_CASE("cuda sync: eval-mode BatchNorm's backward takes invstd from running_var on the device",
          "[.gpu][cuda_sync][bn_eval]") {
  // The kernel alone, against 1 / sqrt(var + eps) in double, over more channels than one block.
  const int64_t C = 3000;
  std::vector<float> var(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) var[static_cast<size_t>(c)] = 0.01f + 0.37f * static_cast<float>(c % 101);
  const Tensor<float> gv = Tensor<float>::from_vector(var, {C}).to(Device::cuda(0));
  Tensor<float> inv = Tensor<float>::full({C}, -7.f, Device::cuda(0));
  cuda::bn_running_invstd(gv, 1e-5, inv);
  const std::vector<float> got = inv.to_vector();
  double worst = 0;
  for (size_t c = 0; c < var.size(); ++c) {
    const double want = 1.0 / std::sqrt(static_cast<double>(var[c]) + 1e-5);
    worst = std::max(worst, std::abs(got[c] - want) / want);
  }
  CHECK(worst < 1e-6);
  // Through autograd: an eval-mode BatchNorm2d's input gradient is dy * gamma * invstd, in double on the GPU
  // and on the CPU alike.
  for (Device dev : {Device::cpu(), Device::cuda(0)}) {
    INFO(dev.to_string());
    nn::BatchNorm2d<double> fresh(3);
    const double gam[3] = {0.5, -2.0, 1.5}, rv[3] = {0.25, 4.0, 1e-3}, rm[3] = {1.0, -1.0, 0.0};
    for (int c = 0; c < 3; ++c) {  // set on the host, before the move
      fresh.weight.data()[c] = gam[c];
      fresh.running_var.data()[c] = rv[c];
      fresh.running_mean.data()[c] = rm[c];
    }
    fresh.to(dev);
    fresh.eval();
    Generator g(9);
    Tensor<double> x = Tensor<double>::randn({2, 3, 4, 4}, g).to(dev);
    x.requires_grad_();
    Tensor<double> w = Tensor<double>::randn({2, 3, 4, 4}, g);
    sum(mul(fresh.forward(x), w.to(dev))).backward();
    const std::vector<double> dx = x.grad().to_vector(), wv = w.to_vector();
    double err = 0;
    for (size_t i = 0; i < dx.size(); ++i) {
      const size_t c = (i / 16) % 3;
      err = std::max(err, std::abs(dx[i] - wv[i] * gam[c] / std::sqrt(rv[c] + 1e-5)));
    }
    CHECK(err < 1e-9);
    CHECK(fresh.num_batches_tracked.item() == 0);  // eval counts nothing
  }
}
