// Using what the recipe wrote: a checkpoint's accuracy on a split of an image folder (evaluate_recipe) and
// the classes of image files (predict_recipe), each with the preprocessing the checkpoint was trained for
// (its eval-size and eval-crop metadata), and the seed's line formats.
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "resnet/infer/classifier.hpp"
#include "resnet/io/checkpoint.hpp"
#include "resnet/io/save_load.hpp"
#include "resnet/models/resnet.hpp"
#include "resnet/tools/progress.hpp"
#include "resnet/train/evaluate.hpp"
#include "resnet/train/recipe_data.hpp"
#include "resnet/train/recipe_fields.hpp"
#include "resnet/train/recipe_runtime.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

// A checkpoint's training metadata, refused with a clear message when it has none.
inline io::TrainingState recipe_checkpoint(const std::string& weights, const std::string& program) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(weights, ec))
    throw Error("--weights: checkpoint '" + weights + "' does not exist");
  io::TrainingState st = io::read_training_state(weights);
  if (st.arch.empty() || st.class_names.empty())
    throw Error("--weights: '" + weights +
                "' has no training metadata (architecture, class names); use a checkpoint written by " +
                program + " train");
  return st;
}

// The recipe the checkpoint recorded (eval-size, eval-crop), as far as it did.
inline RecipeOptions recipe_of(const io::TrainingState& st) {
  RecipeOptions r;
  r.size(96);  // the recipe's default size
  for (const char* key : {"size", "eval-size", "eval-crop"}) {
    auto it = st.extra.find(key);
    if (it != st.extra.end()) set_recipe_value(r, key, it->second);
  }
  if (!r.eval_crop()) r.eval_crop(1.0);
  return r;
}

// The test (or train) split of RecipeOptions::data, limited to RecipeOptions::limit images, evaluated in
// batches of RecipeOptions::batch on RecipeOptions::device by the checkpoint `weights`.
inline EvalResult evaluate_recipe(const RecipeOptions& o, const std::string& weights,
                                  const std::string& split = "test") {
  if (split != "test" && split != "train")
    detail::option_fail("--split: expected test or train, got '", split, "'");
  for (const auto& f : recipe_fields()) f.check(o);
  const RecipeRuntime rt = recipe_runtime(o, false);
  const io::TrainingState st = recipe_checkpoint(weights, o.name());
  const RecipeOptions saved = recipe_of(st);
  auto mo = models::ResNetOptions().num_classes(static_cast<int64_t>(st.class_names.size()));
  auto model = models::resnet<float>(st.arch, mo);
  io::load(*model, weights);
  model->to(rt.device);
  model->eval();
  if (o.data().empty()) throw OptionError("--data: no data folder given");
  auto fo = data::ImageFolderOptions().limit(o.limit());
  data::ImageFolder folder(recipe_split_dir(o.data(), split), fo);
  if (folder.classes() != st.class_names)
    throw Error("the classes of '" + folder.root() + "' differ from the checkpoint's");
  auto set = std::make_shared<data::ImageFolderDataset>(std::move(folder), recipe_eval_transform(saved));
  tools::ProgressLine progress(30.0, o.progress());
  auto eo = EvalOptions()
                .batch(o.batch())
                .flip_tta(o.tta())
                .workers(rt.workers)
                .skips(std::make_shared<SkipLog>())
                .progress([&progress](int64_t done, int64_t total) {
                  progress.update("eval testing " + std::to_string(done) + "/" + std::to_string(total));
                });
  const EvalResult ev = evaluate(*model, set, eo, *rt.group);
  progress.clear();
  if (!eo.skips()->indices().empty())
    std::fprintf(stderr, "warning: %lld unreadable image files were skipped (named above)\n",
                 static_cast<long long>(eo.skips()->indices().size()));
  return ev;
}

