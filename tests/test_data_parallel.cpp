// DataParallel and SyncBatchNorm without MPI: the world of one (SingleProcessGroup) for the bucket/view
// machinery and the checkpoint names, and a world of threads (tests/dist/thread_group.hpp) for the
// arithmetic of 2 and 3 ranks against one process with the whole batch.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include <stdlib.h>

#include "catch.hpp"
#include "dist/ddp_scenarios.hpp"
#include "dist/thread_group.hpp"
#include "resnet/resnet.hpp"
#include "test_util.hpp"

using namespace resnet;

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/resnet_ddp_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::vector<std::string> names_of(const std::vector<std::pair<std::string, TensorBase>>& s) {
  std::vector<std::string> out;
  for (auto& kv : s) out.push_back(kv.first);
  return out;
}

// Runs fn on `world` thread ranks and returns each rank's result.
template <typename R>
std::vector<R> per_rank(int world, const std::function<R(std::shared_ptr<dist::ProcessGroup>)>& fn) {
  std::vector<R> out(static_cast<size_t>(world));
  testing::run_ranks(
      world, [&](std::shared_ptr<dist::ProcessGroup> g) { out[static_cast<size_t>(g->rank())] = fn(g); });
  return out;
}

}  // namespace

TEST_CASE("DataParallel buckets: reverse order, views into one buffer, frozen parameters left out", "[ddp]") {
  auto net = ddp_test::bn_net(1);
  (*net)[0]->requires_grad_(false);  // frozen stem conv
  auto o = dist::DataParallelOptions().bucket_bytes(600);
  dist::DataParallel<double> dp(net, dist::single_process_group(), o);
  REQUIRE(dp.num_buckets() > 2);

  // Reverse registration order over the trainable parameters, each exactly once.
  std::vector<std::string> trainable;
  for (auto& kv : net->named_parameters())
    if (kv.second.requires_grad()) trainable.push_back(kv.first);
  std::vector<std::string> bucketed;
  for (size_t b = 0; b < dp.num_buckets(); ++b)
    for (auto& n : dp.bucket_names(b)) bucketed.push_back(n);
  CHECK(bucketed == std::vector<std::string>(trainable.rbegin(), trainable.rend()));
  CHECK(std::find(bucketed.begin(), bucketed.end(), "0.weight") == bucketed.end());

  // Each gradient is a view into its bucket at consecutive offsets; a bucket exceeds bucket_bytes only
  // when one parameter alone does.
  std::map<std::string, Tensor<double>> params;
  for (auto& kv : net->named_parameters()) params[kv.first] = kv.second;
  for (size_t b = 0; b < dp.num_buckets(); ++b) {
    Tensor<double> flat = dp.bucket_buffer(b);
    int64_t off = 0;
    for (auto& n : dp.bucket_names(b)) {
      Tensor<double> g = params[n].grad();
      REQUIRE(g.defined());
      CHECK(g.same_storage(flat));
      CHECK(g.data() == flat.data() + off);
      off += g.numel();
    }
    CHECK(off == flat.numel());
    if (dp.bucket_names(b).size() > 1) CHECK(flat.nbytes() <= o.bucket_bytes());
  }
  CHECK_FALSE(params["0.weight"].has_grad());
}

