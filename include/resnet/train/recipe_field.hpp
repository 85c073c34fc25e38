// One setting of RecipeOptions as a table row (RecipeField): its key (its flag spelling without "--", and
// its checkpoint metadata key), its canonical text, its parse from text and its one check, used wherever a
// value comes from (code, a command line, a checkpoint being resumed), and its help. The table itself is
// recipe_fields.hpp.
#pragma once

#include "resnet/core/abi.hpp"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "resnet/train/recipe_options.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

// Recipe: saved in checkpoints; on resume it comes from the checkpoint and a setting may only repeat it.
// Kept: saved; on resume the checkpoint's unless set. Run: this session's only, not saved.
enum class FieldRole { Recipe, Kept, Run };

struct RecipeField {
  std::string key;
  FieldRole role = FieldRole::Run;
  std::string fallback;  // a Recipe field missing from an older checkpoint takes this ("": required)
  std::string meta, help, default_doc;               // for --help: "--key META  help (default: ...)"
  std::function<bool(const RecipeOptions&)> is_set;  // given, or not the default
  std::function<std::string(const RecipeOptions&)> text;
  std::function<void(RecipeOptions&, const std::string&)> parse;  // checked; throws OptionError
  std::function<void(const RecipeOptions&)> check;                // the value as set; throws OptionError
};

namespace detail {

inline std::string number_text(double v, const char* f) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}
// The shortest text that reads back as exactly v.
inline std::string number_text(double v) {
  for (int digits = 1; digits < 17; ++digits) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) return buf;
  }
  return number_text(v, "%.17g");
}

// A float as Python prints round(x, 3): "1.0", "0.87", "0.998" (the seed's prediction lines).
inline std::string round3_text(double v) {
  std::string s = number_text(v, "%.3f");
  while (s.size() > 1 && s.back() == '0' && s[s.size() - 2] != '.') s.pop_back();
  return s;
}

// The kinds of value: each parses text, checks a value and writes it canonically ("0.10" and "0.1" alike).
struct IntIn {
  int64_t lo, hi;
  std::string what() const {
    return "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  }
  int64_t parse(const std::string& key, const std::string& s) const {
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE) bad(key, s);
    check(key, v);
    return v;
  }
  void check(const std::string& key, int64_t v) const {
    if (v < lo || v > hi) bad(key, std::to_string(v));
  }
  std::string text(int64_t v) const { return std::to_string(v); }
  [[noreturn]] void bad(const std::string& key, const std::string& s) const {
    option_fail("--", key, ": expected ", what(), ", got '", s, "'");
  }
};
struct NumberIn {
  double lo, hi;
  double parse(const std::string& key, const std::string& s) const {
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size()) bad(key, s);
    check(key, v);
    return v;
  }
  void check(const std::string& key, double v) const {
    if (!(v >= lo && v <= hi)) bad(key, number_text(v, "%g"));  // NaN fails too
  }
  std::string text(double v) const { return number_text(v); }
  [[noreturn]] void bad(const std::string& key, const std::string& s) const {
    option_fail("--", key, ": expected a number in [", number_text(lo, "%g"), ", ", number_text(hi, "%g"),
                "], got '", s, "'");
  }
};
struct OneOf {
  std::vector<std::string> values;
  std::string parse(const std::string& key, const std::string& s) const {
    check(key, s);
    return s;
  }
  void check(const std::string& key, const std::string& v) const {
    for (const auto& c : values)
      if (c == v) return;
    std::vector<std::string> named;  // "" (the default's stand-in) is not offered
    for (const auto& c : values)
      if (!c.empty()) named.push_back(c);
    std::string list;
    for (size_t i = 0; i < named.size(); ++i)
      list += (i ? i + 1 == named.size() ? " or " : ", " : "") + named[i];
    option_fail("--", key, ": expected ", list, ", got '", v, "'");
  }
  std::string text(const std::string& v) const { return v; }
};
struct OnOff {
  bool parse(const std::string& key, const std::string& s) const {
    if (s == "on") return true;
    if (s == "off") return false;
    option_fail("--", key, ": expected on or off, got '", s, "'");
  }
  void check(const std::string&, bool) const {}
  std::string text(bool v) const { return v ? "on" : "off"; }
};
struct AnyText {
  std::string parse(const std::string&, const std::string& s) const { return s; }
  void check(const std::string&, const std::string&) const {}
  std::string text(const std::string& v) const { return v; }
};

template <typename T>
struct Optional : std::false_type {};
template <typename T>
struct Optional<std::optional<T>> : std::true_type {};

// One table row from a kind and an accessor `ref(RecipeOptions&) -> T&` (T may be std::optional).
template <typename Kind, typename Ref>
RecipeField field(const std::string& key, FieldRole role, Kind kind, Ref ref, std::string meta,
                  std::string help, std::string default_doc = "", std::string fallback = "") {
  using V = std::decay_t<decltype(ref(std::declval<RecipeOptions&>()))>;
  auto get = [ref](const RecipeOptions& o) -> const V& { return ref(const_cast<RecipeOptions&>(o)); };
  RecipeField f;
  f.key = key;
  f.role = role;
  f.fallback = std::move(fallback);
  f.meta = std::move(meta);
  f.help = std::move(help);
  f.default_doc = std::move(default_doc);
  f.is_set = [get](const RecipeOptions& o) {
    if constexpr (Optional<V>::value)
      return get(o).has_value();
    else
      return !(get(o) == get(RecipeOptions()));
  };
  f.text = [get, kind](const RecipeOptions& o) -> std::string {
    if constexpr (Optional<V>::value)
      return get(o) ? kind.text(*get(o)) : std::string();
    else
      return kind.text(get(o));
  };
  f.parse = [ref, kind, key](RecipeOptions& o, const std::string& s) {
    using T = std::decay_t<decltype(kind.parse(key, s))>;
    if constexpr (Optional<V>::value)
      ref(o) = static_cast<typename V::value_type>(static_cast<T>(kind.parse(key, s)));
    else
      ref(o) = static_cast<V>(static_cast<T>(kind.parse(key, s)));
  };
  f.check = [get, kind, key](const RecipeOptions& o) {
    if constexpr (Optional<V>::value) {
      if (get(o)) kind.check(key, *get(o));
    } else {
      kind.check(key, get(o));
    }
  };
  return f;
}

}  // namespace detail

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
