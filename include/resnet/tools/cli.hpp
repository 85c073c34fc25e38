// A small command-line flag parser for the example programs: `--name value` or `--name=value`, typed and
// range-checked getters whose errors name the flag and the bad value, and a help text that lists every
// flag with its default. Unknown flags are errors (with the closest known flag suggested); a flag given twice
// takes its last value, so scripts can append overrides to a common set.
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace tools {

// A mistake on the command line (as opposed to a failure while running): programs exit with status 2.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& what) : Error(what) {}
};

class FlagSet {
 public:
  // `usage`: the synopsis line; `about`: a paragraph under it.
  FlagSet(std::string usage, std::string about) : usage_(std::move(usage)), about_(std::move(about)) {}

  // A flag taking a value. `default_value` is what str() returns when the flag is absent; `default_doc`,
  // when not empty, is what the help shows instead (for defaults computed at run time).
  FlagSet& add(const std::string& name, const std::string& meta, const std::string& default_value,
               const std::string& help, const std::string& default_doc = "") {
    RESNET_CHECK(name.rfind("--", 0) == 0, "flag names start with --, got '", name, "'");
    RESNET_CHECK(!index_.count(name), "flag ", name, " declared twice");
    index_[name] = flags_.size();
    flags_.push_back(Flag{name, meta, default_value, default_doc, help, default_value, false});
    return *this;
  }
  // Text printed after the flag list (notes, examples).
  FlagSet& epilog(const std::string& text) {
    epilog_ = text;
    return *this;
  }
  // Accepts positional arguments (IMAGE...) instead of refusing them.
  FlagSet& positional(const std::string& meta) {
    positional_meta_ = meta;
    return *this;
  }