TEST_CASE(
    "DataParallel in a world of one: same gradients as the bare model, buckets launched during backward",
    "[ddp]") {
  auto bare = ddp_test::bn_net(2);
  auto o = dist::DataParallelOptions().bucket_bytes(512);
  dist::DataParallel<double> dp(ddp_test::bn_net(2), dist::single_process_group(), o);
  ddp_test::loss_of(*bare, 0, 0, 4, 1.0).backward();
  ddp_test::loss_of(dp, 0, 0, 4, 1.0).backward();
  testing::check_close("gradients", ddp_test::grad_values(dp), ddp_test::grad_values(*bare), 1e-15);
  // The tape wrote into the buckets: the buffers hold the gradients.
  std::vector<double> from_buckets;
  for (size_t b = 0; b < dp.num_buckets(); ++b) {
    auto v = dp.bucket_buffer(b).to_vector();
    from_buckets.insert(from_buckets.end(), v.begin(), v.end());
  }
  std::vector<double> reversed;
  auto named = dp.named_parameters();
  for (size_t k = named.size(); k-- > 0;) {
    auto v = named[k].second.grad().to_vector();
    reversed.insert(reversed.end(), v.begin(), v.end());
  }
  testing::check_close("bucket buffers", from_buckets, reversed, 0.0);

  const auto& log = dp.launch_log();
  REQUIRE(log.size() == dp.num_buckets());
  for (size_t i = 0; i < log.size(); ++i) {
    CHECK(log[i].bucket == i);
    CHECK_FALSE(log[i].at_end);
    if (i > 0) CHECK(log[i].nodes_run >= log[i - 1].nodes_run);
  }
  CHECK(log.front().nodes_run < log.front().nodes_total);  // overlapped with the rest of the pass

  // Accumulation across passes, and zero_grad in place keeps the views.
  ddp_test::loss_of(dp, 0, 0, 4, 1.0).backward();
  std::vector<double> twice = ddp_test::grad_values(*bare);
  for (double& v : twice) v *= 2;
  testing::check_close("accumulated", ddp_test::grad_values(dp), twice, 1e-14);
  dp.zero_grad();  // in place: the buffers are zero, the views unchanged
  for (size_t b = 0; b < dp.num_buckets(); ++b)
    testing::check_close("zeroed bucket", dp.bucket_buffer(b).to_vector(),
                         std::vector<double>(static_cast<size_t>(dp.bucket_buffer(b).numel()), 0.0), 0.0);
  ddp_test::loss_of(dp, 0, 0, 4, 1.0).backward();
  testing::check_close("after zero_grad", ddp_test::grad_values(dp), ddp_test::grad_values(*bare), 1e-15);
}

TEST_CASE("DataParallel keeps the model's names: a wrapped checkpoint loads into a bare model", "[ddp]") {
  auto inner = ddp_test::bn_net(3);
  const auto want = names_of(inner->state_dict());
  dist::DataParallel<double> dp(inner, dist::single_process_group());
  CHECK(names_of(dp.state_dict()) == want);
  // Train one step so the state is not the initial one, then save through the wrapper.
  optim::SGD<double> opt(dp.named_parameters(), ddp_test::sgd_options());
  ddp_test::loss_of(dp, 0, 0, 4, 1.0).backward();
  opt.step();
  TempDir dir;
  io::save_checkpoint<double>(dir.file("dp.safetensors"), dp, nullptr, io::TrainingState());
  auto bare = ddp_test::bn_net(4);
  io::load_checkpoint<double>(dir.file("dp.safetensors"), *bare, nullptr);
  testing::check_close("loaded state", ddp_test::state_values(*bare), ddp_test::state_values(*inner), 0.0);
  // And eval() on the wrapper reaches the model's layers.
  dp.eval();
  for (auto& kv : inner->named_modules())
    if (!kv.first.empty()) CHECK_FALSE(kv.second->is_training());  // the root's own flag follows at forward
  dp.forward(ddp_test::batch_rows(0, 0, 2).x);
  CHECK_FALSE(inner->is_training());
  dp.train();
  CHECK((*inner)[1]->is_training());
}

