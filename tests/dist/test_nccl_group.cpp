// The NCCL process group on GPUs: every collective in float, double, float16 and bfloat16 against the
// closed form of test_collectives (rank r fills r + 1 + i; small integers, exact in every dtype). Run
// directly it is a world of one (MPI's singleton start-up: what tools/gpu_check.sh runs on one GPU);
// under `mpirun -np N` on a machine with N GPUs it is a world of N. Without a CUDA device it exits 77
// (ctest: skipped). In a build without NCCL it is not built (tests/dist/CMakeLists.txt).
#include <cstdio>

#include "catch.hpp"
#include "catch_session.hpp"
#include "test_util.hpp"

#include "resnet/dist/nccl_group.hpp"

using namespace resnet;
using dist::ReduceOp;

static std::shared_ptr<dist::NcclProcessGroup> g_pg;

// Values r + 1 + (i mod 61): integers below 256 after summing over up to 3 ranks, exact in bfloat16 too.
template <typename T>
static Tensor<T> rank_tensor(int64_t n, int rank, Device d) {
  std::vector<T> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = T(static_cast<float>(rank + 1 + i % 61));
  return Tensor<T>::from_vector(v, Shape{n}).to(d);
}

template <typename T>
static std::vector<double> host(const Tensor<T>& t) {
  std::vector<double> out;
  for (T x : t.to(Device::cpu()).to_vector()) out.push_back(static_cast<double>(static_cast<float>(x)));
  return out;
}

template <typename T>
static std::vector<double> expected(int64_t n, int world, bool average) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double s = world * (world + 1) / 2.0 + world * static_cast<double>(i % 61);
    v[static_cast<size_t>(i)] = average ? static_cast<float>(T(static_cast<float>(s / world))) : s;
  }
  return v;
}

TEMPLATE_TEST_CASE("NCCL collectives match the closed form", "[nccl]", float, double, half_t, bf16_t) {
  dist::NcclProcessGroup& pg = *g_pg;
  const int W = pg.size(), r = pg.rank();
  const Device d = pg.device();
  // Average of 16-bit values is exact only where the quotient is representable: compare within the
  // dtype's rounding.
  const double tol = sizeof(TestType) == 2 ? 1e-2 : 0.0;
  for (int64_t n : {0, 1, 7, 1023, 100003}) {
    const std::string at = " n=" + std::to_string(n);
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Average}) {
      Tensor<TestType> t = rank_tensor<TestType>(n, r, d);
      TensorBase b = t;
      pg.all_reduce(b, op);
      testing::check_close(std::string("all_reduce ") + dist::reduce_op_name(op) + at, host(t),
                           expected<TestType>(n, W, op == ReduceOp::Average),
                           op == ReduceOp::Sum ? 0.0 : tol);
    }
    Tensor<TestType> bc = rank_tensor<TestType>(n, r, d);
    TensorBase bcb = bc;
    pg.broadcast(bcb, W - 1);
    testing::check_close("broadcast" + at, host(bc), host(rank_tensor<TestType>(n, W - 1, d)), 0.0);
    Tensor<TestType> in = rank_tensor<TestType>(n, r, d);
    Tensor<TestType> out = Tensor<TestType>::empty(Shape{W * n}, d);
    TensorBase ob = out;
    pg.all_gather(in, ob);
    std::vector<double> want;
    for (int q = 0; q < W; ++q) {
      const std::vector<double> part = host(rank_tensor<TestType>(n, q, d));
      want.insert(want.end(), part.begin(), part.end());
    }
    testing::check_close("all_gather" + at, host(out), want, 0.0);
  }
  std::vector<Tensor<TestType>> ts;
  std::vector<std::shared_ptr<dist::Work>> works;
  for (int k = 0; k < 4; ++k) {
    ts.push_back(rank_tensor<TestType>(1023 + k, r, d));
    works.push_back(pg.all_reduce_async(ts.back()));
  }
  for (size_t k = works.size(); k-- > 0;) works[k]->wait();
  for (int k = 0; k < 4; ++k)
    testing::check_close("async " + std::to_string(k), host(ts[static_cast<size_t>(k)]),
                         expected<TestType>(1023 + k, W, false), 0.0);
  pg.barrier();
}

TEST_CASE("NCCL group: device, names and bad input", "[nccl]") {
  dist::NcclProcessGroup& pg = *g_pg;
  CHECK(pg.backend_name() == "nccl");
  CHECK(pg.device().is_cuda());
  CHECK(pg.device().index == pg.local_rank() % cuda::device_count());
  Tensor<float> cpu = Tensor<float>::zeros(Shape{3});
  TensorBase cb = cpu;
  testing::require_error_mentions([&] { pg.all_reduce(cb); }, {"not on this nccl group's device", "rank"});
  CHECK(pg.all_reduce_host(1.0) == Approx(pg.size()));
}

int main(int argc, char* argv[]) {
  if (cuda::device_count() == 0) {
    std::printf("SKIPPED: no CUDA device (%s)\n", cuda::unavailable_reason().c_str());
    return 77;
  }
  int rc = 1;
  try {
    g_pg = std::make_shared<dist::NcclProcessGroup>(std::make_shared<dist::MpiProcessGroup>());
    rc = run_catch_session(argc, argv);
    g_pg.reset();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "test_nccl_group: %s\n", e.what());
    return 1;
  }
  return rc;
}
