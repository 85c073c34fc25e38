// bench_allreduce_skew: how long the last rank to join an all-reduce waits for it, as a function of how
// late it joins. Each step: a barrier, then every rank but the last calls all_reduce_async at once and the
// last after sleeping --skew-ms, as in data-parallel training, where the rank whose backward ends last
// joins the last bucket's all-reduce after the others. Rank 0 prints, per skew, the median over steps of
// each rank's time from its own call to the result (the late rank's is the communication it cannot hide).
// If the early ranks could move part of the data before the late one joins, its time falls with the skew.
//
//   mpirun -np 2 bench_allreduce_skew --mb 25.3 --skew-ms 0,10,20,40
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "flags.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/dist/init.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int run(int argc, char** argv) {
  double mb = 25.3;
  std::string skews = "0,5,10,20,40";
  int64_t steps = 9, warmup = 2;
  std::string bf16 = "off";
  CLI::App app("The late rank's wait in an all-reduce, against how late it joins.", "bench_allreduce_skew");
  flags::setup(app);
  app.add_option("--mb", mb, "payload per rank in MB (10^6 bytes) of float32")
      ->option_text("MB")
      ->check(flags::number_in(0.001, 1e4))
      ->capture_default_str();
  app.add_option("--skew-ms", skews, "how late the last rank joins, a list")
      ->option_text("MS,...")
      ->check(flags::list_of(flags::number_in(0, 1e5)))
      ->capture_default_str();
  app.add_option("--steps", steps, "timed all-reduces per skew")
      ->check(flags::int_in(1, 1000))
      ->capture_default_str();
  app.add_option("--warmup", warmup, "untimed all-reduces first")
      ->check(flags::int_in(0, 1000))
      ->capture_default_str();
  app.add_option("--bf16", bf16, "all-reduce bfloat16 words (half the bytes)")
      ->option_text("on|off")
      ->check(flags::on_off())
      ->capture_default_str();
  const int parsed = flags::parse(app, argc, argv);
  if (parsed >= 0) return parsed;

  auto group = resnet::dist::init(resnet::Device::cpu());
  const int rank = group->rank(), world = group->size();
  const auto n = static_cast<int64_t>(mb * 1e6 / 4);
  auto f32 = resnet::Tensor<float>::full(resnet::Shape{n}, 1.0f);
  resnet::TensorBase t = f32;
  if (flags::is_on(bf16)) t = resnet::Tensor<resnet::bf16_t>::zeros(resnet::Shape{n});
  for (const std::string& s : flags::split_list(skews)) {
    const double skew_ms = std::stod(s);
    std::vector<double> mine;
    for (int64_t i = 0; i < warmup + steps; ++i) {
      group->barrier();
      if (rank == world - 1 && skew_ms > 0)
        std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(skew_ms * 1e3)));
      const auto t0 = Clock::now();
      group->all_reduce_async(t, resnet::dist::ReduceOp::Sum)->wait();
      if (i >= warmup) mine.push_back(std::chrono::duration<double>(Clock::now() - t0).count() * 1e3);
    }
    std::vector<double> per_rank(static_cast<size_t>(world), 0.0);
    per_rank[static_cast<size_t>(rank)] = median(mine);
    per_rank = group->all_reduce_host(per_rank);
    if (group->is_main()) {
      std::printf(
          "bench_allreduce_skew %.2f MB%s %d ranks: skew %.1f ms: early rank %.2f ms, late rank %.2f ms\n",
          mb * (flags::is_on(bf16) ? 0.5 : 1.0), flags::is_on(bf16) ? " (bfloat16)" : "", world, skew_ms,
          per_rank[0], per_rank[static_cast<size_t>(world - 1)]);
      std::fflush(stdout);
    }
  }
  group->barrier();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    resnet::dist::abort_job(std::string("bench_allreduce_skew: ") + e.what());
  }
}