TEST_CASE("SyncBatchNorm in a world of one equals BatchNorm2d, fused forms included", "[ddp][syncbn]") {
  for (Activation act : {Activation::None, Activation::ReLU})
    for (bool with_residual : {false, true}) {
      INFO("relu " << (act == Activation::ReLU) << ", residual " << with_residual);
      nn::BatchNorm2d<double> ref(3);
      copy_into(ref.weight, testing::random_tensor<double>({3}, 1));
      copy_into(ref.bias, testing::random_tensor<double>({3}, 2));
      auto sync = std::make_shared<dist::SyncBatchNorm<double>>(nn::BatchNorm2d<double>(3),
                                                                dist::single_process_group());
      copy_into(sync->weight, ref.weight);
      copy_into(sync->bias, ref.bias);
      Tensor<double> x1 = testing::leaf<double>({3, 3, 4, 5}, 3, 2.0),
                     x2 = testing::leaf<double>({3, 3, 4, 5}, 3, 2.0);
      Tensor<double> r1 = testing::leaf<double>({3, 3, 4, 5}, 4), r2 = testing::leaf<double>({3, 3, 4, 5}, 4);
      Tensor<double> y1 = ref.forward_fused(x1, with_residual ? r1 : Tensor<double>(), act);
      Tensor<double> y2 = sync->forward_fused(x2, with_residual ? r2 : Tensor<double>(), act);
      testing::check_close("y", y2.to_vector(), y1.to_vector(), 1e-14);
      testing::check_close("running_mean", sync->running_mean.to_vector(), ref.running_mean.to_vector(),
                           1e-14);
      testing::check_close("running_var", sync->running_var.to_vector(), ref.running_var.to_vector(), 1e-14);
      testing::project(y1).backward();
      testing::project(y2).backward();
      testing::check_close("dx", x2.grad().to_vector(), x1.grad().to_vector(), 1e-12);
      testing::check_close("dgamma", sync->weight.grad().to_vector(), ref.weight.grad().to_vector(), 1e-12);
      testing::check_close("dbeta", sync->bias.grad().to_vector(), ref.bias.grad().to_vector(), 1e-12);
      if (with_residual)
        testing::check_close("dresidual", r2.grad().to_vector(), r1.grad().to_vector(), 1e-14);
    }
}

TEST_CASE("sync_batch_norm's gradients match central differences in double", "[ddp][syncbn]") {
  Tensor<double> x = testing::leaf<double>({2, 3, 3, 4}, 10, 1.5),
                 r = testing::leaf<double>({2, 3, 3, 4}, 11);
  Tensor<double> g = testing::leaf<double>({3}, 12), b = testing::leaf<double>({3}, 13);
  Tensor<double> rm = Tensor<double>::zeros({3}), rv = Tensor<double>::ones({3});
  auto group = dist::single_process_group();
  auto loss = [&] {
    return testing::project(
        dist::sync_batch_norm(x, r, g, b, rm, rv, BatchNormParams{1e-5, 0.1}, Activation::ReLU, group));
  };
  testing::require_gradients_match(
      testing::gradcheck(loss, {{"x", x}, {"residual", r}, {"gamma", g}, {"beta", b}}));
}

TEST_CASE("SyncBatchNorm over 2 thread ranks normalises with the global batch", "[ddp][syncbn]") {
  // Each rank holds half the batch, shifted far from zero: the merged statistics must keep their digits.
  Tensor<double> all = testing::random_tensor<double>({6, 2, 3, 3}, 20, 0.01);
  for (int64_t i = 0; i < all.numel(); ++i) all.data()[i] += 1e4;
  nn::BatchNorm2d<double> ref(2);
  Tensor<double> xr = all.clone();
  xr.requires_grad_(true);
  Tensor<double> yr = ref.forward(xr);
  testing::project(yr).backward();
  struct Out {
    std::vector<double> y, dx, running_var;
  };
  auto outs = per_rank<Out>(2, [&](std::shared_ptr<dist::ProcessGroup> grp) {
    const int64_t n0 = grp->rank() == 0 ? 0 : 4, n1 = grp->rank() == 0 ? 4 : 6;  // uneven: 4 and 2 images
    const int64_t per = 2 * 3 * 3;
    std::vector<double> v(all.data() + n0 * per, all.data() + n1 * per);
    Tensor<double> x = Tensor<double>::from_vector(v, {n1 - n0, 2, 3, 3});
    x.requires_grad_(true);
    dist::SyncBatchNorm<double> bn(nn::BatchNorm2dOptions(2), grp);
    Tensor<double> y = bn.forward(x);
    // The projection weights of these rows, as project() drew them for the whole batch.
    Tensor<double> w = testing::random_tensor<double>({6, 2, 3, 3}, 777);
    std::vector<double> wv(w.data() + n0 * per, w.data() + n1 * per);
    sum(mul(y, Tensor<double>::from_vector(wv, x.shape()))).backward();
    return Out{y.to_vector(), x.grad().to_vector(), bn.running_var.to_vector()};
  });
  std::vector<double> y, dx;
  for (auto& o : outs) {
    y.insert(y.end(), o.y.begin(), o.y.end());
    dx.insert(dx.end(), o.dx.begin(), o.dx.end());
    testing::check_close("running_var", o.running_var, ref.running_var.to_vector(), 1e-9);
  }
  testing::check_close("y", y, yr.to_vector(), 1e-9);
  testing::check_close("dx", dx, xr.grad().to_vector(), 1e-7);
}

