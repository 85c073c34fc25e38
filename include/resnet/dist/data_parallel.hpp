// DataParallel: PyTorch's DistributedDataParallel for any nn::Module. Every rank holds a replica and its
// own share of the batch; after backward() every rank holds the gradients averaged over all ranks, so the
// same optimizer step keeps the replicas equal.
//
// - Construction broadcasts parameters and buffers from rank 0 (differently initialised ranks start equal).
// - Gradients live in flat buckets: parameters that require grad, in REVERSE order of registration (the
//   order backward produces them), ~bucket_bytes each. Each parameter's .grad is a view into its bucket, so
//   the tape accumulates straight into it (autograd/node.hpp) and a bucket is all-reduced without copies.
//   Gradients accumulate as everywhere else: call the optimizer's zero_grad() (in place) between steps.
// - During backward() a gradient-ready hook (autograd/hooks.hpp) marks each parameter final; when a
//   bucket's last parameter is final it is launched at once with all_reduce_async(Average) (buckets launch
//   in index order, the same on every rank), overlapping the rest of the pass. At the end of the pass,
//   buckets whose parameters got no gradient this pass are launched too (so peers never wait), then every
//   launch is waited for. launch_log() records when each launch happened (tests assert the overlap).
// - no_sync(): backward passes while the guard lives communicate nothing; the next synchronised pass
//   reduces the accumulated sums.
// - It is a Module: forward delegates, train()/eval() reach the model's layers, and named_parameters(),
//   state_dict() and checkpoints use the model's own names (no prefix), so a checkpoint of the wrapped
//   model loads into an unwrapped one. Its registry holds the model's children (and copies of the
//   model's own top-level tensor handles): replace modules and move the model to its device BEFORE
//   wrapping; the parameters' gradients are bucket views, so to() on the wrapper is refused.
// - sync_batchnorm: every BatchNorm2d of the tree becomes a SyncBatchNorm over the group, first.
// - bf16_gradients (PyTorch's bf16_compress_hook): each bucket is divided by the world size, rounded to
//   bfloat16 and summed in bfloat16, then widened back into the bucket: half the bytes on the wire, for
//   gradients rounded to 8 significant bits (every rank gets the same bits, so the replicas stay equal).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/arg.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "resnet/autograd/engine.hpp"
#include "resnet/backend/dispatch.hpp"
#include "resnet/dist/process_group.hpp"
#include "resnet/dist/sync_batchnorm.hpp"
#include "resnet/nn/module.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace dist {

struct DataParallelOptions {
  // Gradient bytes per bucket (a larger parameter gets its own).
  RESNET_ARG(size_t, bucket_bytes) = size_t(25) << 20;
  RESNET_ARG(bool, sync_batchnorm) = false;     // replace every BatchNorm2d by a SyncBatchNorm
  RESNET_ARG(bool, broadcast_at_start) = true;  // parameters and buffers from rank `root` at construction
  RESNET_ARG(int, root) = 0;
  // All-reduce the gradients in bfloat16 (half the bytes; for links slower than the backward pass).
  RESNET_ARG(bool, bf16_gradients) = false;
};

// One bucket launch: which bucket, and how far backward() had got (nodes of its order processed).
struct BucketLaunch {
  size_t bucket = 0;
  int64_t nodes_run = 0;
  int64_t nodes_total = 0;
  bool at_end = false;  // launched by the end-of-pass step (a parameter without gradient this pass)
};

struct DataParallelStats {
  int64_t synchronised_passes = 0;  // backward passes that reduced gradients
  double wait_seconds = 0.0;        // summed over those passes
};

template <typename T>
class DataParallel : public nn::Module<T> {
 public:
  using P = acc_t<T>;