  void parse(const std::vector<std::string>& args) {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--help" || a == "-h") {
        help_ = true;
        continue;
      }
      if (a.size() > 1 && a[0] == '-' &&
          !(a.size() > 1 && (std::isdigit(static_cast<unsigned char>(a[1])) || a[1] == '.'))) {
        std::string name = a, value;
        bool inline_value = false;
        auto eq = a.find('=');
        if (eq != std::string::npos) {
          name = a.substr(0, eq);
          value = a.substr(eq + 1);
          inline_value = true;
        }
        auto it = index_.find(name);
        if (it == index_.end()) throw UsageError("unknown flag '" + name + "'" + suggestion(name));
        Flag& f = flags_[it->second];
        if (!inline_value) {
          if (i + 1 >= args.size()) throw UsageError(name + ": missing value (" + f.meta + ")");
          value = args[++i];
        }
        f.value = value;
        f.given = true;
      } else {
        if (positional_meta_.empty()) throw UsageError("unexpected argument '" + a + "'");
        positional_args_.push_back(a);
      }
    }
  }

  // Replaces a flag's value without marking it as given (e.g. values restored from a checkpoint).
  void set(const std::string& name, const std::string& value) {
    auto it = index_.find(name);
    RESNET_CHECK(it != index_.end(), "internal: flag ", name, " was never declared");
    flags_[it->second].value = value;
  }

  bool help_requested() const { return help_; }
  bool given(const std::string& name) const { return get(name).given; }
  const std::string& str(const std::string& name) const { return get(name).value; }
  const std::vector<std::string>& positional_args() const { return positional_args_; }

  int64_t integer(const std::string& name, int64_t lo, int64_t hi) const {
    const std::string& v = str(name);
    errno = 0;
    char* end = nullptr;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || errno != 0 || end != v.c_str() + v.size() || x < lo || x > hi)
      throw UsageError(name + ": expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                       "], got '" + v + "'");
    return static_cast<int64_t>(x);
  }
  uint64_t unsigned_integer(const std::string& name) const {
    const std::string& v = str(name);
    errno = 0;
    char* end = nullptr;
    unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || v[0] == '-' || errno != 0 || end != v.c_str() + v.size())
      throw UsageError(name + ": expected a non-negative integer, got '" + v + "'");
    return static_cast<uint64_t>(x);
  }
  double number(const std::string& name, double lo, double hi) const {
    const std::string& v = str(name);
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || end != v.c_str() + v.size() || !std::isfinite(x) || x < lo || x > hi)
      throw UsageError(name + ": expected a number in [" + short_number(lo) + ", " + short_number(hi) +
                       "], got '" + v + "'");
    return x;
  }
  std::string choice(const std::string& name, const std::vector<std::string>& options) const {
    const std::string& v = str(name);
    std::string list;
    for (size_t i = 0; i < options.size(); ++i) {
      if (options[i] == v) return v;
      list += (i ? (i + 1 == options.size() ? " or " : ", ") : "") + options[i];
    }
    throw UsageError(name + ": expected " + list + ", got '" + v + "'");
  }
  bool on_off(const std::string& name) const { return choice(name, {"on", "off"}) == "on"; }

  std::string help_text() const {
    std::string s = "usage: " + usage_ + "\n";
    if (!about_.empty()) s += "\n" + wrap(about_, 0);
    s += "\nflags:\n";
    size_t width = 0;
    for (const auto& f : flags_) width = std::max(width, f.name.size() + 1 + f.meta.size());
    for (const auto& f : flags_) {
      std::string left = f.name + " " + f.meta;
      std::string def =
          !f.default_doc.empty() ? f.default_doc : (f.default_value.empty() ? "none" : f.default_value);
      s += "  " + left + std::string(width + 2 - left.size(), ' ') +
           wrap(f.help + " (default: " + def + ")", width + 4);
    }
    s += "  --help" + std::string(width + 2 - 6, ' ') + "print this help and exit\n";
    if (!epilog_.empty()) s += "\n" + wrap(epilog_, 0);
    return s;
  }

 private:
  struct Flag {
    std::string name, meta, default_value, default_doc, help, value;
    bool given;
  };
  const Flag& get(const std::string& name) const {
    auto it = index_.find(name);
    RESNET_CHECK(it != index_.end(), "internal: flag ", name, " was never declared");
    return flags_[it->second];
  }
  // Word-wraps `text` to kWidth columns; continuation lines are indented by `indent`.
  static std::string wrap(const std::string& text, size_t indent) {
    constexpr size_t kWidth = 110;
    std::string out, line;
    size_t col = indent, pos = 0;
    while (pos < text.size()) {
      size_t end = text.find(' ', pos);
      if (end == std::string::npos) end = text.size();
      std::string word = text.substr(pos, end - pos);
      if (!line.empty() && col + 1 + word.size() > kWidth) {
        out += line + "\n" + std::string(indent, ' ');
        line.clear();
        col = indent;
      }
      if (!line.empty()) {
        line += ' ';
        ++col;
      }
      line += word;
      col += word.size();
      pos = end + 1;
    }
    return out + line + "\n";
  }
  static std::string short_number(double x) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%g", x);
    return buf;
  }
  static size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    return row[b.size()];
  }
  std::string suggestion(const std::string& name) const {
    std::string best;
    size_t best_d = 3;  // only close misspellings
    for (const auto& f : flags_) {
      size_t d = edit_distance(name, f.name);
      if (d < best_d) {
        best_d = d;
        best = f.name;
      }
    }
    return best.empty() ? std::string() : "; did you mean " + best + "?";
  }

  std::string usage_, about_, epilog_, positional_meta_;
  std::vector<Flag> flags_;
  std::map<std::string, size_t> index_;
  std::vector<std::string> positional_args_;
  bool help_ = false;
};

// "a,b,c" -> {"a", "b", "c"} (empty items dropped); an empty list is an error naming the flag.
inline std::vector<std::string> split_list(const std::string& flag, const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  if (out.empty()) throw UsageError(flag + ": empty list '" + s + "'");
  return out;
}

// A positive decimal integer, or a UsageError naming the flag and the value.
inline int64_t parse_positive(const std::string& flag, const std::string& value) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno == ERANGE || v <= 0)
    throw UsageError(flag + ": expected a positive integer, got '" + value + "'");
  return v;
}

}  // namespace tools
}  // namespace RESNET_ABI
}  // namespace resnet
