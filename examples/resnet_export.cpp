// resnet_export --weights CKPT --out MODEL.onnx [--softmax] [--fold-bn] [--size S]: a trained checkpoint as
// an ONNX model for ONNX Runtime, TensorRT, OpenCV's dnn module or a phone. The architecture, class names,
// image size and normalisation come from the checkpoint's metadata (what train_catsdogs writes); the
// normalisation constants, class names and the rest of the preprocessing go into the model's metadata
// properties, so the deployed side can read them from the file.
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "flags.hpp"
#include "resnet/data/transforms.hpp"
#include "resnet/io/json_lite.hpp"
#include "resnet/io/onnx.hpp"
#include "resnet/resnet.hpp"
#include "resnet/train/recipe_fields.hpp"

namespace {

// A mistake on the command line found after parsing: exit status 2, as CLI11's own.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string fmt_g(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

double number(const std::string& what, const std::string& text) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size())
    throw resnet::Error("checkpoint metadata '" + what + "' = '" + text + "' is not a number");
  return v;
}

// "a,b,c" (how a checkpoint would store mean/std) -> three numbers.
std::array<float, 3> triple(const std::string& what, const std::string& text) {
  std::array<float, 3> out{};
  size_t pos = 0;
  for (size_t i = 0; i < 3; ++i) {
    size_t comma = text.find(',', pos);
    if ((i < 2) != (comma != std::string::npos))
      throw resnet::Error("checkpoint metadata '" + what + "' = '" + text + "' is not three numbers");
    out[i] = static_cast<float>(number(what, text.substr(pos, comma - pos)));
    pos = comma + 1;
  }
  return out;
}

std::string join3(const std::array<float, 3>& a) {
  return fmt_g(a[0]) + "," + fmt_g(a[1]) + "," + fmt_g(a[2]);
}

}  // namespace

