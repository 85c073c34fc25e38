// The data of a recipe run: DIR/train and DIR/test, one sub-folder per class in each (the same classes), with
// the recipe's training augmentation and its evaluation transform (the one Classifier uses).
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "resnet/data/data.hpp"
#include "resnet/data/eval_transform.hpp"
#include "resnet/train/recipe_options.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

struct RecipeData {
  std::string dir;
  std::vector<std::string> classes;
  int64_t n_train = 0, n_test = 0;
  std::shared_ptr<const data::Dataset> train, test;
};

// DIR/<split>, which must exist.
inline std::string recipe_split_dir(const std::string& dir, const std::string& split) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) throw Error("--data: folder '" + dir + "' does not exist");
  const std::filesystem::path p = std::filesystem::path(dir) / split;
  if (!std::filesystem::is_directory(p, ec))
    throw Error("data folder '" + dir + "' has no " + split +
                "/ sub-folder (expected the layout DIR/train/<class>/*.jpg and DIR/test/<class>/*.jpg)");
  return p.string();
}

// The training transform of a resolved recipe: aug rrc, crop (the seed's pad and crop) or none.
inline data::TransformOptions recipe_train_transform(const RecipeOptions& r) {
  auto t = data::TransformOptions()
               .size(static_cast<int>(r.size()))
               .augment(data::parse_augment(r.aug()))
               .padding(static_cast<int>(r.padding().value_or(r.size() / 8)))
               .scale_min(r.crop_scale());
  t.crop_fraction(r.eval_crop().value_or(1.0));  // aug none: the evaluation crop
  t.auto_augment(data::AutoAugmentOptions()
                     .policy(data::parse_auto_augment(r.auto_augment()))
                     .num_ops(static_cast<int>(r.ra_ops()))
                     .magnitude(static_cast<int>(r.ra_magnitude())));
  t.erasing(data::RandomErasingOptions().p(r.erase()));
  t.validate();
  return t;
}

inline data::TransformOptions recipe_eval_transform(const RecipeOptions& r) {
  return data::eval_transform(static_cast<int>(r.eval_size().value_or(r.size())),
                              r.eval_crop().value_or(1.0));
}

// Both splits of a resolved recipe's data folder, limited to RecipeOptions::limit images each.
inline RecipeData recipe_data(const RecipeOptions& r) {
  if (r.data().empty()) throw OptionError("--data: no data folder given");
  auto fo = data::ImageFolderOptions().limit(r.limit());
  data::ImageFolder train_folder(recipe_split_dir(r.data(), "train"), fo);
  data::ImageFolder test_folder(recipe_split_dir(r.data(), "test"), fo);
  RecipeData d;
  d.dir = r.data();
  d.classes = train_folder.classes();
  if (test_folder.classes() != d.classes)
    throw Error("data folder '" + d.dir + "': train/ and test/ have different class folders");
  if (d.classes.size() < 2)
    throw Error("data folder '" + d.dir + "': train/ has " + std::to_string(d.classes.size()) +
                " class folder(s); a classifier needs at least two");
  d.n_train = train_folder.size();
  d.n_test = test_folder.size();
  d.train = std::make_shared<data::ImageFolderDataset>(std::move(train_folder), recipe_train_transform(r));
  d.test = std::make_shared<data::ImageFolderDataset>(std::move(test_folder), recipe_eval_transform(r));
  return d;
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
