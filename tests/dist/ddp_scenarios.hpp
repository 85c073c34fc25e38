// Data-parallel scenarios shared by the threaded world (tests/test_data_parallel.cpp, normal suite) and
// the MPI runs (tests/dist/test_ddp.cpp): each runs on one rank with its group and returns what that
// rank ended with; the caller asserts against a single-process reference (computed here too), since
// Catch2's assertions belong to one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "resnet/dist/data_parallel.hpp"
#include "resnet/models/residual_block.hpp"
#include "resnet/resnet.hpp"

namespace ddp_test {

using namespace resnet;

constexpr int64_t kGlobalBatch = 8;  // divisible by 1, 2 and 4; 3 ranks get 3, 3, 2
constexpr int kSteps = 3;

// conv-BN-ReLU stem, a basic residual block, max-pool, a strided block with a projection, global pool, fc.
inline std::shared_ptr<nn::Sequential<double>> bn_net(uint64_t seed) {
  Generator g(seed);
  auto net = std::make_shared<nn::Sequential<double>>();
  net->push_back(std::make_shared<nn::Conv2d<double>>(nn::Conv2dOptions(3, 4, 3).padding(1).bias(false), g));
  net->push_back(std::make_shared<nn::BatchNorm2d<double>>(4));
  net->push_back(std::make_shared<nn::ReLU<double>>());
  auto b1 = models::ResidualBlockOptions().in_channels(4).planes(4);
  net->push_back(std::make_shared<models::ResidualBlock<double>>(b1, g));
  net->push_back(std::make_shared<nn::MaxPool2d<double>>(2, 2));
  auto b2 = models::ResidualBlockOptions().in_channels(4).planes(6).stride(2);
  net->push_back(std::make_shared<models::ResidualBlock<double>>(b2, g));
  net->push_back(std::make_shared<nn::GlobalAvgPool2d<double>>());
  net->push_back(std::make_shared<nn::Linear<double>>(6, 3, true, g));
  return net;
}

// The same shapes without BatchNorm (per-rank BN would make ranks differ from one big batch).
inline std::shared_ptr<nn::Sequential<double>> plain_net(uint64_t seed) {
  Generator g(seed);
  auto net = std::make_shared<nn::Sequential<double>>();
  net->push_back(std::make_shared<nn::Conv2d<double>>(nn::Conv2dOptions(3, 4, 3).padding(1), g));
  net->push_back(std::make_shared<nn::ReLU<double>>());
  net->push_back(std::make_shared<nn::Conv2d<double>>(nn::Conv2dOptions(4, 4, 3).padding(1), g));
  net->push_back(std::make_shared<nn::ReLU<double>>());
  net->push_back(std::make_shared<nn::MaxPool2d<double>>(2, 2));
  net->push_back(std::make_shared<nn::Conv2d<double>>(nn::Conv2dOptions(4, 6, 3).stride(2).padding(1), g));
  net->push_back(std::make_shared<nn::GlobalAvgPool2d<double>>());
  net->push_back(std::make_shared<nn::Linear<double>>(6, 3, true, g));
  return net;
}

inline std::shared_ptr<nn::Sequential<double>> make_net(bool with_bn, uint64_t seed) {
  return with_bn ? bn_net(seed) : plain_net(seed);
}

// Rows [begin, end) of step `step`'s global batch (the same values on every rank).
struct Batch {
  Tensor<double> x;
  std::vector<int32_t> labels;
};
inline Batch batch_rows(int step, int64_t begin, int64_t end) {
  Generator g(1000 + static_cast<uint64_t>(step));
  Tensor<double> all = Tensor<double>::randn({kGlobalBatch, 3, 8, 8}, g, 0.5, 1.5);
  const int64_t per = 3 * 8 * 8;
  std::vector<double> v(all.data() + begin * per, all.data() + end * per);
  Batch b{Tensor<double>::from_vector(v, {end - begin, 3, 8, 8}), {}};
  for (int64_t i = begin; i < end; ++i) b.labels.push_back(static_cast<int32_t>((i * 7 + step) % 3));
  return b;
}
// This rank's share of the global batch: contiguous, as even as possible.
inline std::pair<int64_t, int64_t> share(int rank, int world) {
  const int64_t base = kGlobalBatch / world, extra = kGlobalBatch % world;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

inline optim::SGDOptions sgd_options() {
  auto o = optim::SGDOptions().lr(0.1).momentum(0.9).weight_decay(1e-3);
  return o;
}

// Every floating value of the state (parameters and buffers), in state_dict order.
inline std::vector<double> state_values(const nn::Module<double>& m) {
  std::vector<double> out;
  for (auto& kv : m.state_dict())
    if (kv.second.dtype() == DType::F64) {
      auto v = Tensor<double>(kv.second).to_vector();
      out.insert(out.end(), v.begin(), v.end());
    }
  return out;
}
inline std::vector<double> grad_values(const nn::Module<double>& m) {
  std::vector<double> out;
  for (auto& kv : m.named_parameters()) {
    auto v =
        kv.second.has_grad() ? kv.second.grad().to_vector() : std::vector<double>(kv.second.numel(), 0.0);
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

// Loss of rows [begin, end) of the step's batch, weighted by their share of the global batch, so that
// the gradients summed over ranks (or averaged, times the world size) are those of the global mean.
inline Tensor<double> loss_of(nn::Module<double>& m, int step, int64_t begin, int64_t end, double weight) {
  Batch b = batch_rows(step, begin, end);
  nn::CrossEntropyLoss<double> ce;
  return scale(ce(m.forward(b.x), b.labels), weight);
}

// One process, the whole batch: what every data-parallel run must reproduce.
inline std::vector<double> reference_state(bool with_bn, uint64_t seed) {
  auto net = make_net(with_bn, seed);
  optim::SGD<double> opt(net->named_parameters(), sgd_options());
  for (int s = 0; s < kSteps; ++s) {
    opt.zero_grad();
    loss_of(*net, s, 0, kGlobalBatch, 1.0).backward();
    opt.step();
  }
  return state_values(*net);
}

// kSteps SGD steps data-parallel (SyncBatchNorm when with_bn); the rank's final state.
inline std::vector<double> ddp_state(const std::shared_ptr<dist::ProcessGroup>& group, bool with_bn,
                                     uint64_t seed, size_t bucket_bytes = size_t(25) << 20) {
  auto o = dist::DataParallelOptions().sync_batchnorm(with_bn).bucket_bytes(bucket_bytes);
  auto dp = std::make_shared<dist::DataParallel<double>>(make_net(with_bn, seed), group, o);
  optim::SGD<double> opt(dp->named_parameters(), sgd_options());
  const auto rows = share(group->rank(), group->size());
  // DataParallel averages over ranks; weighting by (rows * world / global) makes uneven shares exact.
  const double w = static_cast<double>((rows.second - rows.first) * group->size()) / kGlobalBatch;
  for (int s = 0; s < kSteps; ++s) {
    opt.zero_grad();
    loss_of(*dp, s, rows.first, rows.second, w).backward();
    opt.step();
  }
  return state_values(*dp);
}

// Launch order with small buckets: the log of one backward pass.
struct OverlapResult {
  size_t buckets = 0;
  std::vector<dist::BucketLaunch> log;
};
inline OverlapResult overlap(const std::shared_ptr<dist::ProcessGroup>& group) {
  dist::DataParallelOptions o;
  o.bucket_bytes(512);  // a few parameters a bucket
  o.sync_batchnorm(true);
  dist::DataParallel<double> dp(bn_net(5), group, o);
  const auto rows = share(group->rank(), group->size());
  dp.clear_launch_log();
  loss_of(dp, 0, rows.first, rows.second, 1.0).backward();
  return OverlapResult{dp.num_buckets(), dp.launch_log()};
}

// Gradient accumulation: two micro-batches a rank, the first under no_sync. Returns the gradients after
// the synchronised pass and how many bucket launches the no_sync pass made.
struct NoSyncResult {
  std::vector<double> grads;
  size_t launches_during_no_sync = 0;
};
inline NoSyncResult no_sync_grads(const std::shared_ptr<dist::ProcessGroup>& group) {
  dist::DataParallel<double> dp(plain_net(7), group);
  const auto rows = share(group->rank(), group->size());
  const int64_t mid = (rows.first + rows.second) / 2;
  const double scale_all = static_cast<double>(group->size()) / kGlobalBatch;  // sum of rows / global
  NoSyncResult r;
  {
    auto guard = dp.no_sync();
    loss_of(dp, 0, rows.first, mid, scale_all * static_cast<double>(mid - rows.first)).backward();
    r.launches_during_no_sync = dp.launch_log().size();
  }
  loss_of(dp, 0, mid, rows.second, scale_all * static_cast<double>(rows.second - mid)).backward();
  r.grads = grad_values(dp);
  return r;
}
inline std::vector<double> reference_grads_plain(uint64_t seed) {
  auto net = plain_net(seed);
  loss_of(*net, 0, 0, kGlobalBatch, 1.0).backward();
  return grad_values(*net);
}

// Ranks build differently initialised models; after wrapping, all hold rank 0's.
inline std::vector<double> broadcast_state(const std::shared_ptr<dist::ProcessGroup>& group) {
  auto net = bn_net(100 + static_cast<uint64_t>(group->rank()));
  // Make a buffer differ too.
  auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d<double>>((*net)[1]);
  bn->running_mean.fill_(static_cast<double>(group->rank()));
  bn->num_batches_tracked.data()[0] = 10 + group->rank();
  dist::DataParallel<double> dp(net, group);
  std::vector<double> v = state_values(dp);
  v.push_back(static_cast<double>(bn->num_batches_tracked.data()[0]));
  return v;
}
inline std::vector<double> broadcast_reference() {
  auto net = bn_net(100);
  auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d<double>>((*net)[1]);
  bn->running_mean.fill_(0.0);
  std::vector<double> v = state_values(*net);
  v.push_back(10.0);
  return v;
}

// One backward pass with the gradients all-reduced in bfloat16 (small buckets: several launches, one
// launched at the end); the rank's gradients afterwards.
inline std::vector<double> bf16_grads(const std::shared_ptr<dist::ProcessGroup>& group) {
  auto o = dist::DataParallelOptions().bucket_bytes(1024).bf16_gradients(true);
  dist::DataParallel<double> dp(plain_net(7), group, o);
  const auto rows = share(group->rank(), group->size());
  const double w = static_cast<double>((rows.second - rows.first) * group->size()) / kGlobalBatch;
  loss_of(dp, 0, rows.first, rows.second, w).backward();
  return grad_values(dp);
}
// Each rank's own gradients in bf16_grads (no communication).
inline std::vector<std::vector<double>> local_grads(int world) {
  std::vector<std::vector<double>> out;
  for (int r = 0; r < world; ++r) {
    auto net = plain_net(7);
    const auto rows = share(r, world);
    const double w = static_cast<double>((rows.second - rows.first) * world) / kGlobalBatch;
    loss_of(*net, 0, rows.first, rows.second, w).backward();
    out.push_back(grad_values(*net));
  }
  return out;
}
// bf16_grads' result when shares are summed in rank order: each rank's gradient times 1/world (in double),
// rounded to bfloat16 through float, summed in float with a rounding after each addition.
inline std::vector<double> bf16_grads_in_rank_order(int world) {
  const auto local = local_grads(world);
  std::vector<double> out(local[0].size());
  for (size_t i = 0; i < out.size(); ++i) {
    auto share_of = [&](int r) {
      return bf16_t::from_float(static_cast<float>(local[static_cast<size_t>(r)][i] * (1.0 / world)));
    };
    uint16_t acc = share_of(0);
    for (int r = 1; r < world; ++r)
      acc = bf16_t::from_float(bf16_t::to_float(share_of(r)) + bf16_t::to_float(acc));
    out[i] = bf16_t::to_float(acc);
  }
  return out;
}

}  // namespace ddp_test