  DataParallel(std::shared_ptr<nn::Module<T>> model, std::shared_ptr<ProcessGroup> group,
               DataParallelOptions options = DataParallelOptions())
      : model_(std::move(model)), group_(std::move(group)), opts_(options) {
    RESNET_CHECK(model_ != nullptr, "DataParallel: null model");
    RESNET_CHECK(group_ != nullptr, "DataParallel: null process group");
    RESNET_CHECK(opts_.bucket_bytes() > 0, "DataParallel: bucket_bytes must be positive");
    RESNET_CHECK(opts_.root() >= 0 && opts_.root() < group_->size(), "DataParallel: root ", opts_.root(),
                 " out of range for a world of ", group_->size());
    if (opts_.sync_batchnorm()) convert_sync_batchnorm(*model_, group_);
    adopt_registry();
    if (opts_.broadcast_at_start()) broadcast_state();
    build_buckets();
  }
  ~DataParallel() override {
    // A pass that threw may have left collectives in flight over our buffers.
    for (auto& w : works_)
      if (w) try {
          w->wait();
        } catch (...) {
        }
  }

  Tensor<T> forward(const Tensor<T>& x) override {
    // train()/eval() on the wrapper reach the model's children (shared); the model's own flag follows here.
    if (model_->is_training() != this->is_training()) model_->train(this->is_training());
    return model_->forward(x);
  }
  std::string type_name() const override { return "DataParallel"; }
  Shape summarize(const Shape& in, const std::string& name, int depth,
                  std::vector<nn::LayerSummary>& rows) const override {
    return model_->summarize(in, name, depth, rows);
  }
  bool inference_only() const override { return model_->inference_only(); }

  const std::shared_ptr<nn::Module<T>>& module() const { return model_; }
  const std::shared_ptr<ProcessGroup>& group() const { return group_; }
  const DataParallelOptions& options() const { return opts_; }

  // ---- gradient accumulation without communication
  class NoSync {
   public:
    explicit NoSync(DataParallel& dp) : dp_(&dp), previous_(dp.sync_enabled_) { dp.sync_enabled_ = false; }
    NoSync(NoSync&& o) noexcept : dp_(o.dp_), previous_(o.previous_) { o.dp_ = nullptr; }
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;
    NoSync& operator=(NoSync&&) = delete;
    ~NoSync() {
      if (dp_) dp_->sync_enabled_ = previous_;
    }

   private:
    DataParallel* dp_;
    bool previous_;
  };
  NoSync no_sync() { return NoSync(*this); }
  bool sync_enabled() const { return sync_enabled_; }

  // ---- introspection (tests, logs)
  size_t num_buckets() const { return buckets_.size(); }
  // Parameter names of bucket b, in the order they sit in its buffer.
  std::vector<std::string> bucket_names(size_t b) const {
    std::vector<std::string> out;
    for (const auto& e : buckets_.at(b).entries) out.push_back(e.name);
    return out;
  }
  // The flat gradient buffer of bucket b.
  Tensor<P> bucket_buffer(size_t b) const { return buckets_.at(b).flat; }
  const std::vector<BucketLaunch>& launch_log() const { return log_; }
  // Communication the overlap did not hide: time backward() spent at its end waiting for the buckets'
  // all-reduces (on GPU backends, until the compute stream is ordered after them: no host wait).
  const DataParallelStats& stats() const { return stats_; }
  void reset_stats() { stats_ = DataParallelStats(); }
  void clear_launch_log() { log_.clear(); }

 private:
  struct Entry {
    std::string name;
    Tensor<P> param;
    TensorBase view;  // the parameter's .grad: a view into the bucket
    autograd::GradHookHandle hook;
    bool ready = false;
  };
  struct Bucket {
    Tensor<P> flat;
    Tensor<bf16_t> wire;  // bf16_gradients: what travels
    std::vector<Entry> entries;
    size_t pending = 0;  // entries not yet ready in this pass
    bool launched = false;
  };

  // The wrapper's registry is the model's: its own tensor handles (same data and slot), then its children.
  void adopt_registry() {
    this->train(model_->is_training());  // before children join: they take the wrapper's mode
    this->to(model_->device());          // empty registry: only records the device for adopt()
    for (auto& kv : model_->named_parameters())
      if (kv.first.find('.') == std::string::npos) {
        const bool rg = kv.second.requires_grad();
        own_params_.push_back(kv.second);
        this->register_parameter(kv.first, own_params_.back(), kv.second);
        own_params_.back().set_requires_grad(rg);  // register_parameter turns it on
      }
    for (auto& kv : model_->named_buffers())
      if (kv.first.find('.') == std::string::npos) {
        own_buffers_.push_back(kv.second);
        this->register_buffer(kv.first, own_buffers_.back());
      }
    for (auto& kv : model_->named_children()) this->register_module(kv.first, kv.second);
  }