// "<split> images: N av_test_loss: L av_test_acc: A"
inline std::string eval_line(const std::string& split, const EvalResult& ev) {
  return split + " images: " + std::to_string(ev.images) +
         " av_test_loss: " + detail::number_text(ev.loss, "%.3f") +
         " av_test_acc: " + detail::number_text(ev.acc, "%.3f");
}

struct PredictOptions {
  RESNET_ARG(int, top) = 1;         // classes per image, best first
  RESNET_ARG(int64_t, batch) = 16;  // images per forward pass
  RESNET_ARG(bool, fuse) = true;    // fold BatchNorm into the convolutions (same outputs, faster)
};

struct PredictReport {
  std::vector<std::string> errors;  // inputs that gave no image to classify (a folder without images)
  std::vector<infer::FileResult> results;
  int64_t classified = 0;
  int64_t failed() const {
    return static_cast<int64_t>(results.size()) - classified + static_cast<int64_t>(errors.size());
  }
};

// predict's inputs: files as given, folders expanded to their .jpg/.jpeg/.png images (sorted); a folder
// without images is an error line, like an unreadable file.
inline std::vector<std::string> expand_image_inputs(const std::vector<std::string>& args,
                                                    std::vector<std::string>& errors) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  for (const auto& a : args) {
    std::error_code ec;
    if (!fs::is_directory(a, ec)) {
      out.push_back(a);  // missing or unreadable files are reported by the Classifier
      continue;
    }
    std::vector<std::string> found;
    for (auto it = fs::recursive_directory_iterator(a, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      std::string ext = it->path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      if (ext == ".jpg" || ext == ".jpeg" || ext == ".png") found.push_back(it->path().string());
    }
    if (ec) errors.push_back("folder '" + a + "' cannot be read: " + ec.message());
    if (found.empty() && !ec) errors.push_back("folder '" + a + "' has no .jpg, .jpeg or .png images");
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

// Classifies image files and folders with a recipe checkpoint on `device`.
inline PredictReport predict_recipe(const std::string& weights, const std::vector<std::string>& inputs,
                                    const PredictOptions& po, const Device& device,
                                    const std::string& program = "recipe") {
  if (po.top() < 1 || po.top() > 1000)
    detail::option_fail("--top: expected an integer in [1, 1000], got '", po.top(), "'");
  const RecipeOptions saved = recipe_of(recipe_checkpoint(weights, program));
  auto co = infer::ClassifierOptions()
                .device(device)
                .batch_size(po.batch())
                .fuse(po.fuse())
                .eval_size(static_cast<int>(saved.eval_size().value_or(saved.size())))
                .eval_crop(*saved.eval_crop());
  auto clf = infer::Classifier::open(weights, co);
  PredictReport rep;
  rep.results = clf.classify_files(expand_image_inputs(inputs, rep.errors), po.top());
  for (const auto& r : rep.results) rep.classified += r.ok ? 1 : 0;
  return rep;
}

// The seed's line: "this picture might be: <class> , score: <probability, as Python's round(p, 3)>".
inline std::string prediction_line(const infer::FileResult& r) {
  const auto& best = r.prediction.top.front();
  return "this picture might be: " + best.label + " , score: " + detail::round3_text(best.probability);
}

// path,class,score,top_k,error rows (an unclassified file: its error).
inline std::string prediction_csv(const PredictReport& rep) {
  auto field = [](const std::string& v) {
    if (v.find_first_of(",\"\n\r") == std::string::npos) return v;
    std::string q = "\"";
    for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  std::string csv = "path,class,score,top_k,error\n";
  for (const auto& r : rep.results) {
    if (!r.ok) {
      csv += field(r.path) + ",,,," + field(r.error) + "\n";
      continue;
    }
    std::string topk;
    for (const auto& c : r.prediction.top)
      topk += (topk.empty() ? "" : " ") + c.label + ":" + detail::number_text(c.probability, "%.6f");
    const auto& best = r.prediction.top.front();
    csv += field(r.path) + "," + field(best.label) + "," + detail::number_text(best.probability, "%.6f") +
           "," + field(topk) + ",\n";
  }
  return csv;
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