int main(int argc, char** argv) {
  std::string weights, out, arch;
  int64_t size = 0, classes = 0;
  resnet::io::OnnxExportOptions o;
  CLI::App app(
      "A trained checkpoint as an ONNX model. The model takes float32 [N, 3, S, S] RGB images scaled to "
      "[0, 1] and normalised with the mean and std stored in its metadata (keys mean, std, image_size, "
      "class_names, preprocessing).",
      "resnet_export");
  flags::setup(app);
  app.add_option("--weights", weights,
                 "a checkpoint written by train_catsdogs (architecture, classes, image size inside)")
      ->option_text("CKPT");
  app.add_option("--out", out, "the ONNX file to write (atomically)")->option_text("FILE");
  app.add_flag("--softmax", o.softmax(),
               "end with Softmax: the output is \"probabilities\" instead of \"logits\"");
  app.add_flag("--fold-bn", o.fold_batchnorm(),
               "fold every BatchNorm into the convolution before it (same outputs, fewer nodes)");
  app.add_option("--size", size, "input height and width")
      ->option_text("S")
      ->check(flags::int_in(1, 4096))
      ->default_str("the checkpoint's evaluation size");
  app.add_option("--arch", arch,
                 "for plain safetensors weights without training metadata (e.g. from torchvision)")
      ->option_text("A")
      ->check(flags::one_of(resnet::train::recipe_archs()));
  app.add_option("--classes", classes, "the class count of such weights")
      ->option_text("K")
      ->check(flags::int_in(1, 1000000));
  const int parsed = flags::parse(app, argc, argv);
  if (parsed >= 0) return parsed;
  try {
    if (weights.empty() || out.empty())
      throw UsageError("needs --weights CKPT and --out MODEL.onnx (see --help)");
    std::error_code ec;
    if (!std::filesystem::is_regular_file(weights, ec))
      throw resnet::Error("--weights: checkpoint '" + weights + "' does not exist");

    // Everything the deployed model must know, from the checkpoint's metadata.
    const resnet::io::TrainingState st = resnet::io::read_training_state(weights);
    if (!st.arch.empty()) {
      if (!arch.empty() && arch != st.arch)
        throw UsageError("--arch " + arch + " differs from the checkpoint's " + st.arch);
      arch = st.arch;
    }
    if (!st.class_names.empty()) {
      if (classes && classes != static_cast<int64_t>(st.class_names.size()))
        throw UsageError("--classes " + std::to_string(classes) + " differs from the checkpoint's " +
                         std::to_string(st.class_names.size()));
      classes = static_cast<int64_t>(st.class_names.size());
    }
    if (arch.empty() || classes == 0)
      throw UsageError("'" + weights +
                       "' has no training metadata (architecture, classes): give --arch and --classes");
    auto extra = [&](const char* key) {
      auto it = st.extra.find(key);
      return it == st.extra.end() ? std::string() : it->second;
    };
    if (size == 0) {
      // train_catsdogs evaluates at --eval-size (default: its --size).
      const std::string s = !extra("eval-size").empty() ? extra("eval-size") : extra("size");
      if (s.empty()) throw UsageError("'" + weights + "' does not record its image size: give --size");
      size = static_cast<int64_t>(number("eval-size", s));
    }
    const double crop = extra("eval-crop").empty() ? 1.0 : number("eval-crop", extra("eval-crop"));
    // The library's evaluation transform normalises with TransformOptions' mean and std (ImageNet's);
    // a checkpoint that records its own ("mean"/"std" as "a,b,c") wins.
    resnet::data::TransformOptions t;
    if (!extra("mean").empty()) t.mean(triple("mean", extra("mean")));
    if (!extra("std").empty()) t.std(triple("std", extra("std")));

    auto ro = resnet::models::ResNetOptions().num_classes(classes);
    ro.seed(1);  // any: every weight is overwritten by the checkpoint
    auto net = resnet::models::resnet<float>(arch, ro);
    resnet::io::load_checkpoint<float>(weights, *net, nullptr);
    net->eval();

    o.height(size).width(size);
    o.doc_string(arch + " trained with resnet, exported from " +
                 std::filesystem::path(weights).filename().string());
    std::vector<std::string> names = st.class_names;
    if (names.empty())
      for (int64_t k = 0; k < classes; ++k) names.push_back(std::to_string(k));
    o.metadata() = {
        {"arch", arch},
        {"class_names", resnet::io::json_string_array(names)},
        {"num_classes", std::to_string(classes)},
        {"image_size", std::to_string(size)},
        {"input_layout", "NCHW float32, RGB"},
        {"mean", join3(t.mean())},
        {"std", join3(t.std())},
        {"preprocessing", "centre square of " + fmt_g(crop) + " x the shorter side, resized to " +
                              std::to_string(size) + "x" + std::to_string(size) +
                              "; RGB / 255; (x - mean) / std per channel"},
        {"output", o.softmax() ? "probabilities" : "logits"},
        {"batchnorm_folded", o.fold_batchnorm() ? "true" : "false"},
        {"epoch", std::to_string(st.epoch)},
    };
    const resnet::io::OnnxExportInfo info = resnet::io::export_onnx(*net, out, o);
    std::printf(
        "wrote %s: %s, %lld classes, input \"input\" float32 [N, 3, %lld, %lld], output \"%s\" [N, %lld], "
        "opset %lld, %lld nodes, %.1f MB%s\n",
        out.c_str(), arch.c_str(), static_cast<long long>(classes), static_cast<long long>(size),
        static_cast<long long>(size), info.output_name.c_str(), static_cast<long long>(classes),
        static_cast<long long>(resnet::io::kOnnxOpset), static_cast<long long>(info.nodes),
        static_cast<double>(info.bytes) / 1e6, o.fold_batchnorm() ? ", BatchNorm folded" : "");
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "resnet_export: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "resnet_export: %s\n", e.what());
    return 1;
  }
}
