// The MPI process group under `mpirun -np N` (N = 2, 3): every collective against a closed form. Rank r
// fills element i with r + 1 + i, so the sum is N(N+1)/2 + N i; all values are integers below 2^24, exact in
// float, so results are compared with tolerance 0 (the average is that sum divided by N in the same type);
// bfloat16 likewise with values below 256.
// Every rank runs the same cases in the same order (Catch2's declaration order).
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "test_util.hpp"

#include "resnet/dist/init.hpp"
#include "resnet/dist/mpi_group.hpp"
#include "dist/mpi_main.hpp"

using namespace resnet;
using dist::ReduceOp;

static std::shared_ptr<dist::MpiProcessGroup> g_pg;

static dist::MpiProcessGroup& pg() { return *g_pg; }

template <typename T>
static Tensor<T> rank_tensor(int64_t n, int rank) {
  std::vector<T> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<T>(rank + 1 + i);
  return Tensor<T>::from_vector(v, Shape{n});
}

template <typename T>
static std::vector<T> expected_sum(int64_t n, int world, bool average) {
  std::vector<T> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const T s = static_cast<T>(world * (world + 1) / 2 + world * i);
    v[static_cast<size_t>(i)] = average ? s / static_cast<T>(world) : s;
  }
  return v;
}

static const int64_t kSizes[] = {0, 1, 7, 1023, 100003};

TEMPLATE_TEST_CASE("all_reduce sum and average match the closed form", "[mpi]", float, double) {
  const int W = pg().size(), r = pg().rank();
  for (int64_t n : kSizes) {
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Average}) {
      Tensor<TestType> t = rank_tensor<TestType>(n, r);
      TensorBase b = t;
      pg().all_reduce(b, op);
      testing::check_close("all_reduce " + std::string(dist::reduce_op_name(op)) + " n=" + std::to_string(n),
                           t.to_vector(), expected_sum<TestType>(n, W, op == ReduceOp::Average), 0.0);
    }
  }
}

TEMPLATE_TEST_CASE("broadcast from the last rank", "[mpi]", float, double) {
  const int W = pg().size(), r = pg().rank(), root = W - 1;
  for (int64_t n : kSizes) {
    std::vector<TestType> want(static_cast<size_t>(n)), mine(static_cast<size_t>(n), TestType(-1));
    for (int64_t i = 0; i < n; ++i)
      want[static_cast<size_t>(i)] = static_cast<TestType>(1000 * root + 0.5 * i);
    Tensor<TestType> t = Tensor<TestType>::from_vector(r == root ? want : mine, Shape{n});
    TensorBase b = t;
    pg().broadcast(b, root);
    testing::check_close("broadcast n=" + std::to_string(n), t.to_vector(), want, 0.0);
  }
}

TEMPLATE_TEST_CASE("all_gather places rank r's data at r * n", "[mpi]", float, double) {
  const int W = pg().size(), r = pg().rank();
  for (int64_t n : kSizes) {
    Tensor<TestType> in = rank_tensor<TestType>(n, r);
    Tensor<TestType> out = Tensor<TestType>::full(Shape{W * n}, TestType(-7));
    TensorBase ob = out;
    pg().all_gather(in, ob);
    std::vector<TestType> want;
    for (int q = 0; q < W; ++q)
      for (int64_t i = 0; i < n; ++i) want.push_back(static_cast<TestType>(q + 1 + i));
    testing::check_close("all_gather n=" + std::to_string(n), out.to_vector(), want, 0.0);
  }
}

