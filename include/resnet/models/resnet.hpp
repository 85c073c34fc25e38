// ResNet-18/34/50/101/152 as in the paper (He et al., 2015) and torchvision: a 7x7 stride-2 stem conv with
// padding 3, BN, ReLU, a 3x3 stride-2 max pool with padding 1, four stages of residual blocks, global
// average pooling and a Linear classifier. Networks are built at run time from a table, so every depth
// compiles as one type.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/arg.hpp"

#include <array>
#include <string>

#include "resnet/models/residual_block.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace models {

struct ResNetOptions {
  RESNET_ARG(int64_t, num_classes) = 1000;
  RESNET_ARG(int64_t, in_channels) = 3;
  RESNET_ARG(bool, stride_on_1x1) = false;       // bottleneck v1 (the paper) instead of v1.5
  RESNET_ARG(bool, zero_init_residual) = false;  // start each block as the identity (last BN weight = 0)
  RESNET_ARG(uint64_t, seed) = 0;                // 0: draw from default_generator()
};

struct ResNetSpec {
  std::string name;
  BlockKind kind;
  std::array<int64_t, 4> blocks;
};

inline ResNetSpec resnet_spec(const std::string& arch) {
  if (arch == "resnet18") return {arch, BlockKind::Basic, {2, 2, 2, 2}};
  if (arch == "resnet34") return {arch, BlockKind::Basic, {3, 4, 6, 3}};
  if (arch == "resnet50") return {arch, BlockKind::Bottleneck, {3, 4, 6, 3}};
  if (arch == "resnet101") return {arch, BlockKind::Bottleneck, {3, 4, 23, 3}};
  if (arch == "resnet152") return {arch, BlockKind::Bottleneck, {3, 8, 36, 3}};
  RESNET_FAIL("unknown architecture '", arch,
              "' (expected resnet18, resnet34, resnet50, resnet101 or resnet152)");
}

template <typename T>
class ResNet : public nn::Module<T> {
 public:
  ResNet(const ResNetSpec& spec, const ResNetOptions& o);

  Tensor<T> forward(const Tensor<T>& x) override;

  std::string type_name() const override { return "ResNet"; }
  Shape summarize(const Shape& in, const std::string& name, int depth,
                  std::vector<nn::LayerSummary>& rows) const override;

  const ResNetSpec& spec() const { return spec_; }
  const ResNetOptions& options() const { return opts_; }  // as built (fc may have been replaced since)
  int64_t num_classes() const { return fc->out_features(); }

  // The blocks of all four stages in order, read from the registry (blocks[3] is layer2.0 of a ResNet-18);
  // null where a block was replaced by something that is not a ResidualBlock.
  class BlockList {
   public:
    explicit BlockList(const ResNet* net) : net_(net) {}
    std::shared_ptr<ResidualBlock<T>> operator[](size_t i) const {
      for (auto& stage : net_->layers) {
        if (i < stage->size()) return std::dynamic_pointer_cast<ResidualBlock<T>>((*stage)[i]);
        i -= stage->size();
      }
      RESNET_FAIL(net_->spec_.name, ": block index out of range (", size(), " blocks)");
    }
    size_t size() const {
      size_t n = 0;
      for (auto& stage : net_->layers) n += stage->size();
      return n;
    }
    bool empty() const { return size() == 0; }
    std::shared_ptr<ResidualBlock<T>> front() const { return (*this)[0]; }
    std::shared_ptr<ResidualBlock<T>> back() const { return (*this)[size() - 1]; }
    struct iterator {
      const BlockList* list;
      size_t i;
      std::shared_ptr<ResidualBlock<T>> operator*() const { return (*list)[i]; }
      iterator& operator++() {
        ++i;
        return *this;
      }
      bool operator!=(const iterator& o) const { return i != o.i; }
    };
    iterator begin() const { return iterator{this, 0}; }
    iterator end() const { return iterator{this, size()}; }

   private:
    const ResNet* net_;
  };

  // Views of the registry (nn::Child): `net->fc = std::make_shared<nn::Linear<float>>(512, 3)` replaces
  // the head for forward, parameters, state_dict, train()/eval(), summaries and checkpoints alike.
  nn::Child<nn::Conv2d<T>> conv1;
  nn::Child<nn::BatchNorm2d<T>> bn1;
  nn::Child<nn::MaxPool2d<T>> maxpool;
  std::array<nn::Child<nn::Sequential<T>>, 4> layers;
  const BlockList blocks{this};
  nn::Child<nn::GlobalAvgPool2d<T>> avgpool;
  nn::Child<nn::Linear<T>> fc;

 private:
  ResNetSpec spec_;
  ResNetOptions opts_;
};