  void broadcast_state() {
    for (auto& kv : this->state_dict()) {
      TensorBase t = kv.second;
      if (!t.defined() || t.numel() == 0) continue;
      if (dtype_is_floating(t.dtype())) {
        RESNET_CHECK(t.device() == group_->device(), "DataParallel: '", kv.first, "' ", t.describe(),
                     " is not on the ", group_->backend_name(), " group's device ",
                     group_->device().to_string(), "; move the model there before wrapping it");
        group_->broadcast(t, opts_.root());
      } else {
        broadcast_integers(kv.first, t);
      }
    }
  }
  // Counters (num_batches_tracked): through double, exact below 2^53; through the host when the counter
  // is on a device (once, when wrapping: the copies wait).
  void broadcast_integers(const std::string& name, TensorBase& t) {
    RESNET_CHECK(t.dtype() == DType::I64 && t.is_contiguous(), "DataParallel: buffer '", name, "' ",
                 t.describe(), " has no broadcast rule (floating tensors, or int64)");
    Tensor<int64_t> v = Tensor<int64_t>(t).to(Device::cpu());
    std::vector<double> d(static_cast<size_t>(v.numel()));
    for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<double>(v.data()[i]);
    Tensor<double> h =
        Tensor<double>::from_vector(d, Shape{static_cast<int64_t>(d.size())}, group_->device());
    TensorBase hb = h;
    group_->broadcast(hb, opts_.root());
    std::vector<double> back = Tensor<double>(hb).to_vector();
    for (size_t i = 0; i < back.size(); ++i) v.data()[i] = static_cast<int64_t>(back[i]);
    if (!t.device().is_cpu()) copy_into(t, v);
  }

  void build_buckets() {
    auto params = this->named_parameters();
    std::vector<std::vector<size_t>> groups;  // indices into params, reverse registration order
    size_t bytes = 0;
    for (size_t k = params.size(); k-- > 0;) {
      auto& p = params[k].second;
      if (!p.defined() || !p.requires_grad()) continue;  // frozen: no gradient, no bucket
      RESNET_CHECK(p.device() == group_->device(), "DataParallel: parameter '", params[k].first, "' ",
                   p.describe(), " is not on the ", group_->backend_name(), " group's device ",
                   group_->device().to_string(), "; move the model there before wrapping it");
      RESNET_CHECK(p.is_contiguous(), "DataParallel: parameter '", params[k].first, "' is not contiguous");
      const size_t nb = p.nbytes();
      if (groups.empty() || (bytes > 0 && bytes + nb > opts_.bucket_bytes())) {
        groups.emplace_back();
        bytes = 0;
      }
      groups.back().push_back(k);
      bytes += nb;
    }
    buckets_.resize(groups.size());
    for (size_t b = 0; b < groups.size(); ++b) {
      int64_t total = 0;
      for (size_t k : groups[b]) total += params[k].second.numel();
      Bucket& bk = buckets_[b];
      bk.flat = Tensor<P>::zeros({total}, group_->device());
      if (opts_.bf16_gradients()) bk.wire = Tensor<bf16_t>::zeros({total}, group_->device());
      bk.entries.resize(groups[b].size());
      int64_t off = 0;
      for (size_t i = 0; i < groups[b].size(); ++i) {
        Entry& e = bk.entries[i];
        e.name = params[groups[b][i]].first;
        e.param = params[groups[b][i]].second;
        e.view = bk.flat.view_at(off, e.param.shape());
        if (e.param.has_grad()) copy_into(e.view, e.param.grad_base());  // keep a gradient already there
        e.param.set_grad_base(e.view);
        off += e.param.numel();
        e.hook = autograd::add_grad_ready_hook(e.param, [this, b, i](TensorBase&) { on_ready(b, i); });
      }
      bk.pending = bk.entries.size();
    }
  }