// bfloat16 (compressed gradients): r + 1 + (i mod 61) sums to integers below 256, exact in bfloat16; the
// average is that sum divided by N in float, rounded to bfloat16. Broadcast and all_gather move the bits.
TEST_CASE("bfloat16: all_reduce, average, broadcast and all_gather against the closed form", "[mpi]") {
  const int W = pg().size(), r = pg().rank();
  for (int64_t n : kSizes) {
    INFO("n=" << n);
    auto filled = [&](int rank) {
      std::vector<bf16_t> v(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        v[static_cast<size_t>(i)] = bf16_t(static_cast<float>(rank + 1 + i % 61));
      return Tensor<bf16_t>::from_vector(v, Shape{n});
    };
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Average}) {
      Tensor<bf16_t> t = filled(r);
      TensorBase b = t;
      pg().all_reduce(b, op);
      std::vector<double> got, want;
      for (int64_t i = 0; i < n; ++i) {
        const float sum = static_cast<float>(W * (W + 1) / 2 + W * (i % 61));
        got.push_back(static_cast<float>(t.data()[i]));
        want.push_back(
            static_cast<float>(bf16_t(op == ReduceOp::Average ? sum / static_cast<float>(W) : sum)));
      }
      testing::check_close(std::string("bfloat16 all_reduce ") + dist::reduce_op_name(op), got, want, 0.0);
    }
    Tensor<bf16_t> c = filled(r);
    TensorBase cb = c;
    pg().broadcast(cb, W - 1);
    CHECK(std::memcmp(c.data(), filled(W - 1).data(), static_cast<size_t>(n) * 2) == 0);
    Tensor<bf16_t> all = Tensor<bf16_t>::zeros(Shape{n * W});
    TensorBase ab = all;
    pg().all_gather(filled(r), ab);
    for (int k = 0; k < W; ++k)
      CHECK(std::memcmp(all.data() + k * n, filled(k).data(), static_cast<size_t>(n) * 2) == 0);
  }
}

TEST_CASE("all_reduce_async: several in flight, waited in reverse order", "[mpi]") {
  const int W = pg().size(), r = pg().rank();
  const bool want_thread = config().dist_comm_thread();  // RESNET_DIST_COMM_THREAD=0 turns it off
  CHECK(pg().overlaps() == want_thread);                 // OpenMPI provides MPI_THREAD_MULTIPLE
  std::vector<Tensor<float>> fs;
  std::vector<Tensor<double>> ds;
  std::vector<std::shared_ptr<dist::Work>> works;
  for (int64_t n : kSizes) {
    fs.push_back(rank_tensor<float>(n, r));
    ds.push_back(rank_tensor<double>(n, r));
    works.push_back(pg().all_reduce_async(fs.back(), ReduceOp::Sum));
    works.push_back(pg().all_reduce_async(ds.back(), ReduceOp::Average));
  }
  for (size_t i = works.size(); i-- > 0;) works[i]->wait();
  works[0]->wait();  // waiting twice is harmless
  for (size_t k = 0; k < fs.size(); ++k) {
    const int64_t n = kSizes[k];
    testing::check_close("async float sum n=" + std::to_string(n), fs[k].to_vector(),
                         expected_sum<float>(n, W, false), 0.0);
    testing::check_close("async double average n=" + std::to_string(n), ds[k].to_vector(),
                         expected_sum<double>(n, W, true), 0.0);
  }
  const dist::MpiStats s = pg().stats();
  CHECK(s.collectives > 0);
  CHECK(s.bytes > 0);
}

TEST_CASE("a blocking collective issued while async ones are in flight keeps the order", "[mpi]") {
  const int W = pg().size(), r = pg().rank();
  Tensor<double> a = rank_tensor<double>(100003, r), b = rank_tensor<double>(7, r);
  auto work = pg().all_reduce_async(a);
  TensorBase bb = b;
  pg().all_reduce(bb);  // queued behind the async one on every rank
  testing::check_close("blocking", b.to_vector(), expected_sum<double>(7, W, false), 0.0);
  work->wait();
  testing::check_close("async", a.to_vector(), expected_sum<double>(100003, W, false), 0.0);
}

TEST_CASE("all_reduce_host sums scalars on every rank", "[mpi]") {
  const int W = pg().size(), r = pg().rank();
  const std::vector<double> got = pg().all_reduce_host(std::vector<double>{double(r), 1.0, 0.5});
  testing::check_close("host sum", got, std::vector<double>{W * (W - 1) / 2.0, double(W), 0.5 * W}, 0.0);
  CHECK(pg().all_reduce_host(double(r + 1), ReduceOp::Average) == Approx((W + 1) / 2.0).epsilon(1e-15));
}