template <typename T>
ResNet<T>::ResNet(const ResNetSpec& spec, const ResNetOptions& o) : spec_(spec), opts_(o) {
  RESNET_CHECK(o.num_classes() > 0, "ResNet: num_classes must be positive, got ", o.num_classes());
  Generator seeded(o.seed());
  Generator& gen = o.seed() ? seeded : default_generator();
  this->register_module("conv1", conv1,
                        std::make_shared<nn::Conv2d<T>>(
                            nn::Conv2dOptions(o.in_channels(), 64, 7).stride(2).padding(3).bias(false), gen));
  this->register_module("bn1", bn1, std::make_shared<nn::BatchNorm2d<T>>(64));
  this->register_module("maxpool", maxpool, std::make_shared<nn::MaxPool2d<T>>(3, 2, 1));
  int64_t in = 64;
  const std::array<int64_t, 4> planes{64, 128, 256, 512};
  for (size_t s = 0; s < 4; ++s) {
    auto stage = std::make_shared<nn::Sequential<T>>();
    for (int64_t b = 0; b < spec.blocks[s]; ++b) {
      auto bo = ResidualBlockOptions()
                    .kind(spec.kind)
                    .in_channels(in)
                    .planes(planes[s])
                    .stride((b == 0 && s > 0) ? 2 : 1)
                    .stride_on_1x1(o.stride_on_1x1());
      auto block = stage->push_back(std::make_shared<ResidualBlock<T>>(bo, gen));
      if (o.zero_init_residual()) block->last_bn().weight.zero_();
      in = planes[s] * block_expansion(spec.kind);
    }
    this->register_module("layer" + std::to_string(s + 1), layers[s], stage);
  }
  this->register_module("avgpool", avgpool, std::make_shared<nn::GlobalAvgPool2d<T>>());
  this->register_module("fc", fc, std::make_shared<nn::Linear<T>>(in, o.num_classes(), true, gen));
}

template <typename T>
auto ResNet<T>::forward(const Tensor<T>& x) -> Tensor<T> {
  const int64_t in = conv1->options().in_channels();  // conv1 may have been replaced
  RESNET_CHECK(x.defined() && x.rank() == 4 && x.dim(1) == in, spec_.name, ": expected images [N, ", in,
               ", H, W], got ", x.defined() ? x.shape().to_string() : std::string("undefined"));
  // The input is converted once to the model's memory format (a no-op when the loader made it so).
  // (On a CUDA device with the NHWC kernels off, the ops would convert it back: it stays row-major.)
  const MemoryFormat f =
      detail::takes_channels_last(x.device()) ? this->memory_format() : MemoryFormat::Contiguous;
  Tensor<T> h = bn1->forward_fused(conv1->forward(to_memory_format(x, f)), Tensor<T>(), Activation::ReLU);
  h = maxpool->forward(h);
  for (auto& l : layers) h = l->forward(h);
  return fc->forward(avgpool->forward(h));
}

template <typename T>
Shape ResNet<T>::summarize(const Shape& in, const std::string& name, int depth,
                           std::vector<nn::LayerSummary>& rows) const {
  auto sub = [&](const char* n) { return this->join(name, n); };
  Shape s = conv1->summarize(in, sub("conv1"), depth, rows);
  s = bn1->summarize(s, sub("bn1"), depth, rows);
  s = maxpool->summarize(s, sub("maxpool"), depth, rows);
  for (size_t i = 0; i < 4; ++i)
    s = layers[i]->summarize(s, sub(("layer" + std::to_string(i + 1)).c_str()), depth, rows);
  s = avgpool->summarize(s, sub("avgpool"), depth, rows);
  return fc->summarize(s, sub("fc"), depth, rows);
}

template <typename T = float>
std::shared_ptr<ResNet<T>> resnet(const std::string& arch, const ResNetOptions& o = ResNetOptions()) {
  return std::make_shared<ResNet<T>>(resnet_spec(arch), o);
}
template <typename T = float>
std::shared_ptr<ResNet<T>> resnet18(const ResNetOptions& o = ResNetOptions()) {
  return resnet<T>("resnet18", o);
}
template <typename T = float>
std::shared_ptr<ResNet<T>> resnet34(const ResNetOptions& o = ResNetOptions()) {
  return resnet<T>("resnet34", o);
}
template <typename T = float>
std::shared_ptr<ResNet<T>> resnet50(const ResNetOptions& o = ResNetOptions()) {
  return resnet<T>("resnet50", o);
}
template <typename T = float>
std::shared_ptr<ResNet<T>> resnet101(const ResNetOptions& o = ResNetOptions()) {
  return resnet<T>("resnet101", o);
}
template <typename T = float>
std::shared_ptr<ResNet<T>> resnet152(const ResNetOptions& o = ResNetOptions()) {
  return resnet<T>("resnet152", o);
}

}  // namespace models
}  // namespace RESNET_ABI
}  // namespace resnet