  // The tape or the user may have put another tensor in .grad (set to none, assigned): fold it back in.
  static void rebind(Entry& e) {
    TensorBase g = e.param.grad_base();
    if (g.defined() && g.impl() == e.view.impl()) return;
    if (g.defined())
      copy_into(e.view, g);
    else
      Tensor<P>(e.view).zero_();
    e.param.set_grad_base(e.view);
  }

  void begin_pass_if_new() {
    const uint64_t id = autograd::current_backward_id();
    if (id == pass_id_) return;
    wait_all();  // a pass that threw may have left launches in flight
    pass_id_ = id;
    next_launch_ = 0;
    for (auto& bk : buckets_) {
      bk.pending = bk.entries.size();
      bk.launched = false;
      for (auto& e : bk.entries) e.ready = false;
    }
    autograd::queue_backward_end_callback([this] { finish_pass(); });
  }

  void on_ready(size_t b, size_t i) {
    if (!sync_enabled_) return;
    begin_pass_if_new();
    Entry& e = buckets_[b].entries[i];
    if (e.ready) return;
    rebind(e);
    e.ready = true;
    --buckets_[b].pending;
    while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0)
      launch(next_launch_++, false);
  }

  void launch(size_t b, bool at_end) {
    Bucket& bk = buckets_[b];
    bk.launched = true;
    log_.push_back(BucketLaunch{b, autograd::backward_nodes_run(), autograd::backward_nodes_total(), at_end});
    if (!opts_.bf16_gradients()) {
      works_.push_back(group_->all_reduce_async(bk.flat, ReduceOp::Average));
      return;
    }
    // Divided before rounding, as the sum of the shares cannot overflow where the sum of the values could.
    RESNET_DISPATCH(bk.flat.device(), scale, bk.flat, 1.0 / group_->size(), bk.flat);
    RESNET_DISPATCH(bk.flat.device(), cast, bk.flat, bk.wire);
    works_.push_back(
        std::make_shared<WidenWork>(group_->all_reduce_async(bk.wire, ReduceOp::Sum), bk.wire, bk.flat));
  }

  // A bfloat16 all-reduce in flight; wait() widens its result back into the bucket.
  struct WidenWork : Work {
    WidenWork(std::shared_ptr<Work> inner, Tensor<bf16_t> wire, Tensor<P> flat)
        : inner_(std::move(inner)), wire_(std::move(wire)), flat_(std::move(flat)) {}
    void wait() override {
      if (!inner_) return;
      auto inner = std::move(inner_);
      inner->wait();
      RESNET_DISPATCH(flat_.device(), cast, wire_, flat_);
    }

   private:
    std::shared_ptr<Work> inner_;
    Tensor<bf16_t> wire_;
    Tensor<P> flat_;
  };

  void finish_pass() {
    for (; next_launch_ < buckets_.size(); ++next_launch_) {
      Bucket& bk = buckets_[next_launch_];
      for (auto& e : bk.entries)
        if (!e.ready) rebind(e);  // no gradient this pass: its accumulated (or zero) value is reduced
      launch(next_launch_, true);
    }
    wait_all();
    pass_id_ = 0;
  }

  void wait_all() {
    std::vector<std::shared_ptr<Work>> works;
    works.swap(works_);
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& w : works) w->wait();
    stats_.wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stats_.synchronised_passes += 1;
  }

  std::shared_ptr<nn::Module<T>> model_;
  std::shared_ptr<ProcessGroup> group_;
  DataParallelOptions opts_;
  std::deque<Tensor<P>> own_params_;  // deques: registered by address
  std::deque<TensorBase> own_buffers_;
  std::vector<Bucket> buckets_;
  std::vector<std::shared_ptr<Work>> works_;
  std::vector<BucketLaunch> log_;
  size_t next_launch_ = 0;
  uint64_t pass_id_ = 0;
  bool sync_enabled_ = true;
  DataParallelStats stats_;
};

}  // namespace dist
}  // namespace RESNET_ABI
}  // namespace resnet