TEST_CASE("DataParallel over 2 and 3 thread ranks equals one process with the whole batch", "[ddp]") {
  for (int world : {2, 3})
    for (bool with_bn : {true, false}) {
      INFO(world << " ranks, " << (with_bn ? "SyncBatchNorm" : "no BatchNorm"));
      const auto ref = ddp_test::reference_state(with_bn, 42);
      auto states = per_rank<std::vector<double>>(world, [&](std::shared_ptr<dist::ProcessGroup> g) {
        return ddp_test::ddp_state(g, with_bn, 42, 2048);
      });
      for (auto& s : states) testing::check_close("state after 3 SGD steps", s, ref, 1e-10);
    }
}

TEST_CASE("DataParallel over thread ranks: overlap, no_sync and the broadcast at construction", "[ddp]") {
  auto logs = per_rank<ddp_test::OverlapResult>(2, ddp_test::overlap);
  for (auto& r : logs) {
    REQUIRE(r.buckets >= 3);
    REQUIRE(r.log.size() == r.buckets);
    size_t early = 0;
    for (size_t i = 0; i < r.log.size(); ++i) {
      CHECK(r.log[i].bucket == i);
      early += r.log[i].nodes_run < r.log[i].nodes_total ? 1 : 0;
    }
    CHECK(early >= 2);  // several buckets in flight before the pass ended
  }

  const auto want = ddp_test::reference_grads_plain(7);
  auto grads = per_rank<ddp_test::NoSyncResult>(3, ddp_test::no_sync_grads);
  for (auto& r : grads) {
    CHECK(r.launches_during_no_sync == 0);
    testing::check_close("accumulated then synchronised gradients", r.grads, want, 1e-12);
  }

  const auto rank0 = ddp_test::broadcast_reference();
  auto states = per_rank<std::vector<double>>(3, ddp_test::broadcast_state);
  for (auto& s : states) testing::check_close("state after the broadcast", s, rank0, 0.0);
}

TEST_CASE("DataParallel with bfloat16 gradients: each rank's share rounded, summed in bfloat16", "[ddp]") {
  for (int world : {2, 3}) {
    INFO(world << " ranks");
    const auto want = ddp_test::bf16_grads_in_rank_order(world);
    auto grads = per_rank<std::vector<double>>(world, ddp_test::bf16_grads);
    for (auto& g : grads) testing::check_close("gradients", g, want, 0.0);
    // And that is the float average to within bfloat16's rounding of the shares and of the sums.
    const auto exact = ddp_test::reference_grads_plain(7);
    const auto local = ddp_test::local_grads(world);
    size_t rounded = 0;
    for (size_t i = 0; i < exact.size(); ++i) {
      double mag = 0;
      for (auto& l : local) mag += std::abs(l[i]) / world;
      INFO("element " << i << ": " << grads[0][i] << " vs " << exact[i]);
      REQUIRE(std::abs(grads[0][i] - exact[i]) <= world * std::ldexp(mag, -8) + 1e-30);
      rounded += grads[0][i] != exact[i] ? 1 : 0;
    }
    CHECK(rounded > exact.size() / 2);  // it did travel in bfloat16
  }
}
