// The parts of distributed training that need no MPI: the distributed sampler and evaluation
// shards, the DataLoader driven by a sampler's indices, launch detection, and dist::init in a build without
// MPI (the refusal to run as one of several copies).
#include <cstdlib>
#include <map>
#include <set>

#include "test_util.hpp"

#include "resnet/dist/init.hpp"
#include "resnet/dist/sampler.hpp"

using namespace resnet;
using dist::DistributedSampler;
using dist::TailRule;

TEST_CASE("sampler: every sample exactly once per epoch across ranks (pad and drop)", "[sampler]") {
  for (int world = 1; world <= 5; ++world) {
    for (int64_t n : {1, 2, 5, 7, 10, 11, 13, 100, 101}) {
      for (TailRule tail : {TailRule::Pad, TailRule::Drop}) {
        if (tail == TailRule::Drop && n < world) continue;
        for (int64_t epoch : {0, 3}) {
          std::map<int64_t, int> seen;
          std::set<int64_t> share_sizes;
          for (int r = 0; r < world; ++r) {
            DistributedSampler s(n, world, r, /*seed=*/42, /*shuffle=*/true, tail);
            s.set_epoch(epoch);
            const std::vector<int64_t> mine = s.indices();
            share_sizes.insert(static_cast<int64_t>(mine.size()));
            CHECK(static_cast<int64_t>(mine.size()) == s.num_samples());
            for (int64_t i : mine) ++seen[i];
          }
          INFO("world " << world << ", n " << n << ", " << (tail == TailRule::Pad ? "pad" : "drop")
                        << ", epoch " << epoch);
          CHECK(share_sizes.size() == 1);  // every rank takes the same number of steps
          const int64_t per = tail == TailRule::Pad ? (n + world - 1) / world : n / world;
          CHECK(*share_sizes.begin() == per);
          int64_t total = 0, twice = 0;
          for (const auto& kv : seen) {
            CHECK(kv.first >= 0);
            CHECK(kv.first < n);
            total += kv.second;
            if (kv.second > 1) twice += kv.second - 1;
          }
          CHECK(total == per * world);
          if (tail == TailRule::Pad) {
            CHECK(static_cast<int64_t>(seen.size()) == n);  // nothing left out
            CHECK(twice == per * world - n);                // only the padding repeats
          } else {
            CHECK(static_cast<int64_t>(seen.size()) == per * world);  // nothing repeated
            CHECK(twice == 0);
          }
        }
      }
    }
  }
}

TEST_CASE("sampler: the same permutation on every rank, another each epoch", "[sampler]") {
  const int64_t n = 103;
  DistributedSampler a(n, 3, 0, 7), b(n, 3, 2, 7);
  for (int64_t e : {0, 1, 2}) {
    a.set_epoch(e);
    b.set_epoch(e);
    CHECK(a.global_order() == b.global_order());
    // The permutation is the single-process loader's shuffle of that epoch, wrapped.
    const std::vector<int64_t> perm = data::epoch_permutation(n, 7, e);
    const std::vector<int64_t> order = a.global_order();
    for (size_t k = 0; k < order.size(); ++k) CHECK(order[k] == perm[k % perm.size()]);
  }
  a.set_epoch(0);
  const std::vector<int64_t> e0 = a.global_order();
  a.set_epoch(1);
  CHECK(a.global_order() != e0);
  DistributedSampler other_seed(n, 3, 0, 8);
  CHECK(other_seed.global_order() != e0);
  DistributedSampler plain(n, 3, 1, 7, /*shuffle=*/false);
  const std::vector<int64_t> mine = plain.indices();
  for (size_t j = 0; j < mine.size(); ++j) CHECK(mine[j] == static_cast<int64_t>(1 + 3 * j) % n);
}

