// CUDA graphs: the host-only logic everywhere (GraphPolicy's per-shape warm-up, capture, replay
// and eviction; the refusals on a CPU device, in the API and in the Trainer), and with `--gpu` (hidden [.gpu]
// cases, test_cuda_graph_gpu, skipped without a device) the runtime (capture, replay, the private pool freed
// with the graph, operations refused by name during capture) and the training step: N replayed steps give
// the same parameters as N eager steps, bit for bit in double, within tolerance in float32, across a change
// of batch shape that captures again.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "resnet/train/graph_step.hpp"
#include "resnet/train/train.hpp"
#include "test_util.hpp"

using namespace resnet;
using train::GraphAction;
using train::GraphPolicy;

namespace {

std::string actions(GraphPolicy& p, const std::vector<GraphPolicy::Key>& keys) {
  std::string out;
  for (auto& k : keys) {
    GraphPolicy::Decision d = p.next(k);
    out += out.empty() ? "" : " ";
    out += train::graph_action_name(d.action);
    if (d.evict) out += "(evict " + std::to_string(d.evicted.front()) + ")";
  }
  return out;
}

class Ones : public data::Dataset {
 public:
  int64_t size() const override { return 4; }
  Shape sample_shape() const override { return Shape{1, 4, 4}; }
  int32_t label(int64_t i) const override { return static_cast<int32_t>(i % 2); }
  std::string name(int64_t i) const override { return "ones#" + std::to_string(i); }
  void load(int64_t, data::SampleRng&, float* out) const override {
    for (int k = 0; k < 16; ++k) out[k] = 1.f;
  }
};

}  // namespace

TEST_CASE("graph policy: warm-up per shape, then one capture, then replays") {
  GraphPolicy p(2, 2);
  const GraphPolicy::Key a{4}, b{3};
  CHECK(actions(p, {a, a, a, a}) == "eager eager capture replay");
  // The last, smaller batch is a shape of its own: warmed up on its own, never disturbing a's graph.
  CHECK(actions(p, {b, a, b, a, b, b}) == "eager replay eager replay capture replay");
  CHECK(p.graphs() == 2);
}

TEST_CASE("graph policy: the least recently used graph is evicted; a warm shape captures again at once") {
  GraphPolicy p(1, 1);
  const GraphPolicy::Key a{4}, b{3};
  CHECK(actions(p, {a, a, a, b, b}) == "eager capture replay eager capture(evict 4)");
  CHECK(p.graphs() == 1);
  CHECK(actions(p, {a, a}) == "capture(evict 3) replay");
  p.invalidate(a);  // a value frozen into a's graph changed
  CHECK(p.graphs() == 0);
  CHECK(actions(p, {a, a}) == "capture replay");
}

TEST_CASE("graph policy: refuses no warm-up and no graphs") {
  CHECK_THROWS_WITH(GraphPolicy(0, 2), Catch::Matchers::Contains("at least one eager warm-up step"));
  CHECK_THROWS_WITH(GraphPolicy(2, 0), Catch::Matchers::Contains("max_graphs must be at least 1, got 0"));
}

TEST_CASE("cuda graph on a CPU device is an error naming the device, in the API and in the Trainer") {
  auto model = std::make_shared<nn::Sequential<float>>();
  Generator gen(1);
  model->push_back(std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(1, 2, 3).padding(1), gen));
  model->push_back(std::make_shared<nn::GlobalAvgPool2d<float>>());
  auto so = optim::SGDOptions().lr(0.1);
  auto opt = std::make_shared<optim::SGD<float>>(model->named_parameters(), so);
  CHECK_THROWS_WITH(train::GraphedStep<float>(Device::cpu(), train::standard_step<float>(*model, *opt)),
                    Catch::Matchers::Contains("CUDA graphs need a CUDA device, but the step runs on cpu"));
  train::TrainerOptions o;
  o.cuda_graph(true);
  o.batch(2);
  o.progress(false);
  o.handle_signals(false);
  CHECK_THROWS_WITH(
      train::Trainer<float>(model, opt, std::make_shared<Ones>(), nullptr, o),
      Catch::Matchers::Contains("cuda_graph (--cuda-graph on) needs a CUDA device, but the model "
                                "is on cpu"));
  o.cuda_graph(false);
  CHECK_NOTHROW(train::Trainer<float>(model, opt, std::make_shared<Ones>(), nullptr, o));
}

