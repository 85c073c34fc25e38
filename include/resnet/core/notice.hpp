// The library's notes to the person running it (a choice it made for them, something it skipped): one
// sink for all of them, a line on stderr by default, which a program can redirect to its own log or
// silence. Errors are exceptions and never come here.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdio>
#include <functional>
#include <string>
#include <utility>

namespace resnet {
inline namespace RESNET_ABI {

using NoticeHandler = std::function<void(const std::string&)>;

namespace detail {
inline NoticeHandler& notice_handler() {
  static NoticeHandler handler = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  return handler;
}
}  // namespace detail

// Replaces the sink and returns the previous one; an empty handler silences the notes.
inline NoticeHandler set_notice_handler(NoticeHandler handler) {
  NoticeHandler previous = std::move(detail::notice_handler());
  detail::notice_handler() = handler ? std::move(handler) : [](const std::string&) {};
  return previous;
}

// One line, without its newline.
inline void notice(const std::string& line) { detail::notice_handler()(line); }

}  // namespace RESNET_ABI
}  // namespace resnet
