// infer::Classifier: a checkpoint (or a model in memory) in, class probabilities out.
//
//   auto clf = infer::Classifier::open("best.safetensors");          // CPU; ClassifierOptions for the GPU
//   for (auto& r : clf.classify_files({"cat.jpg", "dog.png"}, 3))
//     if (r.ok) std::cout << r.path << ": " << r.top[0].label << " " << r.top[0].probability << "\n";
//   Tensor<float> p = clf.probabilities(x);                           // [N, classes]; logits(x) too
//
// Classifier is BasicClassifier<float>; BasicClassifier<T> runs a model of activation type T (bfloat16,
// double) on float images. From a checkpoint it builds the network named by the metadata, loads it, folds
// its BatchNorms into the convolutions (models/fuse.hpp: same outputs to float rounding, one pass less work
// per BN) and moves it to options.device(). A model given in memory can be any nn::Module<T> whose forward
// gives [N, classes] logits; it is used where it is and never changed: not folded, not moved, and each call
// runs it in eval mode and puts its train()/eval() mode back.
//
// The eval transform comes from options, else the checkpoint's metadata ("eval-size", "eval-crop"), else
// the training size ("size") with the default crop; a checkpoint with neither gets 224 px and 0.875, and a
// notice says so (resnet::set_notice_handler). Inputs are image files, decoded images of any size with 1-4
// channels (grey, grey + alpha, RGB, RGBA), or ready tensors [N, 3, S, S]; they run in batches of
// ClassifierOptions::batch_size. A file that cannot be read or decoded is reported in its result, never
// thrown: one bad image does not stop a folder. With flip_tta each image also runs mirrored and its
// probabilities are the mean of the two softmaxes (infer/tta.hpp); logits(x) are then their log.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "resnet/autograd/grad_mode.hpp"
#include "resnet/core/arg.hpp"
#include "resnet/core/notice.hpp"
#include "resnet/data/eval_transform.hpp"
#include "resnet/data/image_decode.hpp"
#include "resnet/data/sample_rng.hpp"
#include "resnet/infer/tta.hpp"
#include "resnet/io/paths.hpp"
#include "resnet/io/save_load.hpp"
#include "resnet/models/fuse.hpp"
#include "resnet/models/resnet.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace infer {

// ClassifierOptions().device(Device::cuda()).batch_size(64): named setters (core/arg.hpp).
struct ClassifierOptions {
  // open(): where the network runs (a given model stays where it is)
  RESNET_ARG(Device, device) = Device::cpu();
  RESNET_ARG(int64_t, batch_size) = 16;
  RESNET_ARG(bool, fuse) = true;                      // open(): fold BatchNorm into the convolutions
  RESNET_ARG(std::string, arch);                      // overrides / supplies the checkpoint's architecture
  RESNET_ARG(std::vector<std::string>, class_names);  // overrides / supplies the checkpoint's class names
  RESNET_ARG(int, eval_size) = 0;      // 0: from the metadata ("eval-size", else "size"), else 224
  RESNET_ARG(double, eval_crop) = 0;   // 0: from the metadata ("eval-crop"), else 0.875
  RESNET_ARG(bool, flip_tta) = false;  // average the probabilities of each image and its mirror image
};

struct ClassScore {
  int64_t index = 0;
  std::string label;
  double probability = 0;
};

struct Prediction {
  std::vector<ClassScore> top;  // best first
};

struct FileResult {
  std::string path;
  bool ok = false;
  std::string error;  // why the file was skipped (missing, a folder, unreadable, corrupt)
  Prediction prediction;
};

namespace detail {
double metadata_number(const io::TrainingState& s, const char* key, double fallback);
}  // namespace detail

template <typename T = float>
class BasicClassifier {
 public:
  using Model = nn::Module<T>;

  // From a model already in memory (e.g. right after fine-tuning), used as it is and never changed.
  BasicClassifier(std::shared_ptr<Model> model, std::vector<std::string> class_names,
                  data::TransformOptions transform, const ClassifierOptions& options = ClassifierOptions())
      : model_(std::move(model)), names_(std::move(class_names)), transform_(transform), opts_(options) {
    RESNET_CHECK(model_ != nullptr, "Classifier: null model");
    RESNET_CHECK(opts_.batch_size() > 0, "Classifier: batch_size must be positive, got ", opts_.batch_size());
    RESNET_CHECK(!names_.empty(), "Classifier: no class names");
    transform_.augment(data::Augment::None);
    transform_.validate();
    if (auto* net = dynamic_cast<models::ResNet<T>*>(model_.get()))
      RESNET_CHECK(static_cast<int64_t>(names_.size()) == net->num_classes(), "Classifier: ", names_.size(),
                   " class names for a model with ", net->num_classes(), " classes");
  }