#if RESNET_WITH_CUDA
namespace {

const Device kGpu = Device::cuda(0);

template <typename T>
std::shared_ptr<models::ResNet<T>> small_resnet(uint64_t seed) {
  auto o = models::ResNetOptions().num_classes(5).seed(seed);
  auto net = models::resnet<T>("resnet18", o);
  net->to(kGpu);
  net->train();
  return net;
}

// Batch k of the run: its images (drawn in double, rounded to T) and labels, on the GPU.
template <typename T>
std::pair<Tensor<T>, Tensor<int32_t>> batch(int64_t k, int64_t n, int64_t size) {
  Generator gen(1000 + static_cast<uint64_t>(k));
  Tensor<double> xd = Tensor<double>::randn({n, 3, size, size}, gen);
  std::vector<T> xv(static_cast<size_t>(xd.numel()));
  for (size_t i = 0; i < xv.size(); ++i) xv[i] = static_cast<T>(xd.data()[i]);
  std::vector<int32_t> yv(static_cast<size_t>(n));
  for (size_t i = 0; i < yv.size(); ++i) yv[i] = static_cast<int32_t>((static_cast<size_t>(k) * 3 + i) % 5);
  return {Tensor<T>::from_vector(xv, {n, 3, size, size}, kGpu), Tensor<int32_t>::from_vector(yv, {n}, kGpu)};
}

// Parameters, then buffers (running statistics and num_batches_tracked), as doubles.
template <typename T>
std::vector<double> state_of(const nn::Module<T>& m) {
  std::vector<double> out;
  for (auto& kv : m.state_dict()) {
    const TensorBase& t = kv.second;
    if (t.dtype() == DType::I64) {
      out.push_back(static_cast<double>(Tensor<int64_t>(t).to(Device::cpu()).data()[0]));
      continue;
    }
    for (auto v : Tensor<acc_t<T>>(t).contiguous().to_vector()) out.push_back(static_cast<double>(v));
  }
  return out;
}

struct RunResult {
  std::vector<double> state;
  std::vector<double> losses;
  std::string actions;
  int64_t optimizer_steps = 0;
  size_t pool_bytes = 0;
};

// `sizes[k]` is the batch of step k. graph: through GraphedStep (warm-up 2), else eager standard steps.
template <typename T>
RunResult train_run(bool graph, const std::vector<int64_t>& sizes) {
  using P = acc_t<T>;
  auto net = small_resnet<T>(7);
  auto so = optim::SGDOptions().lr(0.05).momentum(0.9).weight_decay(1e-4).nesterov(true);
  auto opt = std::make_shared<optim::SGD<P>>(net->named_parameters(), so);
  auto fn = train::standard_step<T>(*net, *opt, 0.1);
  auto go = train::GraphedStepOptions().warmup(2);
  std::unique_ptr<train::GraphedStep<T>> gs;
  if (graph) {
    gs = std::make_unique<train::GraphedStep<T>>(kGpu, fn, go);
    gs->watch(*net);
    gs->watch(*opt);
  }
  RunResult r;
  for (size_t k = 0; k < sizes.size(); ++k) {
    auto b = batch<T>(static_cast<int64_t>(k), sizes[k], 32);
    Tensor<T> loss = gs ? gs->run(b.first, b.second) : fn(b.first, b.second);
    r.losses.push_back(static_cast<double>(loss.item()));
    if (gs)
      r.actions += std::string(r.actions.empty() ? "" : " ") + train::graph_action_name(gs->last_action());
  }
  if (gs) r.pool_bytes = gs->pool_bytes();
  r.state = state_of(*net);
  r.optimizer_steps = opt->step_count();
  return r;
}

size_t first_difference(const std::vector<double>& a, const std::vector<double>& b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(double)) != 0) return i;
  return a.size() == b.size() ? a.size() : std::min(a.size(), b.size());
}

}  // namespace

TEST_CASE("cuda graph: capture, replay on new data, pool freed with the graph", "[.gpu]") {
  Tensor<float> a = Tensor<float>::full({1000}, 1.f, kGpu), b = Tensor<float>::full({1000}, 2.f, kGpu);
  Tensor<float> out;
  cuda::synchronize();
  const size_t pools0 = cuda::graph_pool_bytes(0);
  const cuda::MemoryStats m0 = cuda::memory_stats(0);
  {
    cuda::Graph g;
    g.capture([&] { out = add(add(a, b), b).detach(); });
    REQUIRE(g.captured());
    CHECK(g.nodes() >= 2);
    CHECK_FALSE(cuda::is_capturing(0));
    const size_t pool = g.pool_bytes();
    CHECK(pool > 0);  // the intermediate and the output came from the private pool
    CHECK(cuda::graph_pool_bytes(0) == pools0 + pool);
    g.replay();
    CHECK(out.to_vector()[999] == 5.f);
    copy_into(a, Tensor<float>::full({1000}, 10.f, kGpu));  // new data into the same tensor
    g.replay();
    g.replay();
    CHECK(out.to_vector()[0] == 14.f);
    CHECK(g.replays() == 3);
    out = Tensor<float>();
  }
  cuda::synchronize();
  CHECK(cuda::graph_pool_bytes(0) == pools0);
  CHECK(cuda::memory_stats(0).reserved_bytes <= m0.reserved_bytes);
}

