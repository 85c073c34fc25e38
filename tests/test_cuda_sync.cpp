// Issue 17, "no host waits in a steady-state step", on a GPU: a ResNet-18 trains a few steps on cuda:0 and
// the runtime's host-synchronisation counter (cuda::host_sync_count) must not move during a steady-state
// step: labels and images go up through the pinned staging ring, the learning rate into the optimizer's
// step state, the loss into device-side sums, BatchNorm counts its batches on the device. The GPU cases are
// hidden ([.gpu]); `test_cuda_sync --gpu` runs them and exits 77 (skipped) without a device. Written
// without a GPU: it has never run on one.
#include <cmath>
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

struct Step {
  Device dev = Device::cuda(0);
  std::shared_ptr<models::ResNet<float>> net;
  std::shared_ptr<optim::Optimizer<float>> opt;
  Tensor<double> stats;
  Tensor<float> images;  // host batches
  std::vector<int32_t> labels;
  int64_t done = 0;

  explicit Step(bool adam) {
    models::ResNetOptions o;
    o.num_classes = 10;
    o.seed = 7;
    net = models::resnet<float>("resnet18", o);
    net->to(dev);
    net->train();
    if (adam)
      opt = std::make_shared<optim::AdamW<float>>(net->named_parameters(), optim::AdamWOptions{1e-3});
    else
      opt =
          std::make_shared<optim::SGD<float>>(net->named_parameters(), optim::SGDOptions{0.05, 0.9, 0, 5e-4});
    stats = Tensor<double>::zeros({loss_stats::kSize}, dev);
    Generator gen(3);
    images = Tensor<float>::randn({8, 3, 32, 32}, gen);
    for (int i = 0; i < 8; ++i) labels.push_back(i % 10);
  }
  // One training step as train::Trainer runs it, with nothing read on the host.
  void run(double fault_step = -1) {
    Tensor<float> x = train::to_input<float>(images, dev);
    Tensor<int32_t> y = to_device_async(Tensor<int32_t>::from_vector(labels, {8}), dev);
    opt->set_lr(0.05 / static_cast<double>(1 + done));  // a schedule: a new value every step
    Tensor<float> loss = cross_entropy(net->forward(x), y);
    cuda::record_step_loss(loss, stats, &opt->step_state(), 8, 8, fault_step);
    opt->zero_grad();
    loss.backward();
    opt->step();
    ++done;
  }
};

}  // namespace

TEST_CASE("cuda sync: a steady-state ResNet-18 training step waits for the device nowhere",
          "[.gpu][cuda_sync]") {
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
  s.run(3);  // step 3's loss is NaN (the Trainer's test hook)
  s.run();   // finite, still skipped
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