  // Opens a checkpoint (ours, or a converted torchvision file: tools/torchvision_to_safetensors.py).
  static BasicClassifier open(const std::string& path,
                              const ClassifierOptions& options = ClassifierOptions()) {
    io::TrainingState s = io::read_training_state(path);
    const std::string arch = options.arch().empty() ? s.arch : options.arch();
    RESNET_CHECK(!arch.empty(), "Classifier: checkpoint '", path,
                 "' does not name its architecture; set ClassifierOptions::arch");
    std::vector<std::string> names = options.class_names().empty() ? s.class_names : options.class_names();
    RESNET_CHECK(!names.empty(), "Classifier: checkpoint '", path,
                 "' has no class names; set ClassifierOptions::class_names");
    auto mo = models::ResNetOptions().num_classes(static_cast<int64_t>(names.size()));
    mo.seed(1);  // every tensor is overwritten by the strict load below
    std::shared_ptr<models::ResNet<T>> net = models::resnet<T>(arch, mo);
    io::load(*net, path);
    // Ours to change: evaluation mode, folded, on the device asked for.
    net->eval();
    if (options.fuse()) models::fuse_for_inference(*net);
    net->to(options.device());
    int size = options.eval_size();
    if (size <= 0) {
      const double meta = detail::metadata_number(s, "eval-size", detail::metadata_number(s, "size", 0));
      size = meta > 0 ? static_cast<int>(meta) : 224;
      if (meta <= 0 && options.eval_crop() <= 0)
        notice(
            "Classifier: checkpoint '" + path +
            "' names no evaluation or training size: images are resized to 224 px with a 0.875 centre "
            "crop (ImageNet's); set ClassifierOptions::eval_size if the model was trained at another size");
    }
    const double crop =
        options.eval_crop() > 0 ? options.eval_crop() : detail::metadata_number(s, "eval-crop", 0.875);
    return BasicClassifier(net, std::move(names), data::eval_transform(size, crop), options);
  }

  // The network input for one decoded image: [3, S, S] normalised floats, written to `out`.
  void preprocess(const data::Image& img, float* out) const {
    data::SampleRng rng(0);  // unused by the eval transform
    data::apply_transform(data::to_rgb(img), transform_, rng, out);
  }

  // Top-k of ready network inputs [N, 3, S, S] (any device), in batches.
  std::vector<Prediction> classify(const Tensor<float>& x, int k = 1) { return top_k(probabilities(x), k); }
  // The model's raw outputs and their softmax for ready inputs [N, 3, S, S]: [N, classes] float on the CPU
  // (with flip_tta: the mean probabilities of x and its mirror, and their log as the logits).
  Tensor<float> logits(const Tensor<float>& x) {
    return opts_.flip_tta() ? log_values(flip_probabilities(x)) : raw_logits(x);
  }
  Tensor<float> probabilities(const Tensor<float>& x) {
    NoGradGuard no_grad;
    return opts_.flip_tta() ? flip_probabilities(x) : softmax(raw_logits(x));
  }
  // Top-k of decoded images of any size and channel count.
  std::vector<Prediction> classify(const std::vector<data::Image>& images, int k = 1) {
    std::vector<Prediction> out;
    const int64_t s = transform_.size(), per = 3 * s * s;
    for (size_t b = 0; b < images.size(); b += static_cast<size_t>(opts_.batch_size())) {
      const size_t n = std::min(images.size() - b, static_cast<size_t>(opts_.batch_size()));
      Tensor<float> x = Tensor<float>::empty({static_cast<int64_t>(n), 3, s, s});
      for (size_t i = 0; i < n; ++i) preprocess(images[b + i], x.data() + static_cast<int64_t>(i) * per);
      auto p = classify(x, k);
      out.insert(out.end(), p.begin(), p.end());
    }
    return out;
  }
  Prediction classify(const data::Image& image, int k = 1) {
    return classify(std::vector<data::Image>{image}, k)[0];
  }

  // Top-k of image files, one result per path in order. Missing files, folders and files that fail to decode
  // get ok = false and the reason; the rest are classified in batches.
  std::vector<FileResult> classify_files(const std::vector<std::string>& paths, int k = 1) {
    std::vector<FileResult> out(paths.size());
    std::vector<size_t> pending;
    std::vector<data::Image> images;
    auto flush = [&] {
      auto p = classify(images, k);
      for (size_t i = 0; i < pending.size(); ++i) {
        out[pending[i]].ok = true;
        out[pending[i]].prediction = p[i];
      }
      pending.clear();
      images.clear();
    };
    for (size_t i = 0; i < paths.size(); ++i) {
      out[i].path = paths[i];
      if (io::is_directory(paths[i])) {
        out[i].error = "'" + paths[i] + "' is a folder, not an image";
        continue;
      }
      if (!io::path_exists(paths[i])) {
        out[i].error = "image '" + paths[i] + "' does not exist";
        continue;
      }
      try {
        images.push_back(data::load_image(paths[i]));
        pending.push_back(i);
      } catch (const Error& e) {
        out[i].error = e.what();
      }
      if (static_cast<int64_t>(images.size()) == opts_.batch_size()) flush();
    }
    if (!images.empty()) flush();
    return out;
  }