TEST_CASE("cuda graph: a host synchronisation inside the capture fails naming the op", "[.gpu]") {
  Tensor<float> a = Tensor<float>::full({16}, 3.f, kGpu);
  cuda::Graph g;
  CHECK_THROWS_WITH(g.capture([&] { (void)add(a, a).item(); }),
                    Catch::Matchers::Contains("copy to host") &&
                        Catch::Matchers::Contains("during CUDA graph capture on cuda:0"));
  CHECK_FALSE(g.captured());
  CHECK_FALSE(cuda::is_capturing(0));
  CHECK_THROWS_WITH(g.capture([&] { cuda::synchronize(); }),
                    Catch::Matchers::Contains("synchronize during CUDA graph capture"));
  CHECK_THROWS_WITH(g.capture([&] { (void)Tensor<float>::full({4}, 1.f, kGpu); }),
                    Catch::Matchers::Contains("copy to device during CUDA graph capture"));
  // A convolution whose algorithm was never chosen: the search cannot run inside a capture.
  Tensor<float> x = Tensor<float>::full({1, 3, 13, 11}, 1.f, kGpu),
                w = Tensor<float>::full({2, 3, 3, 3}, 1.f, kGpu);
  CHECK_THROWS_WITH(g.capture([&] { (void)conv2d(x, w, ConvParams{}); }),
                    Catch::Matchers::Contains("cuDNN algorithm search (conv2d) during CUDA graph capture"));
  // The thread works normally afterwards.
  CHECK(add(a, a).to_vector()[0] == 6.f);
  CHECK(cuda::graph_pool_bytes(0) == 0);
}

TEST_CASE("cuda graph: replayed training steps equal eager ones bit for bit in double", "[.gpu]") {
  cuda::set_tf32(false);
  // Batch 4 twice for warm-up, captured at step 3, replayed; then the smaller 3 (warm-up, capture, replay);
  // then 4 again (its graph is still there).
  const std::vector<int64_t> sizes{4, 4, 4, 4, 4, 3, 3, 3, 3, 4, 4};
  RunResult eager = train_run<double>(false, sizes);
  RunResult again = train_run<double>(false, sizes);
  // The reference must repeat itself (the max-pool backward's atomics or a non-deterministic cuDNN algorithm
  // would make bit-for-bit meaningless): a failure here is about the eager kernels, not the graphs.
  INFO("eager runs differ first at state value " << first_difference(eager.state, again.state));
  REQUIRE(first_difference(eager.state, again.state) == eager.state.size());
  RunResult graph = train_run<double>(true, sizes);
  CHECK(graph.actions == "eager eager capture replay replay eager eager capture replay replay replay");
  CHECK(graph.optimizer_steps == eager.optimizer_steps);
  CHECK(graph.pool_bytes > 0);
  REQUIRE(graph.state.size() == eager.state.size());
  INFO("graph and eager differ first at state value " << first_difference(graph.state, eager.state));
  CHECK(first_difference(graph.state, eager.state) == eager.state.size());
  CHECK(first_difference(graph.losses, eager.losses) == eager.losses.size());
  // Every graph and its pool are gone with the GraphedStep.
  cuda::synchronize();
  CHECK(cuda::graph_pool_bytes(0) == 0);
}

TEST_CASE("cuda graph: replayed training steps match eager ones in float32", "[.gpu]") {
  cuda::set_tf32(false);
  const std::vector<int64_t> sizes{4, 4, 4, 4, 4, 4};
  RunResult eager = train_run<float>(false, sizes);
  RunResult graph = train_run<float>(true, sizes);
  CHECK(graph.actions == "eager eager capture replay replay replay");
  REQUIRE(graph.state.size() == eager.state.size());
  double worst = 0, scale = 0;
  for (size_t i = 0; i < eager.state.size(); ++i) {
    REQUIRE(std::isfinite(graph.state[i]));
    worst = std::max(worst, std::abs(graph.state[i] - eager.state[i]));
    scale = std::max(scale, std::abs(eager.state[i]));
  }
  INFO("worst difference " << worst << " of values up to " << scale);
  CHECK(worst <= 1e-4 * scale);  // the same kernels in the same order: only atomics' order may differ
  for (size_t k = 0; k < eager.losses.size(); ++k) CHECK(std::abs(graph.losses[k] - eager.losses[k]) <= 1e-4);
}
#endif

