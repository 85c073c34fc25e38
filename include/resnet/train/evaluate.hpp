// Evaluation: mean cross-entropy (no smoothing), top-1 accuracy and any further metrics (train/metrics.hpp)
// over a dataset, sharded over the ranks (rank r takes samples r, r + W, ...) with the sums combined by
// all_reduce_host, so the result covers every sample exactly once whatever the world size. Every rank
// returns the same numbers. With flip_tta each image is also run mirrored and the two softmax
// probabilities averaged (infer/tta.hpp): the loss is -log of the mean probability of the label, the
// accuracy and metrics read the log of the mean probabilities.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "resnet/autograd/grad_mode.hpp"
#include "resnet/data/loader.hpp"
#include "resnet/core/arg.hpp"
#include "resnet/dist/process_group.hpp"
#include "resnet/infer/tta.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/ops/ops.hpp"
#include "resnet/train/input.hpp"
#include "resnet/train/metrics.hpp"
#include "resnet/train/shard.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

struct EvalResult {
  double loss = 0, acc = 0;
  int64_t images = 0;   // readable samples over all ranks
  int64_t correct = 0;  // over all ranks
  int64_t classes = 0;  // the model's outputs (known when metrics were asked for)
  std::map<std::string, std::vector<double>> metrics;  // Metric::name() -> Metric::values()
};

struct EvalOptions {
  RESNET_ARG(int64_t, batch) = 64;  // global: each rank runs batch / W images at a time (at least 1)
  RESNET_ARG(int, workers) = 1;
  RESNET_ARG(int, prefetch) = 2;
  // Called once per unreadable file (default: a warning on stderr); `progress` after each local batch.
  RESNET_ARG(std::function<void(const std::string&)>, warn);
  RESNET_ARG(std::function<void(int64_t done, int64_t total)>, progress);
  RESNET_ARG(std::shared_ptr<SkipLog>, skips);  // records unreadable samples (and prints each warning once)
  RESNET_ARG(std::vector<std::shared_ptr<const Metric>>, metrics);  // beyond the loss and top-1 accuracy
  RESNET_ARG(bool, flip_tta) = false;  // average the image's and its mirror's probabilities
  RESNET_ARG(int, size) = 0;           // > 0: images of this size (Dataset::load_resized); 0: the set's own
};

namespace detail {
// The metrics' counts over all ranks (collectives on every rank, also one that saw no sample): first the
// number of classes, which only a rank with a batch knows, then the counts in one all_reduce_host.
void reduce_metrics(const std::vector<std::shared_ptr<const Metric>>& metrics,
                    std::vector<std::vector<double>>& counts, int64_t classes, dist::ProcessGroup& pg,
                    EvalResult& r);
}  // namespace detail

template <typename T>
EvalResult evaluate(nn::Module<T>& model, const std::shared_ptr<const data::Dataset>& set,
                    const EvalOptions& o, dist::ProcessGroup& pg) {
  RESNET_CHECK(set != nullptr, "evaluate: null dataset");
  const Device device = model_device(model);
  const int w = pg.size();
  std::vector<int64_t> order(static_cast<size_t>(set->size()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  const int64_t local = std::max<int64_t>(1, o.batch() / w), global = local * w;
  const int64_t batches = (set->size() + global - 1) / global;
  auto shard = std::make_shared<EpochShard>(set, shard_of(order, global, 0, batches, pg.rank(), w), 0, 0,
                                            o.skips(), o.size());
  double loss_sum = 0, correct = 0, seen = 0;
  std::vector<std::vector<double>> counts(o.metrics().size());
  int64_t classes = 0;
  const bool was_training = model.is_training();
  if (shard->size() > 0) {  // a rank may hold nothing of a set smaller than the world
    NoGradGuard no_grad;
    model.eval();
    auto lo = data::LoaderOptions().batch_size(local).workers(o.workers()).prefetch(o.prefetch());
    if (o.warn())
      lo.warn(o.warn());
    else if (o.skips())
      lo.warn([s = o.skips()](const std::string& m) { s->warn(m); });
    data::DataLoader loader(shard, lo);
    loader.start_epoch(0);
    data::Batch b;
    int64_t done = 0;
    while (loader.next(b)) {
      const int64_t n = b.size();
      Tensor<T> logits = model.forward(to_input<T>(b.images, device));
      const int64_t k = logits.dim(1);
      std::vector<float> l;
      if (o.flip_tta()) {
        const std::vector<float> mirrored =
            host_floats(model.forward(to_input<T>(infer::flip_images(b.images), device)));
        const std::vector<double> lp =
            infer::flip_mean_log_probabilities(host_floats(logits), mirrored, n, k);
        for (int64_t i = 0; i < n; ++i) {
          const int32_t label = b.labels[static_cast<size_t>(i)];
          RESNET_CHECK(label >= 0 && label < k, "evaluate: label ", label, " is not one of the model's ", k,
                       " classes");
          loss_sum -= lp[static_cast<size_t>(i * k + label)];
        }
        l.assign(lp.begin(), lp.end());
      } else {
        Tensor<int32_t> y = Tensor<int32_t>::from_vector(b.labels, {n}).to(device);
        loss_sum += static_cast<double>(cross_entropy(logits, y).item()) * static_cast<double>(n);
        l = host_floats(logits);
      }
      for (int64_t i = 0; i < n; ++i) {
        const float* row = &l[static_cast<size_t>(i * k)];
        if (std::max_element(row, row + k) - row == b.labels[static_cast<size_t>(i)]) ++correct;
      }
      if (!o.metrics().empty()) {
        classes = k;
        for (int32_t label : b.labels)
          RESNET_CHECK(label >= 0 && label < k, "evaluate: label ", label, " is not one of the model's ", k,
                       " classes");
        for (size_t m = 0; m < o.metrics().size(); ++m) {
          counts[m].resize(o.metrics()[m]->size(k), 0.0);
          o.metrics()[m]->add(l.data(), b.labels.data(), n, k, counts[m].data());
        }
      }
      seen += static_cast<double>(n);
      if (o.progress()) o.progress()(++done, loader.num_batches());
    }
  }
  if (was_training) model.train();
  std::vector<double> s = pg.all_reduce_host({loss_sum, correct, seen});
  RESNET_CHECK(s[2] > 0, "evaluate: no readable images in the ", set->size(), "-sample set (rank ", pg.rank(),
               ")");
  EvalResult r;
  r.loss = s[0] / s[2];
  r.acc = s[1] / s[2];
  r.images = static_cast<int64_t>(s[2]);
  r.correct = static_cast<int64_t>(s[1]);
  if (!o.metrics().empty()) detail::reduce_metrics(o.metrics(), counts, classes, pg, r);
  return r;
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/train/evaluate_inl.hpp"
#endif
