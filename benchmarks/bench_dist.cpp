// bench_dist: data-parallel training steps (forward, loss, backward with bucketed gradient all-reduce, SGD)
// at one global batch, on one process or as one of N ranks under mpirun. Rank 0 prints images/s and where
// the step's time went: the whole step, the part of backward() rank 0 spent waiting for the last
// all-reduces, the exposed communication (per step the least any rank waited: the rank whose backward
// ended last waits only for the network, the others also for it), and the time MPI was busy.
//
//   bench_dist --threads 2                                         # 1 rank x 2 threads
//   mpirun --allow-run-as-root -np 2 bench_dist --threads 1         # 2 ranks x 1 thread, same global batch
//
// tools/bench_dist.sh runs both, alternating, in one invocation and prints their ratio.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "resnet/dist/data_parallel.hpp"
#include "resnet/dist/init.hpp"
#include "resnet/resnet.hpp"
#include "resnet/train/recipe_fields.hpp"
#include "flags.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int run(int argc, char** argv) {
  std::string sync_bn = "off", bf16_grads = "off";
  int64_t global = 16;
  double bucket_mb = 25;
  flags::NetworkLoop shape;  // resnet18, 128 px, 1000 classes, 1 thread, 10 steps after 3
  CLI::App app("Data-parallel training steps, one rank or many (mpirun).", "bench_dist");
  flags::setup(app);
  flags::add_network_loop(app, shape, resnet::train::recipe_archs());
  app.add_option("--batch", global, "global batch (split evenly over the ranks)")
      ->option_text("N")
      ->check(flags::int_in(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--bucket-mb", bucket_mb, "gradient bucket size")
      ->option_text("MB")
      ->check(flags::number_in(0.001, 1e6))
      ->capture_default_str();
  app.add_option("--sync-bn", sync_bn, "BatchNorm statistics over all ranks")
      ->option_text("on|off")
      ->check(flags::on_off())
      ->capture_default_str();
  app.add_option("--bf16-gradients", bf16_grads, "all-reduce the gradients in bfloat16 (half the bytes)")
      ->option_text("on|off")
      ->check(flags::on_off())
      ->capture_default_str();
  const int parsed = flags::parse(app, argc, argv);
  if (parsed >= 0) return parsed;
  const std::string& arch = shape.arch;
  const int64_t size = shape.size, classes = shape.classes, steps = shape.steps, warmup = shape.warmup;
  const int threads = shape.threads;
  resnet::set_num_threads(threads);
  auto group = resnet::dist::init(resnet::Device::cpu());
  RESNET_CHECK(global % group->size() == 0, "--batch ", global, " does not divide by the world size ",
               group->size());
  const int64_t local = global / group->size();

  auto mo = resnet::models::ResNetOptions().num_classes(classes).seed(1);
  auto model = resnet::models::resnet<float>(arch, mo);
  auto dpo = resnet::dist::DataParallelOptions()
                 .bucket_bytes(static_cast<size_t>(bucket_mb * (1 << 20)))
                 .sync_batchnorm(flags::is_on(sync_bn))
                 .bf16_gradients(flags::is_on(bf16_grads));
  auto net = std::make_shared<resnet::dist::DataParallel<float>>(model, group, dpo);
  net->train();
  auto so = resnet::optim::SGDOptions().lr(0.01).momentum(0.9).weight_decay(1e-4);
  resnet::optim::SGD<float> opt(net->named_parameters(), so);

  resnet::Generator gen(100 + static_cast<uint64_t>(group->rank()));
  auto x = resnet::Tensor<float>::randn(resnet::Shape{local, 3, size, size}, gen);
  std::vector<int32_t> labels_v(static_cast<size_t>(local));
  for (int64_t i = 0; i < local; ++i)
    labels_v[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7 + group->rank()) % classes);
  auto labels = resnet::Tensor<int32_t>::from_vector(labels_v, resnet::Shape{local});

  auto* mpi = dynamic_cast<resnet::dist::MpiProcessGroup*>(group.get());
  double step_s = 0, wait_s = 0, busy_s = 0;
  std::vector<double> waits(static_cast<size_t>(steps * group->size()), 0.0);  // [step][rank]
  for (int64_t s = 0; s < warmup + steps; ++s) {
    const bool timed = s >= warmup;
    if (s == warmup) {
      group->barrier();
      net->reset_stats();
    }
    const double busy0 = mpi ? mpi->stats().busy_seconds : 0.0;
    const double wait0 = net->stats().wait_seconds;
    const auto t0 = Clock::now();
    opt.zero_grad();
    auto loss = resnet::cross_entropy(net->forward(x), labels);
    loss.backward();
    opt.step();
    if (timed) {
      step_s += seconds_since(t0);
      busy_s += (mpi ? mpi->stats().busy_seconds : 0.0) - busy0;
      waits[static_cast<size_t>((s - warmup) * group->size() + group->rank())] =
          net->stats().wait_seconds - wait0;
    }
  }
  wait_s = net->stats().wait_seconds;
  // The slowest rank sets the pace.
  std::vector<double> per_rank(static_cast<size_t>(group->size()), 0.0);
  per_rank[static_cast<size_t>(group->rank())] = step_s;
  per_rank = group->all_reduce_host(per_rank);
  double worst = 0;
  for (double v : per_rank) worst = std::max(worst, v);
  waits = group->all_reduce_host(waits);
  double exposed_s = 0;
  for (int64_t s = 0; s < steps; ++s) {
    const auto first = waits.begin() + s * group->size();
    exposed_s += *std::min_element(first, first + group->size());
  }
  if (group->is_main()) {
    const double step = worst / static_cast<double>(steps);
    std::printf(
        "bench_dist %s batch %lld (%lld per rank) %lldpx: %d rank(s) x %d thread(s): %.2f img/s, "
        "step %.1f ms, waiting for all-reduce %.2f ms/step (%.1f%%), exposed %.2f ms/step (%.1f%%), "
        "MPI busy %.2f ms/step%s\n",
        arch.c_str(), static_cast<long long>(global), static_cast<long long>(local),
        static_cast<long long>(size), group->size(), threads, static_cast<double>(global) / step, step * 1e3,
        wait_s / steps * 1e3, 100.0 * wait_s / step_s, exposed_s / steps * 1e3, 100.0 * exposed_s / worst,
        busy_s / steps * 1e3, flags::is_on(bf16_grads) ? ", bfloat16 gradients" : "");
  }
  group->barrier();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    resnet::dist::abort_job(std::string("bench_dist: ") + e.what());
  }
}