TEST_CASE("sampler: global batch j is positions [jB, (j+1)B) at every world size", "[sampler]") {
  const int64_t n = 120, B = 12;
  DistributedSampler one(n, 1, 0, 5);
  const std::vector<int64_t> order = one.indices();
  for (int world : {1, 2, 3, 4, 6}) {
    const int64_t b = B / world;
    std::vector<std::vector<int64_t>> shares;
    for (int r = 0; r < world; ++r) shares.push_back(DistributedSampler(n, world, r, 5).indices());
    for (int64_t j = 0; j < n / B; ++j) {
      std::multiset<int64_t> got, want(order.begin() + j * B, order.begin() + (j + 1) * B);
      for (int r = 0; r < world; ++r)
        got.insert(shares[static_cast<size_t>(r)].begin() + j * b,
                   shares[static_cast<size_t>(r)].begin() + (j + 1) * b);
      INFO("world " << world << ", global batch " << j);
      CHECK(got == want);
    }
  }
}

TEST_CASE("sampler: pad wraps when there are fewer samples than ranks; bad arguments are refused",
          "[sampler]") {
  std::vector<int64_t> all;
  for (int r = 0; r < 5; ++r) {
    DistributedSampler s(2, 5, r, 1, false);
    const std::vector<int64_t> mine = s.indices();
    REQUIRE(mine.size() == 1);
    all.push_back(mine[0]);
  }
  CHECK(all == std::vector<int64_t>{0, 1, 0, 1, 0});
  testing::require_error_mentions([] { DistributedSampler(2, 5, 0, 1, true, TailRule::Drop); },
                                  {"no sample"});
  testing::require_error_mentions([] { DistributedSampler(10, 2, 2); }, {"rank 2", "world of 2"});
  testing::require_error_mentions([] { DistributedSampler(0, 2, 0); }, {"empty"});
  testing::require_error_mentions([] { dist::eval_shard(10, 3, -1); }, {"eval_shard", "rank -1"});
}

TEST_CASE("eval_shard: every test sample exactly once, no padding", "[sampler]") {
  for (int world = 1; world <= 5; ++world)
    for (int64_t n : {0, 1, 4, 7, 10, 11}) {
      std::vector<int> count(static_cast<size_t>(n), 0);
      int64_t most = 0, least = n;
      for (int r = 0; r < world; ++r) {
        const std::vector<int64_t> mine = dist::eval_shard(n, world, r);
        most = std::max<int64_t>(most, static_cast<int64_t>(mine.size()));
        least = std::min<int64_t>(least, static_cast<int64_t>(mine.size()));
        for (int64_t i : mine) ++count[static_cast<size_t>(i)];
      }
      INFO("world " << world << ", n " << n);
      for (int c : count) CHECK(c == 1);
      CHECK(most - least <= 1);
    }
}

