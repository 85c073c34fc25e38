// ONNX export: io::export_onnx(model, path, options) writes the model's eval-mode graph as an ONNX file
// that ONNX Runtime, TensorRT, OpenCV's dnn module and the onnx checker read.
//
//   #include <resnet/io/onnx.hpp>        // not part of resnet/resnet.hpp: it needs protobuf
//   target_link_libraries(app PRIVATE resnet::onnx)
//
// What it writes (opset 13, IR version 7; see NOTES.md "ONNX export" for why 13):
// - one float32 input [N, C, H, W] named "input" with a symbolic batch dimension N, and one output
//   "logits" [N, K] (or "probabilities" with options.softmax);
// - initialisers under torchvision's state_dict names ("layer1.0.conv1.weight", "bn1.running_mean", ...);
//   with options.fold_batchnorm each BatchNorm that follows a convolution is folded into it (the conv keeps
//   its names, gains a "<conv>.bias", and the BN's tensors disappear);
// - BatchNorm always as inference (running statistics): a model in training mode is exported as if in eval
//   mode, with a warning, and is not changed;
// - float32 weights whatever the model's type: 16-bit models keep float32 master weights, which are
//   exported as they are; double models are rounded to float32.
// Known layers: ResNet, ResidualBlock (basic and bottleneck, with the residual add), Sequential, Conv2d,
// BatchNorm2d, ReLU, MaxPool2d, AvgPool2d, GlobalAvgPool2d (+ Flatten), Linear and Softmax. Any other module
// is an error naming it. The file is written atomically: on any error no file (or partial file) is left.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/arg.hpp"

#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "resnet/io/atomic_file.hpp"
#include "resnet/io/onnx_graph.hpp"
#include "resnet/models/resnet.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace io {

// Opset 13: the first with Softmax over a single axis (our semantics), imported by OpenCV 4.x, TensorRT 8
// and every ONNX Runtime since 1.6; Debian's onnx 1.12 checks up to 17. IR 7 is the IR of opset 13.
constexpr int64_t kOnnxOpset = 13;
constexpr int64_t kOnnxIrVersion = 7;

using OnnxMetadata = std::vector<std::pair<std::string, std::string>>;  // key, value

// OnnxExportOptions().height(64).width(64).softmax(true): named setters (core/arg.hpp).
struct OnnxExportOptions {
  RESNET_ARG(int64_t, channels) = 0;  // input channels; 0: the first Conv2d's
  RESNET_ARG(int64_t, height) = 224;
  RESNET_ARG(int64_t, width) = 224;
  RESNET_ARG(bool, softmax) = false;  // append Softmax over the classes: the output becomes "probabilities"
  RESNET_ARG(bool, fold_batchnorm) = false;  // fold each Conv2d -> BatchNorm2d pair into one Conv
  RESNET_ARG(std::string, input_name) = "input";
  RESNET_ARG(std::string, graph_name);  // "": "resnet18", ... for ResNets, else the module's type name
  RESNET_ARG(std::string, doc_string);
  RESNET_ARG(OnnxMetadata, metadata);  // -> ModelProto.metadata_props
  // Where warnings go (they are also returned in OnnxExportInfo); default: stderr.
  RESNET_ARG(std::function<void(const std::string&)>, warn);
};

struct OnnxExportInfo {
  std::vector<std::string> warnings;
  std::string output_name;
  std::vector<int64_t> input_shape, output_shape;  // -1: the symbolic batch dimension
  int64_t nodes = 0, initializers = 0;
  size_t bytes = 0;  // size of the serialised model
};