TEST_CASE("barrier: files written before it are all visible after it", "[mpi]") {
  const int W = pg().size(), r = pg().rank();
  // A directory name every rank agrees on: rank 0's pid, broadcast.
  Tensor<double> id = Tensor<double>::full(Shape{1}, r == 0 ? double(getpid()) : -1.0);
  TensorBase ib = id;
  pg().broadcast(ib, 0);
  const std::string dir = "/tmp/resnet_barrier_" + std::to_string(static_cast<long>(id.item()));
  mkdir(dir.c_str(), 0700);
  std::this_thread::sleep_for(std::chrono::milliseconds(30 * r));  // later ranks arrive later
  std::ofstream(dir + "/" + std::to_string(r)) << r;
  pg().barrier();
  for (int q = 0; q < W; ++q) {
    INFO("rank " << r << " looks for rank " << q << "'s file");
    CHECK(std::ifstream(dir + "/" + std::to_string(q)).good());
  }
  pg().barrier();  // nobody removes a file another rank still checks
  std::remove((dir + "/" + std::to_string(r)).c_str());
  pg().barrier();
  if (r == 0) rmdir(dir.c_str());
}

TEST_CASE("ranks, local ranks and the launch environment agree", "[mpi]") {
  const dist::LaunchEnv env = dist::detect_launch();
  CHECK(env.launcher == "mpirun");
  CHECK(env.world_size == pg().size());
  CHECK(env.rank == pg().rank());
  // One machine: the shared-memory split is the whole world.
  CHECK(pg().local_rank() == env.local_rank);
  CHECK(pg().local_size() == env.local_size);
  CHECK(pg().local_size() == pg().size());
  CHECK(pg().backend_name() == "mpi");
  CHECK(pg().device() == Device::cpu());
}

TEST_CASE("dist::init under mpirun gives an MPI group; describe_world names every rank", "[mpi]") {
  auto g = dist::init(Device::cpu());
  CHECK(g->backend_name() == "mpi");
  CHECK(g->rank() == pg().rank());
  CHECK(g->size() == pg().size());
  const std::string line = dist::describe_world(*g);
  INFO(line);
  CHECK(line.find("world " + std::to_string(g->size()) + " (mpi, launched by mpirun):") == 0);
  for (int q = 0; q < g->size(); ++q)
    CHECK(line.find("rank " + std::to_string(q) + " cpu on ") != std::string::npos);
}

TEST_CASE("a group of MPI_COMM_SELF is a world of one", "[mpi]") {
  dist::MpiProcessGroup self(MPI_COMM_SELF);
  CHECK(self.size() == 1);
  CHECK(self.rank() == 0);
  Tensor<float> t = rank_tensor<float>(7, 0);
  TensorBase b = t;
  self.all_reduce(b, ReduceOp::Average);
  testing::check_close("self average", t.to_vector(), rank_tensor<float>(7, 0).to_vector(), 0.0);
}

TEST_CASE("bad input is refused on every rank, naming the rank", "[mpi]") {
  const std::string me = "rank " + std::to_string(pg().rank());
  TensorBase undefined;
  testing::require_error_mentions([&] { pg().all_reduce(undefined); }, {"all_reduce", "undefined", me});
  TensorBase half = TensorBase::empty(Shape{4}, DType::F16);
  testing::require_error_mentions([&] { pg().all_reduce(half); }, {"float16", "mpi", me});
  Tensor<float> t = Tensor<float>::zeros(Shape{3});
  TensorBase tb = t;
  testing::require_error_mentions([&] { pg().broadcast(tb, pg().size()); }, {"root", "out of range"});
  Tensor<float> small = Tensor<float>::zeros(Shape{3 * pg().size() + 1});
  TensorBase sb = small;
  testing::require_error_mentions([&] { pg().all_gather(t, sb); }, {"all_gather", "must hold"});
  Tensor<double> wrong = Tensor<double>::zeros(Shape{3 * pg().size()});
  TensorBase wb = wrong;
  testing::require_error_mentions([&] { pg().all_gather(t, wb); }, {"all_gather", "dtype"});
  // The group still works after refusing.
  Tensor<float> ok = rank_tensor<float>(7, pg().rank());
  TensorBase okb = ok;
  pg().all_reduce(okb);
  testing::check_close("after errors", ok.to_vector(), expected_sum<float>(7, pg().size(), false), 0.0);
}

int main(int argc, char* argv[]) {
  return mpi_test::run_catch_under_mpi(g_pg, "test_collectives", argc, argv);
}
