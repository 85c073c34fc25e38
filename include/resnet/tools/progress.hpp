// A progress line on stderr: redrawn in place (carriage return) when stderr is a terminal, otherwise printed
// as a plain line every `period` seconds so logs stay readable. Call clear() before writing other output to
// the terminal, so the log lines do not land in the middle of the progress line.
#pragma once

#include "resnet/core/abi.hpp"

#include <chrono>
#include <cstdio>
#include <string>

#include <unistd.h>

namespace resnet {
inline namespace RESNET_ABI {
namespace tools {

class ProgressLine {
 public:
  explicit ProgressLine(double period_seconds = 30.0, bool enabled = true)
      : tty_(::isatty(::fileno(stderr)) != 0), period_(period_seconds), enabled_(enabled) {}

  // Shows `text` if enough time has passed since the last update (0.2 s on a terminal).
  void update(const std::string& text, bool force = false) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    double since = std::chrono::duration<double>(now - last_).count();
    if (!force && since < (tty_ ? 0.2 : period_)) return;
    last_ = now;
    if (tty_) {
      std::fprintf(stderr, "\r%s\033[K", text.c_str());
      showing_ = true;
    } else {
      std::fprintf(stderr, "%s\n", text.c_str());
    }
    std::fflush(stderr);
  }
  void clear() {
    if (tty_ && showing_) {
      std::fprintf(stderr, "\r\033[K");
      std::fflush(stderr);
      showing_ = false;
    }
  }
  // Starts the non-terminal period afresh (so the first line of an epoch waits a full period).
  void reset_timer() { last_ = std::chrono::steady_clock::now(); }
  bool is_tty() const { return tty_; }

  // "1:05:09" or "4:07".
  static std::string format_duration(double seconds) {
    if (!(seconds >= 0) || seconds > 1e8) return "?";
    long s = static_cast<long>(seconds + 0.5);
    char buf[32];
    if (s >= 3600)
      std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else
      std::snprintf(buf, sizeof(buf), "%ld:%02ld", s / 60, s % 60);
    return buf;
  }

 private:
  bool tty_;
  double period_;
  bool enabled_;
  bool showing_ = false;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

}  // namespace tools
}  // namespace RESNET_ABI
}  // namespace resnet
