// Ctrl-C for training loops: the first SIGINT or SIGTERM sets a flag the loop reads after each step (it
// finishes the step, writes last, stops); a second one quits at once with status 130. Only the main rank
// prints the notice.
#pragma once

#include "resnet/core/abi.hpp"

#include <csignal>
#include <cstdlib>

#include <signal.h>
#include <unistd.h>

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

namespace detail {
inline volatile std::sig_atomic_t g_interrupt = 0;
inline volatile std::sig_atomic_t g_interrupt_quiet = 0;

inline void on_interrupt(int) {
  if (g_interrupt) std::_Exit(130);
  g_interrupt = 1;
  if (g_interrupt_quiet) return;
  static const char msg[] =
      "\ninterrupted: finishing this step, then writing last.safetensors (again to quit now)\n";
  ssize_t ignored = ::write(2, msg, sizeof(msg) - 1);
  (void)ignored;
}
}  // namespace detail

inline void install_interrupt_handler(bool quiet) {
  detail::g_interrupt_quiet = quiet ? 1 : 0;
  struct sigaction sa {};
  sa.sa_handler = detail::on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

inline bool interrupt_requested() { return detail::g_interrupt != 0; }

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
