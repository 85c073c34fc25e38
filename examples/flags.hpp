// What the example, benchmark and test programs add to CLI11 (<CLI/CLI.hpp>, Debian's libcli11-dev): help
// lines that end in "(default: X)", validators whose messages read as the library's checks, and one parse
// that prints --help (exit 0) or a command-line mistake as "PROGRAM: what (see PROGRAM --help)" (exit 2).
#pragma once

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace flags {

constexpr int kExitUsage = 2;  // a bad command line

// "  --epochs N    epochs to train (default: 20)": the default from default_str() (capture_default_str()).
class HelpFormatter : public CLI::Formatter {
 public:
  HelpFormatter() { column_width(28); }
  std::string make_option_desc(const CLI::Option* opt) const override {
    const std::string& d = opt->get_default_str();
    return wrap(opt->get_description() + (d.empty() ? "" : " (default: " + d + ")"),
                110 - get_column_width());
  }
  // "--runs N": the option text when set, else the value's type (the default goes in the description).
  std::string make_option_opts(const CLI::Option* opt) const override {
    if (!opt->nonpositional()) return "";  // a positional's name is its metavariable
    if (!opt->get_option_text().empty()) return " " + opt->get_option_text();
    return opt->get_type_size() != 0 ? " " + opt->get_type_name() : "";
  }
  std::string make_footer(const CLI::App* app) const override {
    return app->get_footer().empty() ? "" : wrap(app->get_footer(), 110) + "\n";
  }
  // Words on lines of at most `width` columns (CLI11 indents the continuation lines of a description).
  static std::string wrap(const std::string& text, size_t width) {
    std::string out, line;
    size_t pos = 0;
    while (pos <= text.size()) {
      size_t end = std::min(text.find_first_of(" \n", pos), text.size());
      const std::string word = text.substr(pos, end - pos);
      if (!line.empty() && line.size() + 1 + word.size() > width) out += line + "\n", line.clear();
      line += (line.empty() ? "" : " ") + word;
      if (end < text.size() && text[end] == '\n') out += line + "\n", line.clear();
      pos = end + 1;
    }
    return out + line;
  }
};

// An app with our help format; a flag given twice takes its last value; unknown flags are reported by parse()
// as "unknown flag '--x'". Call it before adding subcommands (they inherit it).
inline void setup(CLI::App& app) {
  app.formatter(std::make_shared<HelpFormatter>());
  app.allow_extras();
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // scripts append overrides
  app.set_help_flag("-h,--help", "print this help and exit");
}

inline CLI::Validator int_in(long long lo, long long hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        char* end = nullptr;
        const long long v = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || *end != '\0' || v < lo || v > hi)
          return "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" +
                 s + "'";
        return "";
      },
      "");
}
inline CLI::Validator number_in(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != '\0' || !(v >= lo && v <= hi))
          return "expected a number in [" + CLI::detail::to_string(lo) + ", " + CLI::detail::to_string(hi) +
                 "], got '" + s + "'";
        return "";
      },
      "");
}
inline CLI::Validator one_of(std::vector<std::string> values) {
  return CLI::Validator(
      [values](std::string& s) -> std::string {
        std::string list;
        for (size_t i = 0; i < values.size(); ++i) {
          if (values[i] == s) return "";
          list += (i ? i + 1 == values.size() ? " or " : ", " : "") + values[i];
        }
        return "expected " + list + ", got '" + s + "'";
      },
      "");
}
inline CLI::Validator on_off() { return one_of({"on", "off"}); }
inline bool is_on(const std::string& v) { return v == "on"; }

// "a,b,c" -> {"a", "b", "c"}; empty items are refused by the caller's validator.
inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = std::min(s.find(',', start), s.size());
    out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}
// Every item of a comma list passes `item`.
inline CLI::Validator list_of(CLI::Validator item) {
  return CLI::Validator(
      [item](std::string& s) -> std::string {
        for (std::string v : split_list(s)) {
          const std::string e = item(v);
          if (!e.empty()) return e;
        }
        return "";
      },
      "");
}

// A timing program's network and loop: the same flags, checks and help wherever they appear. The fields'
// values when added are the defaults shown.
struct NetworkLoop {
  std::string arch = "resnet18";
  int64_t size = 128, classes = 1000, steps = 10, warmup = 3;
  int threads = 1;
};
inline void add_network_loop(CLI::App& app, NetworkLoop& n, const std::vector<std::string>& archs) {
  app.add_option("--arch", n.arch, "network")
      ->option_text("NAME")
      ->check(one_of(archs))
      ->capture_default_str();
  app.add_option("--size", n.size, "input height = width")
      ->option_text("PX")
      ->check(int_in(8, 4096))
      ->capture_default_str();
  app.add_option("--classes", n.classes, "classifier outputs")
      ->option_text("N")
      ->check(int_in(2, 100000))
      ->capture_default_str();
  app.add_option("--threads", n.threads, "CPU threads per rank")
      ->option_text("N")
      ->check(int_in(1, 1024))
      ->capture_default_str();
  app.add_option("--steps", n.steps, "timed steps")
      ->option_text("N")
      ->check(int_in(1, 100000))
      ->capture_default_str();
  app.add_option("--warmup", n.warmup, "untimed steps first")
      ->option_text("N")
      ->check(int_in(0, 100000))
      ->capture_default_str();
}

// Parses; returns -1 to go on, or the status to exit with (0 after --help, 2 after a mistake, reported as
// "PROGRAM: what (see PROGRAM [COMMAND] --help)").
inline int parse(CLI::App& app, int argc, char** argv) {
  std::string where = app.get_name();
  try {
    app.parse(argc, argv);
    for (CLI::App* sub : app.get_subcommands()) where += " " + sub->get_name();
    for (const std::string& a : app.remaining(true))
      throw CLI::ParseError(
          a.size() > 1 && a[0] == '-' ? "unknown flag '" + a + "'" : "unexpected argument '" + a + "'",
          CLI::ExitCodes::ExtrasError);
    return -1;
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    for (CLI::App* sub : app.get_subcommands())
      if (where == app.get_name()) where += " " + sub->get_name();
    std::fprintf(stderr, "%s: %s (see %s --help)\n", app.get_name().c_str(), e.what(), where.c_str());
    return kExitUsage;
  }
}

}  // namespace flags
