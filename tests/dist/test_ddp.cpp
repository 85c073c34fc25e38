// DataParallel and SyncBatchNorm under `mpirun -np N` (N = 2, 3) on the MPI process group: in double,
// N ranks sharing a global batch of 8 end with the same parameters and buffers after 3 SGD steps
// (momentum, weight decay) as one process with the whole batch, to 1e-10, with SyncBatchNorm and for a
// model without BatchNorm; buckets launch before backward ends; no_sync accumulation equals one big
// batch; the broadcast at construction makes differently initialised ranks equal. The scenarios are
// tests/dist/ddp_scenarios.hpp, the same the threaded world runs in test_data_parallel. Every rank runs
// the same cases in the same order, with CHECKs only (a REQUIRE on one rank would desynchronise them).
#include "dist/ddp_scenarios.hpp"
#include "resnet/dist/mpi_group.hpp"
#include "dist/mpi_main.hpp"
#include "test_util.hpp"

using namespace resnet;

static std::shared_ptr<dist::ProcessGroup> g_pg;

TEST_CASE("SyncBatchNorm data parallel equals one process with the whole batch", "[ddp]") {
  const auto ref = ddp_test::reference_state(true, 42);
  for (size_t bucket : {size_t(25) << 20, size_t(1024)}) {
    INFO("bucket_bytes " << bucket << ", rank " << g_pg->rank() << " of " << g_pg->size());
    testing::check_close("state after 3 SGD steps", ddp_test::ddp_state(g_pg, true, 42, bucket), ref, 1e-10);
  }
}

TEST_CASE("data parallel without BatchNorm equals one process with the whole batch", "[ddp]") {
  const auto ref = ddp_test::reference_state(false, 43);
  INFO("rank " << g_pg->rank() << " of " << g_pg->size());
  testing::check_close("state after 3 SGD steps", ddp_test::ddp_state(g_pg, false, 43, 1024), ref, 1e-10);
}

TEST_CASE("buckets launch while backward still runs", "[ddp]") {
  const auto r = ddp_test::overlap(g_pg);
  CHECK(r.buckets >= 3);
  CHECK(r.log.size() == r.buckets);
  size_t early = 0;
  for (size_t i = 0; i < r.log.size(); ++i) {
    CHECK(r.log[i].bucket == i);  // index order, the same on every rank
    CHECK_FALSE(r.log[i].at_end);
    early += r.log[i].nodes_run < r.log[i].nodes_total ? 1 : 0;
  }
  INFO("launches before the last node: " << early << " of " << r.log.size());
  CHECK(early >= 2);
}

TEST_CASE("no_sync accumulation then one synchronised pass equals one big batch", "[ddp]") {
  const auto r = ddp_test::no_sync_grads(g_pg);
  CHECK(r.launches_during_no_sync == 0);
  testing::check_close("gradients", r.grads, ddp_test::reference_grads_plain(7), 1e-12);
}

TEST_CASE("construction broadcasts rank 0's parameters and buffers", "[ddp]") {
  testing::check_close("state", ddp_test::broadcast_state(g_pg), ddp_test::broadcast_reference(), 0.0);
}

TEST_CASE("bfloat16 gradients: half the bytes, the same bits on every rank, the average to bf16 rounding",
          "[ddp]") {
  auto* mpi = dynamic_cast<dist::MpiProcessGroup*>(g_pg.get());
  REQUIRE(mpi != nullptr);
  const int64_t bytes0 = mpi->stats().bytes;
  ddp_test::ddp_state(g_pg, false, 43, 1024);  // float (here double) gradients: 3 passes
  const int64_t wide = mpi->stats().bytes - bytes0;
  const auto grads = ddp_test::bf16_grads(g_pg);
  const int64_t narrow = mpi->stats().bytes - bytes0 - wide;
  INFO("rank " << g_pg->rank() << ": " << wide << " bytes in 3 double passes (and the broadcast), " << narrow
               << " in one bfloat16 pass");
  const int64_t params = static_cast<int64_t>(grads.size());
  CHECK(narrow - 2 * params == wide - 3 * 8 * params);  // both: the broadcast at construction
  // Rank 0's bits on every rank: the replicas stay equal.
  Tensor<double> mine = Tensor<double>::from_vector(grads, Shape{params});
  Tensor<double> root = mine.clone();
  TensorBase rb = root;
  g_pg->broadcast(rb, 0);
  testing::check_close("gradients against rank 0's", grads, root.to_vector(), 0.0);
  const auto exact = ddp_test::reference_grads_plain(7);
  const auto local = ddp_test::local_grads(g_pg->size());
  for (size_t i = 0; i < exact.size(); ++i) {
    double mag = 0;
    for (auto& l : local) mag += std::abs(l[i]) / g_pg->size();
    CHECK(std::abs(grads[i] - exact[i]) <= g_pg->size() * std::ldexp(mag, -8) + 1e-30);
  }
}

int main(int argc, char* argv[]) { return mpi_test::run_catch_under_mpi(g_pg, "test_ddp", argc, argv); }