// Sample i is an image of the value i; its label is i.
class IndexDataset : public data::Dataset {
 public:
  explicit IndexDataset(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  Shape sample_shape() const override { return Shape{1, 1, 1}; }
  int32_t label(int64_t i) const override { return static_cast<int32_t>(i); }
  std::string name(int64_t i) const override { return "sample" + std::to_string(i); }
  void load(int64_t i, data::SampleRng&, float* out) const override { out[0] = static_cast<float>(i); }

 private:
  int64_t n_;
};

TEST_CASE("DataLoader::start_epoch_over trains on a sampler's share, from any batch", "[sampler][loader]") {
  auto ds = std::make_shared<IndexDataset>(23);
  for (int workers : {0, 2}) {
    auto o = data::LoaderOptions().batch_size(4).workers(workers);
    data::DataLoader loader(ds, o);
    DistributedSampler s(23, 3, 1, 9);
    s.set_epoch(2);
    const std::vector<int64_t> mine = s.indices();  // 8 indices: 2 batches
    REQUIRE(loader.num_batches(s.num_samples()) == 2);
    for (int64_t first : {0, 1}) {
      loader.start_epoch_over(2, mine, first);
      std::vector<int32_t> labels;
      std::vector<float> values;
      data::Batch b;
      int64_t batches = 0;
      while (loader.next(b)) {
        CHECK(b.index == first + batches);
        ++batches;
        labels.insert(labels.end(), b.labels.begin(), b.labels.end());
        const std::vector<float> v = b.images.to_vector();
        values.insert(values.end(), v.begin(), v.end());
      }
      CHECK(batches == 2 - first);
      const std::vector<int64_t> want(mine.begin() + first * 4, mine.end());
      REQUIRE(labels.size() == want.size());
      for (size_t k = 0; k < want.size(); ++k) {
        CHECK(labels[k] == want[k]);
        CHECK(values[k] == static_cast<float>(want[k]));
      }
    }
    loader.start_epoch_over(0, {});  // an empty share (a rank with no evaluation samples) ends at once
    data::Batch b;
    CHECK(!loader.next(b));
    testing::require_error_mentions(
        [&] {
          loader.start_epoch_over(0, {1, 23});
        },
        {"index 23", "out of range"});
    testing::require_error_mentions([&] { loader.start_epoch_over(0, mine, 3); }, {"first batch 3"});
  }
}

// The environment variables of each launcher, as a map.
static dist::LaunchEnv launch_from(const std::map<std::string, std::string>& vars) {
  return dist::detect_launch([&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST_CASE("launch detection: OpenMPI, MPICH/PMI, srun, none", "[launch]") {
  dist::LaunchEnv e = launch_from({{"OMPI_COMM_WORLD_SIZE", "4"},
                                   {"OMPI_COMM_WORLD_RANK", "3"},
                                   {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                   {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
  CHECK(e.launcher == "mpirun");
  CHECK((e.world_size == 4 && e.rank == 3 && e.local_rank == 1 && e.local_size == 2));
  e = launch_from({{"PMI_SIZE", "3"}, {"PMI_RANK", "2"}, {"MPI_LOCALNRANKS", "3"}, {"MPI_LOCALRANKID", "2"}});
  CHECK(e.launcher == "mpiexec");
  CHECK((e.world_size == 3 && e.rank == 2 && e.local_rank == 2 && e.local_size == 3));
  e = launch_from({{"SLURM_STEP_NUM_TASKS", "7"},
                   {"SLURM_PROCID", "5"},
                   {"SLURM_LOCALID", "0"},
                   {"SLURM_NODEID", "2"},
                   {"SLURM_STEP_TASKS_PER_NODE", "3(x2),1"}});
  CHECK(e.launcher == "srun");
  CHECK((e.world_size == 7 && e.rank == 5 && e.local_rank == 0 && e.local_size == 1));
  // A batch script sees SLURM_NTASKS and SLURM_PROCID but is one process.
  e = launch_from({{"SLURM_NTASKS", "8"}, {"SLURM_PROCID", "0"}});
  CHECK(!e.launched());
  CHECK(e.world_size == 1);
  e = launch_from({});
  CHECK((!e.launched() && e.world_size == 1 && e.rank == 0));
  testing::require_error_mentions(
      [] {
        launch_from({{"OMPI_COMM_WORLD_SIZE", "2x"}});
      },
      {"OMPI_COMM_WORLD_SIZE", "2x"});
  testing::require_error_mentions(
      [] {
        launch_from({{"PMI_SIZE", "2"}, {"PMI_RANK", "2"}});
      },
      {"rank 2", "world of 2"});
}

#if !RESNET_HAVE_MPI
TEST_CASE("without MPI: a single process runs, one of several copies is refused", "[launch]") {
  unsetenv("OMPI_COMM_WORLD_SIZE");
  unsetenv("PMI_SIZE");
  unsetenv("SLURM_STEP_NUM_TASKS");
  unsetenv("SLURM_STEP_ID");
  auto g = dist::init();
  CHECK(g->backend_name() == "single");
  CHECK(g->size() == 1);
  CHECK(dist::describe_world(*g).find("world 1 (single): rank 0 cpu on ") == 0);
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  setenv("OMPI_COMM_WORLD_RANK", "1", 1);
  testing::require_error_mentions([] { dist::init(); },
                                  {"started as rank 1 of 2 by mpirun", "built without MPI", "libopenmpi-dev",
                                   "refusing to train 2 copies side by side"});
  // mpirun -np 1 is a world of one: allowed.
  setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
  setenv("OMPI_COMM_WORLD_RANK", "0", 1);
  CHECK(dist::init()->backend_name() == "single");
  unsetenv("OMPI_COMM_WORLD_SIZE");
  unsetenv("OMPI_COMM_WORLD_RANK");
}
#endif
