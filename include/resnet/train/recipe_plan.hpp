// What a recipe run will compute: the options with their defaults resolved and checked (resolve_recipe),
// or, with RecipeOptions::resume, the recipe saved in the checkpoint, where a setting may only repeat the
// saved one or raise the number of epochs (plan_recipe).
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "resnet/io/checkpoint.hpp"
#include "resnet/train/recipe_fields.hpp"
#include "resnet/train/recipe_options.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

// RecipeOptions::freeze as the ResNet's top-level children to freeze: none, backbone (all but fc) or a comma
// list of them.
inline std::vector<std::string> recipe_freeze_list(const std::string& what) {
  const std::vector<std::string> parts{"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"};
  if (what == "none") return {};
  if (what == "backbone") return {parts.begin(), parts.end() - 1};
  std::vector<std::string> out;
  for (size_t start = 0; start <= what.size();) {
    const size_t comma = std::min(what.find(',', start), what.size());
    const std::string name = what.substr(start, comma - start);
    if (std::find(parts.begin(), parts.end(), name) == parts.end())
      detail::option_fail("--freeze: '", name,
                          "' is not none, backbone or one of conv1, bn1, layer1..layer4, fc");
    out.push_back(name);
    start = comma + 1;
  }
  if (out.size() == parts.size())
    detail::option_fail("--freeze: that freezes everything; nothing would train");
  return out;
}

// Fills every unset default (see RecipeOptions) and checks every setting; a seed left unset is drawn at
// random (short enough to retype).
inline RecipeOptions resolve_recipe(RecipeOptions o) {
  for (const auto& f : recipe_fields()) f.check(o);
  const bool sgd = o.optimizer() == "sgd";
  if (!o.lr()) o.lr(sgd ? 0.1 : 1e-3);
  if (!o.wd()) o.wd(sgd ? 5e-4 : 0.05);
  if (!o.eval_size()) o.eval_size(o.size());
  if (!o.eval_crop()) o.eval_crop(o.aug() == "rrc" ? 0.875 : 1.0);
  if (!o.padding()) o.padding(o.size() / 8);
  if (*o.padding() > o.size())
    detail::option_fail("--padding: expected an integer in [0, ", o.size(), "] (--size), got '", *o.padding(),
                        "'");
  if (!o.seed()) {
    std::random_device rd;
    o.seed((static_cast<uint64_t>(rd()) << 32 | rd()) % 1000000000ULL);
  }
  if (!o.log_every()) o.log_every(20);
  if (!o.sync_bn()) o.sync_bn(false);
  if (o.momentum() == 0) o.nesterov(false);  // Nesterov needs momentum
  recipe_freeze_list(o.freeze());
  return o;
}

// The settings saved in each checkpoint (TrainingState::extra): the recipe's and the kept ones.
inline std::map<std::string, std::string> recipe_metadata(const RecipeOptions& resolved) {
  std::map<std::string, std::string> m;
  for (const auto& f : recipe_fields())
    if (f.role != FieldRole::Run) m[f.key] = f.text(resolved);
  if (!resolved.init().empty()) m["init"] = resolved.init();
  return m;
}

struct RecipePlan {
  RecipeOptions recipe;  // resolved
  bool resuming = false;
  int64_t epochs_before = 0;  // > 0: a resumed run made longer, from this many epochs
  int64_t resumed_step = 0;
  std::string out_dir;
};

namespace detail {

inline void check_checkpoint_file(const std::string& flag, const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error("--" + flag + ": checkpoint '" + path + "' does not exist");
}

// The resumed run's recipe: the checkpoint's, where `asked` may only repeat it (or raise epochs).
inline RecipePlan plan_resume(const RecipeOptions& asked) {
  const std::string& ck = asked.resume();
  check_checkpoint_file("resume", ck);
  const io::TrainingState st = io::read_training_state(ck);
  if (st.arch.empty())
    throw Error("--resume: '" + ck + "' has no training metadata (not written by " + asked.name() +
                " train)");
  if (st.optimizer.empty())
    throw Error("--resume: '" + ck + "' holds weights only; resume from the run's last.safetensors");
  RecipePlan p;
  p.resuming = true;
  p.resumed_step = st.step;
  RecipeOptions saved = asked;  // Run settings are this session's
  auto pinned = [&](const RecipeField& f) {
    return f.is_set(asked) ||
           std::find(asked.pinned().begin(), asked.pinned().end(), f.key) != asked.pinned().end();
  };
  for (const auto& f : recipe_fields()) {
    auto it = st.extra.find(f.key);
    if (f.role == FieldRole::Recipe) {
      if (it == st.extra.end() && f.fallback.empty())
        throw Error("--resume: '" + ck + "' lacks the recipe field '" + f.key + "'");
      f.parse(saved, it == st.extra.end() ? f.fallback : it->second);
    } else if (f.role == FieldRole::Kept && it != st.extra.end() && !pinned(f)) {
      f.parse(saved, it->second);
    }
  }
  for (const auto& f : recipe_fields()) {
    if (f.role != FieldRole::Recipe || !pinned(f) || f.text(asked) == f.text(saved)) continue;
    if (f.key == "epochs" && asked.epochs() > saved.epochs()) continue;  // a longer run: allowed
    option_fail("--", f.key, " ", f.text(asked), " differs from the resumed run's ", f.text(saved),
                "; a resumed run keeps its recipe (drop the flag", f.key == "epochs" ? ", or raise it" : "",
                ")");
  }
  if (pinned(recipe_field("epochs")) && asked.epochs() > saved.epochs()) {
    p.epochs_before = saved.epochs();
    saved.epochs(asked.epochs());
  }
  if (!asked.init().empty()) option_fail("--init starts a new run; a resumed run has its weights");
  auto init = st.extra.find("init");
  saved.init(init == st.extra.end() ? std::string() : init->second);
  p.recipe = resolve_recipe(saved);
  p.out_dir = asked.out() ? *asked.out() : std::filesystem::path(ck).parent_path().string();
  return p;
}

}  // namespace detail

inline RecipePlan plan_recipe(const RecipeOptions& asked) {
  if (!asked.resume().empty()) return detail::plan_resume(asked);
  RecipePlan p;
  p.recipe = resolve_recipe(asked);
  if (!p.recipe.init().empty()) detail::check_checkpoint_file("init", p.recipe.init());
  p.out_dir = asked.out() ? *asked.out() : std::string("runs/recipe");
  return p;
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