#if RESNET_WITH_CUDA
namespace {

// The test seam for a non-finite loss in a graphed step: the loss the test installs is multiplied by a
// device scalar, which this callback sets to NaN just before step `step`. A replay reads the scalar's
// memory, so the choice made on the host reaches captured steps too.
class NanBefore : public train::Callback {
 public:
  NanBefore(Tensor<float> factor, int64_t step) : factor_(std::move(factor)), step_(step) {}
  std::string name() const override { return "nan_before"; }
  train::Control on_step_end(const train::StepInfo& s) override {
    if (s.step + 1 == step_) {
      const float nan = std::nanf("");
      write_async(factor_, 0, &nan, 1);
    }
    return train::Control::Continue;
  }

 private:
  Tensor<float> factor_;
  int64_t step_;
};

// A Trainer run on the GPU (conv + global pool over Ones, batch 2: 2 steps an epoch, 3 epochs), graphs on
// or off, optionally with step `nan_step`'s loss made NaN (NanBefore) or stopped after `stop_after` steps.
// Returns the final parameters.
std::vector<double> trainer_run(bool graph, int64_t nan_step, int64_t stop_after, train::FitStatus* status) {
  auto model = std::make_shared<nn::Sequential<float>>();
  Generator gen(7);
  model->push_back(std::make_shared<nn::Conv2d<float>>(nn::Conv2dOptions(1, 2, 3).padding(1), gen));
  model->push_back(std::make_shared<nn::GlobalAvgPool2d<float>>());
  model->to(kGpu);
  auto so = optim::SGDOptions().lr(0.1).momentum(0.9);
  auto opt = std::make_shared<optim::SGD<float>>(model->named_parameters(), so);
  train::TrainerOptions o;
  o.cuda_graph(graph);
  o.epochs(3);
  o.batch(2);
  o.log_every(100);
  o.workers(0);
  o.progress(false);
  o.handle_signals(false);
  o.out_dir((std::filesystem::temp_directory_path() /
             ("resnet_graph_trainer_" + std::to_string(::getpid()) + (graph ? "_g" : "_e")))
                .string());
  std::filesystem::remove_all(o.out_dir());
  train::Callbacks cb;
  int64_t steps = 0;
  if (stop_after > 0) {
    cb.on_step_end = [&steps](const train::StepInfo&) { ++steps; };
    cb.should_stop = [&steps, stop_after] { return steps == stop_after - 1; };  // true during that step
  }
  train::Trainer<float> t(model, opt, std::make_shared<Ones>(), nullptr, o, cb);
  if (nan_step > 0) {
    Tensor<float> factor = Tensor<float>::from_vector({1.0f}, Shape{}).to(kGpu);
    t.set_loss([factor](const Tensor<float>& logits, const Tensor<int32_t>& labels) {
      return mul(cross_entropy(logits, labels), factor);
    });
    t.add_callback(std::make_shared<NanBefore>(factor, nan_step));
  }
  *status = t.fit().status;
  std::filesystem::remove_all(o.out_dir());
  std::vector<double> out;
  for (auto& kv : model->named_parameters())
    for (float v : kv.second.to_vector()) out.push_back(static_cast<double>(v));
  return out;
}

}  // namespace

TEST_CASE("cuda graph: in the Trainer a NaN loss skips its own update and every later one", "[.gpu]") {
  // Steps 1-2 eager (warm-up), 3 captured, 4-6 replayed; step 5's loss is NaN, so the weights must be those
  // of a run stopped after step 4, in both modes.
  train::FitStatus s_nan, s_stop, s_eager;
  const std::vector<double> nan_graph = trainer_run(true, 5, 0, &s_nan);
  const std::vector<double> four_graph = trainer_run(true, 0, 4, &s_stop);
  const std::vector<double> four_eager = trainer_run(false, 0, 4, &s_eager);
  CHECK(s_nan == train::FitStatus::NonFinite);
  CHECK(s_stop == train::FitStatus::Stopped);
  CHECK(s_eager == train::FitStatus::Stopped);
  for (double v : nan_graph) REQUIRE(std::isfinite(v));
  CHECK(nan_graph == four_graph);
  CHECK(testing::relative_error(four_graph, four_eager) < 1e-5);
}
#endif
