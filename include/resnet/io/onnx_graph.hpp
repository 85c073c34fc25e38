// OnnxGraph: a thin builder over ONNX's own generated protobuf classes (Debian libonnx-dev's
// onnx/onnx-ml.pb.h): nodes with attributes, float32 initialisers, and graph inputs and outputs whose first
// dimension may be symbolic. It knows nothing about layers; io/onnx.hpp walks the model and calls it.
//
// Needs the resnet::onnx CMake target (libonnx_proto + libprotobuf); resnet/resnet.hpp does not include it.
#pragma once

#include "resnet/core/abi.hpp"

#ifndef ONNX_ML
#define ONNX_ML 1  // libonnx_proto is built with the ML extensions: onnx-ml.pb.h, not onnx.pb.h
#endif
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace io {
namespace detail {

class OnnxGraph {
 public:
  explicit OnnxGraph(::onnx::GraphProto* g) : g_(g) {}

  // A value name not used yet: `hint`, else hint_1, hint_2, ... Initialisers and node outputs share one
  // namespace in ONNX, so both come through here.
  std::string fresh(const std::string& hint) {
    std::string n = hint.empty() ? std::string("value") : hint;
    for (int i = 1; names_.count(n); ++i) n = hint + "_" + std::to_string(i);
    names_.insert(n);
    return n;
  }

  // Keeps `name` out of fresh()'s reach (the graph output's public name).
  void reserve(const std::string& name) { names_.insert(name); }

  // A float32 initialiser under exactly `name` (torchvision's parameter names must survive unchanged).
  std::string initializer(const std::string& name, const std::vector<int64_t>& dims, const float* values,
                          size_t count) {
    RESNET_CHECK(!names_.count(name), "export_onnx: two tensors named '", name, "'");
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    RESNET_CHECK(n == static_cast<int64_t>(count), "export_onnx: initialiser '", name, "' has ", count,
                 " values for ", n, " elements");
    names_.insert(name);
    ::onnx::TensorProto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(::onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    // raw_data is little-endian float32, which is what every machine we build for stores.
    t->mutable_raw_data()->assign(reinterpret_cast<const char*>(values), count * sizeof(float));
    ++initializers_;
    return name;
  }
  std::string initializer(const std::string& name, const std::vector<int64_t>& dims,
                          const std::vector<float>& values) {
    return initializer(name, dims, values.data(), values.size());
  }

  // An int64 initialiser (shape operands such as Pad's pads).
  std::string initializer_int64(const std::string& name, const std::vector<int64_t>& values) {
    const std::string n = fresh(name);
    ::onnx::TensorProto* t = g_->add_initializer();
    t->set_name(n);
    t->set_data_type(::onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t->add_int64_data(v);
    ++initializers_;
    return n;
  }

  // Appends a node; returns its (first) output value, named after `name`.
  std::string node(const std::string& op, const std::vector<std::string>& inputs, const std::string& name) {
    ::onnx::NodeProto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : inputs) n->add_input(i);
    const std::string out = fresh(name);
    n->add_output(out);
    last_ = n;
    return out;
  }
  // Attributes of the node added last.
  void attr(const std::string& name, int64_t v) {
    auto* a = new_attr(name, ::onnx::AttributeProto::INT);
    a->set_i(v);
  }
  void attr(const std::string& name, float v) {
    auto* a = new_attr(name, ::onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  void attr(const std::string& name, const std::vector<int64_t>& v) {
    auto* a = new_attr(name, ::onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }

  // Graph inputs and outputs are float32 tensors; a negative dimension is the symbolic batch size "N".
  void input(const std::string& name, const std::vector<int64_t>& dims) {
    names_.insert(name);
    value_info(g_->add_input(), name, dims);
  }
  void output(const std::string& name, const std::vector<int64_t>& dims) {
    value_info(g_->add_output(), name, dims);
  }

  int64_t nodes() const { return g_->node_size(); }
  int64_t initializers() const { return initializers_; }

 private:
  ::onnx::AttributeProto* new_attr(const std::string& name, ::onnx::AttributeProto::AttributeType type) {
    RESNET_CHECK(last_ != nullptr, "export_onnx: attribute '", name, "' before any node");
    ::onnx::AttributeProto* a = last_->add_attribute();
    a->set_name(name);
    a->set_type(type);
    return a;
  }
  static void value_info(::onnx::ValueInfoProto* v, const std::string& name,
                         const std::vector<int64_t>& dims) {
    v->set_name(name);
    ::onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(::onnx::TensorProto::FLOAT);
    ::onnx::TensorShapeProto* s = t->mutable_shape();
    for (int64_t d : dims) {
      if (d < 0)
        s->add_dim()->set_dim_param("N");
      else
        s->add_dim()->set_dim_value(d);
    }
  }

  ::onnx::GraphProto* g_;
  ::onnx::NodeProto* last_ = nullptr;
  std::set<std::string> names_;
  int64_t initializers_ = 0;
};

}  // namespace detail
}  // namespace io
}  // namespace RESNET_ABI
}  // namespace resnet