namespace detail {

// A parameter or buffer as float32 values, from any device and float type (one copy: a model's weights are
// hundreds of MB, and fresh pages are what export time goes on).
inline std::vector<float> onnx_values(const TensorBase& t) {
  TensorBase h = t;
  if (!t.device().is_cpu() || !t.is_contiguous()) {
    h = TensorBase::empty(t.shape(), t.dtype(), Device::cpu());
    copy_into(h, t);
  }
  const size_t n = static_cast<size_t>(h.numel());
  if (h.dtype() == DType::F32) {
    const float* p = static_cast<const float*>(h.raw_data());
    return std::vector<float>(p, p + n);
  }
  RESNET_CHECK(h.dtype() == DType::F64, "export_onnx: cannot export a ", dtype_name(h.dtype()),
               " parameter (expected float32 or float64)");
  const double* p = static_cast<const double*>(h.raw_data());
  return std::vector<float>(p, p + n);
}
inline std::vector<int64_t> dims_of(const TensorBase& t) {
  std::vector<int64_t> d;
  for (int64_t i = 0; i < t.shape().rank(); ++i) d.push_back(t.shape()[i]);
  return d;
}
inline std::string join_path(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

template <typename T>
bool any_training(const nn::Module<T>& m) {
  if (m.is_training()) return true;
  for (const auto& c : m.named_children())
    if (any_training(*c.second)) return true;
  return false;
}

// The input channels of the first convolution met depth-first (0 when there is none).
template <typename T>
int64_t first_conv_channels(const nn::Module<T>& m) {
  if (auto* c = dynamic_cast<const nn::Conv2d<T>*>(&m)) return c->options().in_channels();
  for (const auto& c : m.named_children())
    if (int64_t ch = first_conv_channels(*c.second)) return ch;
  return 0;
}

// Walks a module tree and appends its nodes; each emit() takes the input value and returns the output.
template <typename T>
class OnnxWriter {
 public:
  OnnxWriter(OnnxGraph& g, bool fold) : g_(g), fold_(fold) {}

  std::string emit(const nn::Module<T>& m, const std::string& path, const std::string& x) {
    if (auto* r = dynamic_cast<const models::ResNet<T>*>(&m)) return resnet(*r, path, x);
    if (auto* b = dynamic_cast<const models::ResidualBlock<T>*>(&m)) return block(*b, path, x);
    if (auto* s = dynamic_cast<const nn::Sequential<T>*>(&m)) return sequential(*s, path, x);
    if (auto* c = dynamic_cast<const nn::Conv2d<T>*>(&m)) return conv_bn(*c, path, nullptr, "", x);
    if (auto* b = dynamic_cast<const nn::BatchNorm2d<T>*>(&m)) return batchnorm(*b, path, x);
    if (dynamic_cast<const nn::ReLU<T>*>(&m)) return g_.node("Relu", {x}, name(path, "relu"));
    if (auto* p = dynamic_cast<const nn::MaxPool2d<T>*>(&m)) return pool("MaxPool", p->params(), path, x);
    if (auto* p = dynamic_cast<const nn::AvgPool2d<T>*>(&m)) return pool("AveragePool", p->params(), path, x);
    if (dynamic_cast<const nn::GlobalAvgPool2d<T>*>(&m)) return global_avg_pool(path, x);
    if (auto* l = dynamic_cast<const nn::Linear<T>*>(&m)) return linear(*l, path, x);
    if (dynamic_cast<const nn::Softmax<T>*>(&m)) return softmax(name(path, "softmax"), x);
    RESNET_FAIL("export_onnx: layer '", path.empty() ? std::string("(the model itself)") : path, "' of type ",
                m.type_name(),
                " has no ONNX form (the exporter knows ResNet, BasicBlock/Bottleneck, Sequential, Conv2d, "
                "BatchNorm2d, ReLU, MaxPool2d, AvgPool2d, GlobalAvgPool2d, Linear and Softmax)");
  }

  std::string softmax(const std::string& node_name, const std::string& x) {
    std::string y = g_.node("Softmax", {x}, node_name);
    g_.attr("axis", int64_t{1});  // explicit: opset 13's default (-1) is the same axis for [N, K]
    return y;
  }

 private:
  static std::string name(const std::string& path, const char* fallback) {
    return path.empty() ? fallback : path;
  }

  std::string resnet(const models::ResNet<T>& r, const std::string& path, const std::string& x) {
    auto sub = [&](const char* n) { return join_path(path, n); };
    std::string h = conv_bn(*r.conv1, sub("conv1"), r.bn1.get(), sub("bn1"), x);
    h = g_.node("Relu", {h}, sub("relu"));
    h = emit(*r.maxpool, sub("maxpool"), h);
    for (size_t i = 0; i < r.layers.size(); ++i)
      h = emit(*r.layers[i], sub(("layer" + std::to_string(i + 1)).c_str()), h);
    h = emit(*r.avgpool, sub("avgpool"), h);
    return emit(*r.fc, sub("fc"), h);
  }

  // As ResidualBlock::forward: the main path, the shortcut (identity or downsample), the add, the ReLU.
  std::string block(const models::ResidualBlock<T>& b, const std::string& path, const std::string& x) {
    auto sub = [&](const char* n) { return join_path(path, n); };
    const std::string identity = b.downsample ? emit(*b.downsample, sub("downsample"), x) : x;
    std::string h = conv_bn(*b.conv1, sub("conv1"), b.bn1.get(), sub("bn1"), x);
    h = g_.node("Relu", {h}, sub("relu1"));
    h = conv_bn(*b.conv2, sub("conv2"), b.bn2.get(), sub("bn2"), h);
    if (b.conv3) {
      h = g_.node("Relu", {h}, sub("relu2"));
      h = conv_bn(*b.conv3, sub("conv3"), b.bn3.get(), sub("bn3"), h);
    }
    h = g_.node("Add", {h, identity}, sub("add"));
    return g_.node("Relu", {h}, sub("relu"));
  }

  std::string sequential(const nn::Sequential<T>& s, const std::string& path, const std::string& x) {
    std::string h = x;
    for (size_t i = 0; i < s.size(); ++i) {
      const std::string p = join_path(path, std::to_string(i));
      auto* conv = dynamic_cast<const nn::Conv2d<T>*>(s[i].get());
      auto* bn = i + 1 < s.size() ? dynamic_cast<const nn::BatchNorm2d<T>*>(s[i + 1].get()) : nullptr;
      if (conv && bn) {  // a pair that folding can merge (downsample.0 + downsample.1)
        h = conv_bn(*conv, p, bn, join_path(path, std::to_string(i + 1)), h);
        ++i;
      } else {
        h = emit(*s[i], p, h);
      }
    }
    return h;
  }

  // A convolution, then (when given) its BatchNorm: two nodes, or one Conv with the BN folded in.
  std::string conv_bn(const nn::Conv2d<T>& c, const std::string& cpath, const nn::BatchNorm2d<T>* bn,
                      const std::string& bpath, const std::string& x) {
    const auto& o = c.options();
    const bool fold = bn && fold_;
    std::vector<std::string> in{x};
    if (!fold) {
      in.push_back(param(join_path(cpath, "weight"), c.weight));
      if (c.bias.defined()) in.push_back(param(join_path(cpath, "bias"), c.bias));
    } else {
      std::vector<float> w = onnx_values(c.weight);
      std::vector<float> bias = c.bias.defined() ? onnx_values(c.bias) : std::vector<float>();
      // y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta = conv'(x) + b', computed in double (as
      // models/fuse.hpp does) and rounded once.
      const std::vector<float> gamma = onnx_values(bn->weight), beta = onnx_values(bn->bias),
                               mean = onnx_values(bn->running_mean), var = onnx_values(bn->running_var);
      const double eps = bn->options().eps();
      const size_t oc = static_cast<size_t>(o.out_channels()), per = w.size() / oc;
      if (bias.empty()) bias.assign(oc, 0.0f);
      for (size_t k = 0; k < oc; ++k) {
        const double s = static_cast<double>(gamma[k]) / std::sqrt(static_cast<double>(var[k]) + eps);
        for (size_t j = 0; j < per; ++j) w[k * per + j] = static_cast<float>(w[k * per + j] * s);
        bias[k] = static_cast<float>((static_cast<double>(bias[k]) - mean[k]) * s + beta[k]);
      }
      in.push_back(g_.initializer(join_path(cpath, "weight"), dims_of(c.weight), w));
      in.push_back(g_.initializer(join_path(cpath, "bias"), {o.out_channels()}, bias));
    }
    std::string y = g_.node("Conv", in, name(cpath, "conv"));
    g_.attr("kernel_shape", std::vector<int64_t>{o.kernel_size(), o.kernel_size()});
    g_.attr("strides", std::vector<int64_t>{o.stride(), o.stride()});
    g_.attr("pads", std::vector<int64_t>{o.padding(), o.padding(), o.padding(), o.padding()});
    if (bn && !fold) y = batchnorm(*bn, bpath, y);
    return y;
  }

  std::string batchnorm(const nn::BatchNorm2d<T>& b, const std::string& path, const std::string& x) {
    auto init = [&](const char* n, const Tensor<acc_t<T>>& t) { return param(join_path(path, n), t); };
    std::vector<std::string> in{x, init("weight", b.weight), init("bias", b.bias),
                                init("running_mean", b.running_mean), init("running_var", b.running_var)};
    std::string y = g_.node("BatchNormalization", in, name(path, "batchnorm"));
    g_.attr("epsilon", static_cast<float>(b.options().eps()));
    return y;
  }

  std::string pool(const char* op, const PoolParams& p, const std::string& path, const std::string& x) {
    const bool average = std::string(op) == "AveragePool";
    std::string in = x;
    int64_t ph = p.pad_h, pw = p.pad_w;
    if (average && p.count_include_pad && (ph || pw)) {
      // Zero padding counted in the divisor is an explicit Pad: OpenCV 4.6 ignores count_include_pad=1.
      const std::string pads = g_.initializer_int64(join_path(path, "pads"), {0, 0, ph, pw, 0, 0, ph, pw});
      in = g_.node("Pad", {x, pads}, name(path, "pool") + ".pad");
      ph = pw = 0;
    }
    std::string y = g_.node(op, {in}, name(path, "pool"));
    g_.attr("kernel_shape", std::vector<int64_t>{p.kernel_h, p.kernel_w});
    g_.attr("strides", std::vector<int64_t>{p.stride_h, p.stride_w});
    g_.attr("pads", std::vector<int64_t>{ph, pw, ph, pw});
    if (average) g_.attr("count_include_pad", int64_t{0});  // (any padding left is not counted)
    return y;
  }

  // Our global average pool returns [N, C]: ONNX's keeps [N, C, 1, 1], so a Flatten follows.
  std::string global_avg_pool(const std::string& path, const std::string& x) {
    const std::string n = name(path, "avgpool");
    std::string y = g_.node("GlobalAveragePool", {x}, n);
    y = g_.node("Flatten", {y}, n + ".flatten");
    g_.attr("axis", int64_t{1});
    return y;
  }

  std::string linear(const nn::Linear<T>& l, const std::string& path, const std::string& x) {
    std::vector<std::string> in{x, param(join_path(path, "weight"), l.weight)};
    if (l.bias.defined()) in.push_back(param(join_path(path, "bias"), l.bias));
    std::string y = g_.node("Gemm", in, name(path, "linear"));
    g_.attr("transB", int64_t{1});  // weight is [out, in], as in PyTorch
    return y;
  }

  // A parameter under its own name, straight from the tensor when it is float32 in host memory.
  std::string param(const std::string& name, const TensorBase& t) {
    if (t.dtype() == DType::F32 && t.device().is_cpu() && t.is_contiguous())
      return g_.initializer(name, dims_of(t), static_cast<const float*>(t.raw_data()),
                            static_cast<size_t>(t.numel()));
    return g_.initializer(name, dims_of(t), onnx_values(t));
  }

  OnnxGraph& g_;
  bool fold_;
};

}  // namespace detail

// Builds the ONNX model in memory (export_onnx writes it; tests and tools may inspect it).
template <typename T>
::onnx::ModelProto to_onnx(const nn::Module<T>& model, const OnnxExportOptions& o,
                           OnnxExportInfo* info = nullptr) {
  OnnxExportInfo local;
  OnnxExportInfo& out = info ? *info : local;
  out = OnnxExportInfo();
  auto warn = [&](const std::string& m) {
    out.warnings.push_back(m);
    if (o.warn())
      o.warn()(m);
    else
      std::fprintf(stderr, "warning: %s\n", m.c_str());
  };
  if (detail::any_training(model))
    warn(
        "export_onnx: the model is in training mode; exporting its eval-mode graph (BatchNorm with the "
        "running "
        "statistics). The model itself is not changed; call eval() before exporting to silence this.");

  auto* resnet = dynamic_cast<const models::ResNet<T>*>(&model);
  int64_t channels = o.channels();
  if (channels == 0) channels = detail::first_conv_channels(model);  // conv1 of a ResNet
  RESNET_CHECK(channels > 0,
               "export_onnx: cannot tell the model's input channels; set OnnxExportOptions::channels");
  RESNET_CHECK(o.height() > 0 && o.width() > 0, "export_onnx: image size must be positive, got ", o.height(),
               "x", o.width());
  RESNET_CHECK(!o.input_name().empty(), "export_onnx: empty input name");

  ::onnx::ModelProto m;
  m.set_ir_version(kOnnxIrVersion);
  m.set_producer_name("resnet");
  m.set_model_version(1);
  if (!o.doc_string().empty()) m.set_doc_string(o.doc_string());
  ::onnx::OperatorSetIdProto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  for (const auto& kv : o.metadata()) {
    ::onnx::StringStringEntryProto* e = m.add_metadata_props();
    e->set_key(kv.first);
    e->set_value(kv.second);
  }
  ::onnx::GraphProto* graph = m.mutable_graph();
  graph->set_name(!o.graph_name().empty() ? o.graph_name()
                  : resnet                ? resnet->spec().name
                                          : model.type_name());

  detail::OnnxGraph g(graph);
  detail::OnnxWriter<T> w(g, o.fold_batchnorm());
  out.input_shape = {-1, channels, o.height(), o.width()};
  g.input(o.input_name(), out.input_shape);
  out.output_name = o.softmax() ? "probabilities" : "logits";
  RESNET_CHECK(out.output_name != o.input_name(), "export_onnx: the input cannot be named '", o.input_name(),
               "'");
  g.reserve(out.output_name);
  std::string y = w.emit(model, "", o.input_name());

  // The output shape, by the library's own shape inference (which also rejects an input the model cannot
  // take).
  std::vector<nn::LayerSummary> rows;
  Shape s = model.summarize(Shape{1, channels, o.height(), o.width()}, "", 0, rows);
  out.output_shape = {-1};
  for (int64_t i = 1; i < s.rank(); ++i) out.output_shape.push_back(s[i]);
  if (o.softmax()) {
    RESNET_CHECK(s.rank() == 2, "export_onnx: --softmax needs [N, K] outputs, the model gives ", s);
    y = w.softmax("softmax", y);
  }
  // The last node writes the graph output under its public name (reserved above, so no value clashes).
  RESNET_CHECK(y != o.input_name(), "export_onnx: the model has no layers");
  graph->mutable_node(graph->node_size() - 1)->set_output(0, out.output_name);
  g.output(out.output_name, out.output_shape);
  out.nodes = g.nodes();
  out.initializers = g.initializers();
  out.bytes = m.ByteSizeLong();
  return m;
}

// Writes the model to `path` (atomically: a temporary file renamed over the target). Throws resnet::Error
// naming the file, the layer or the option on failure, leaving no file behind.
template <typename T>
OnnxExportInfo export_onnx(const nn::Module<T>& model, const std::string& path,
                           const OnnxExportOptions& o = OnnxExportOptions()) {
  OnnxExportInfo info;
  ::onnx::ModelProto m = to_onnx(model, o, &info);
  RESNET_CHECK(info.bytes < static_cast<size_t>(std::numeric_limits<int32_t>::max()), "export_onnx: '", path,
               "': the model is ", info.bytes, " bytes; protobuf files stop at 2 GiB");
  std::string bytes;
  RESNET_CHECK(m.SerializeToString(&bytes), "export_onnx: '", path, "': protobuf serialisation failed");
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
  return info;
}

}  // namespace io
}  // namespace RESNET_ABI
}  // namespace resnet