  const std::vector<std::string>& class_names() const { return names_; }
  const data::TransformOptions& transform() const { return transform_; }
  const ClassifierOptions& options() const { return opts_; }
  Model& model() { return *model_; }

 private:
  // The model's outputs for x, in batches.
  Tensor<float> raw_logits(const Tensor<float>& x) {
    RESNET_CHECK(x.defined() && x.rank() == 4 && x.dim(1) == 3,
                 "Classifier: expected images [N, 3, H, W], got ",
                 x.defined() ? x.shape().to_string() : std::string("undefined"));
    const int64_t classes = static_cast<int64_t>(names_.size());
    if (x.dim(0) <= opts_.batch_size()) return forward(x);
    const std::vector<float> all = x.to_vector();  // one host copy, sliced into batches
    const int64_t per = x.numel() / x.dim(0);
    std::vector<float> out;
    out.reserve(static_cast<size_t>(x.dim(0) * classes));
    for (int64_t b = 0; b < x.dim(0); b += opts_.batch_size()) {
      const int64_t n = std::min(opts_.batch_size(), x.dim(0) - b);
      std::vector<float> part(all.begin() + b * per, all.begin() + (b + n) * per);
      const std::vector<float> l =
          forward(Tensor<float>::from_vector(part, {n, 3, x.dim(2), x.dim(3)})).to_vector();
      out.insert(out.end(), l.begin(), l.end());
    }
    return Tensor<float>::from_vector(out, {x.dim(0), classes});
  }
  // The mean of the softmax of x and of its mirror image.
  Tensor<float> flip_probabilities(const Tensor<float>& x) {
    NoGradGuard no_grad;
    const Tensor<float> a = softmax(raw_logits(x)), b = softmax(raw_logits(flip_images(x)));
    return Tensor<float>::from_vector(mean_probabilities(a.to_vector(), b.to_vector()), a.shape());
  }
  // One batch through the model in eval mode (its mode put back after), as float logits on the CPU.
  Tensor<float> forward(const Tensor<float>& x) {
    const int64_t classes = static_cast<int64_t>(names_.size());
    NoGradGuard no_grad;
    const bool was_training = model_->is_training();
    model_->eval();
    Tensor<T> out;
    try {
      out = model_->forward(cast<T>(x.to(model_->device())));
    } catch (...) {
      model_->train(was_training);
      throw;
    }
    model_->train(was_training);
    RESNET_CHECK(out.rank() == 2 && out.dim(0) == x.dim(0) && out.dim(1) == classes,
                 "Classifier: the model gives ", out.shape().to_string(), " for ", x.dim(0),
                 " images; expected [", x.dim(0), ", ", classes, "] (one logit per class name)");
    return cast<float>(out.to(Device::cpu()));
  }

  std::vector<Prediction> top_k(const Tensor<float>& probabilities, int k) const {
    const int64_t classes = static_cast<int64_t>(names_.size());
    RESNET_CHECK(k >= 1, "Classifier: k must be at least 1, got ", k);
    const int64_t kk = std::min<int64_t>(k, classes);
    const std::vector<float> prob = probabilities.to_vector();
    const int64_t n = probabilities.dim(0);
    std::vector<Prediction> out(static_cast<size_t>(n));
    std::vector<int64_t> order(static_cast<size_t>(classes));
    for (int64_t i = 0; i < n; ++i) {
      const float* row = &prob[static_cast<size_t>(i * classes)];
      for (int64_t c = 0; c < classes; ++c) order[static_cast<size_t>(c)] = c;
      std::partial_sort(order.begin(), order.begin() + kk, order.end(), [row](int64_t a, int64_t b) {
        return row[a] > row[b] || (row[a] == row[b] && a < b);
      });
      for (int64_t j = 0; j < kk; ++j) {
        const int64_t c = order[static_cast<size_t>(j)];
        out[static_cast<size_t>(i)].top.push_back(ClassScore{c, names_[static_cast<size_t>(c)], row[c]});
      }
    }
    return out;
  }

  std::shared_ptr<Model> model_;
  std::vector<std::string> names_;
  data::TransformOptions transform_;
  ClassifierOptions opts_;
};

// The float classifier: what a checkpoint of ours is evaluated with.
using Classifier = BasicClassifier<float>;

}  // namespace infer
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/infer/classifier_inl.hpp"
#endif
