// The fiber scheduler behind sim.hpp: one block at a time, one ucontext fiber per thread, switching only
// at barriers. A barrier is released when every live thread in its scope (the block for __syncthreads,
// the warp for a shuffle, the cluster for a cluster barrier) has arrived; anything else that stops all
// progress is reported as an error. The blocks of a cluster take turns between cluster barriers.
#include "sim.hpp"

#include <ucontext.h>

// AddressSanitizer must be told when the stack changes under it (else it warns, and may report false
// positives): these hooks do that around every switch, and compile to nothing without ASan.
#if defined(__SANITIZE_ADDRESS__)
#define SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_ASAN 1
#endif
#endif
#if defined(SIM_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace sim {
namespace {

enum class State { Ready, WaitBlock, WaitWarp, WaitCluster, Done };

struct Fiber {
  ucontext_t ctx;
  std::unique_ptr<char[]> stack;
  State state = State::Ready;
  void* asan_fake_stack = nullptr;
};

constexpr size_t kStackBytes = 128 * 1024;
constexpr int kWarp = 32;

struct Scheduler {
  ucontext_t main_ctx;
  std::vector<Fiber> fibers;                       // the block that runs
  std::vector<std::vector<Fiber>> cluster_fibers;  // every block of a cluster (kept: stacks are reused)
  std::vector<uint64_t> exchange;
  const std::function<void()>* body = nullptr;
  int current = -1;
  int nthreads = 0;
  dim3 block;
  std::string error;
  Order order = Order::Forward;
  LaunchStats stats;
  const void* main_stack_bottom = nullptr;  // the scheduler's stack, for the sanitizer hooks
  size_t main_stack_size = 0;
};

Scheduler& sched() {
  static Scheduler s;
  return s;
}

void set_builtins(int t) {
  Scheduler& s = sched();
  unsigned u = static_cast<unsigned>(t);
  threadIdx.x = u % s.block.x;
  threadIdx.y = (u / s.block.x) % s.block.y;
  threadIdx.z = u / (s.block.x * s.block.y);
}

// Switch hooks: `leaving` is called just before a swapcontext, `arrived` just after it returns.
void asan_leaving_fiber(Fiber* f, bool exiting) {
#if defined(SIM_ASAN)
  Scheduler& s = sched();
  __sanitizer_start_switch_fiber(exiting ? nullptr : &f->asan_fake_stack, s.main_stack_bottom,
                                 s.main_stack_size);
#else
  (void)f;
  (void)exiting;
#endif
}
void asan_arrived_in_fiber(Fiber* f) {
#if defined(SIM_ASAN)
  Scheduler& s = sched();
  __sanitizer_finish_switch_fiber(f->asan_fake_stack, &s.main_stack_bottom, &s.main_stack_size);
#else
  (void)f;
#endif
}

void trampoline() {
  Scheduler& s = sched();
  asan_arrived_in_fiber(&s.fibers[static_cast<size_t>(s.current)]);
  try {
    (*s.body)();
  } catch (const std::exception& e) {
    if (s.error.empty()) s.error = std::string("exception in a simulated thread: ") + e.what();
  } catch (...) {
    if (s.error.empty()) s.error = "unknown exception in a simulated thread";
  }
  Fiber& f = s.fibers[static_cast<size_t>(s.current)];
  f.state = State::Done;
  asan_leaving_fiber(&f, true);
  // returning resumes uc_link (the scheduler)
}

void yield_as(State st) {
  Scheduler& s = sched();
  Fiber& f = s.fibers[static_cast<size_t>(s.current)];
  f.state = st;
  asan_leaving_fiber(&f, false);
  swapcontext(&f.ctx, &s.main_ctx);
  asan_arrived_in_fiber(&f);
}

std::string describe_states(const Scheduler& s) {
  int ready = 0, wb = 0, ww = 0, wc = 0, done = 0;
  for (int t = 0; t < s.nthreads; ++t) switch (s.fibers[static_cast<size_t>(t)].state) {
      case State::WaitCluster:
        ++wc;
        break;
      case State::Ready:
        ++ready;
        break;
      case State::WaitBlock:
        ++wb;
        break;
      case State::WaitWarp:
        ++ww;
        break;
      case State::Done:
        ++done;
        break;
    }
  return std::to_string(wb) + " at __syncthreads, " + std::to_string(ww) + " at a warp shuffle, " +
         std::to_string(wc) + " at the cluster barrier, " + std::to_string(done) + " exited, " +
         std::to_string(ready) + " ready";
}

// Fresh fibers for a block (in s.fibers).
void init_block() {
  Scheduler& s = sched();
  for (int t = 0; t < s.nthreads; ++t) {
    Fiber& f = s.fibers[static_cast<size_t>(t)];
    if (!f.stack) f.stack.reset(new char[kStackBytes]);
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.get();
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = &s.main_ctx;
    makecontext(&f.ctx, trampoline, 0);
    f.state = State::Ready;
    f.asan_fake_stack = nullptr;
  }
}

// Runs the block in s.fibers until every thread has exited or waits at the cluster barrier.
void run_block_until_parked(unsigned bx, unsigned by, unsigned bz) {
  Scheduler& s = sched();
  blockIdx.x = bx;
  blockIdx.y = by;
  blockIdx.z = bz;
  const std::string where =
      "block (" + std::to_string(bx) + ", " + std::to_string(by) + ", " + std::to_string(bz) + ")";
  for (;;) {
    for (int k = 0; k < s.nthreads; ++k) {
      int t = s.order == Order::Forward ? k : s.nthreads - 1 - k;
      Fiber& f = s.fibers[static_cast<size_t>(t)];
      if (f.state != State::Ready) continue;
      set_builtins(t);
      s.current = t;
#if defined(SIM_ASAN)
      void* fake = nullptr;
      __sanitizer_start_switch_fiber(&fake, f.stack.get(), kStackBytes);
#endif
      swapcontext(&s.main_ctx, &f.ctx);
#if defined(SIM_ASAN)
      __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
      if (!s.error.empty()) throw std::runtime_error("sim: " + s.error + " in " + where);
    }
    bool parked = true;
    for (int t = 0; t < s.nthreads; ++t) {
      const State st = s.fibers[static_cast<size_t>(t)].state;
      parked = parked && (st == State::Done || st == State::WaitCluster);
    }
    if (parked) return;
    bool released = false;
    for (int w = 0; w * kWarp < s.nthreads; ++w) {
      int lo = w * kWarp, hi = std::min(s.nthreads, lo + kWarp);
      int waiting = 0, exited = 0;
      for (int t = lo; t < hi; ++t) {
        State st = s.fibers[static_cast<size_t>(t)].state;
        waiting += st == State::WaitWarp;
        exited += st == State::Done;
      }
      if (waiting == 0) continue;
      if (exited > 0)
        throw std::runtime_error("sim: warp " + std::to_string(w) + " shuffles while " +
                                 std::to_string(exited) + " of its lanes have exited, in " + where);
      if (waiting == hi - lo) {
        for (int t = lo; t < hi; ++t) s.fibers[static_cast<size_t>(t)].state = State::Ready;
        ++s.stats.warp_barriers;
        released = true;
      }
    }
    if (released) continue;
    int at_block = 0, exited = 0;
    for (int t = 0; t < s.nthreads; ++t) {
      State st = s.fibers[static_cast<size_t>(t)].state;
      at_block += st == State::WaitBlock;
      exited += st == State::Done;
    }
    if (at_block > 0 && at_block + exited == s.nthreads) {
      if (exited > 0)
        throw std::runtime_error("sim: " + std::to_string(exited) + " threads exited while " +
                                 std::to_string(at_block) + " wait at __syncthreads, in " + where);
      for (int t = 0; t < s.nthreads; ++t) s.fibers[static_cast<size_t>(t)].state = State::Ready;
      ++s.stats.block_barriers;
      continue;
    }
    throw std::runtime_error("sim: deadlock (" + describe_states(s) + ") in " + where);
  }
}

}  // namespace

void set_order(Order o) { sched().order = o; }
Order order() { return sched().order; }
LaunchStats last_launch_stats() { return sched().stats; }

void launch(dim3 grid, dim3 block, const std::function<void()>& body) {
  launch_cluster(grid, block, 1, body);
}

void launch_cluster(dim3 grid, dim3 block, unsigned cluster_x, const std::function<void()>& body) {
  Scheduler& s = sched();
  if (s.body) throw std::runtime_error("sim: nested launch");
  const long long n = static_cast<long long>(block.x) * block.y * block.z;
  if (n <= 0 || n > 1024)
    throw std::runtime_error("sim: block of " + std::to_string(n) + " threads (1..1024)");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) throw std::runtime_error("sim: empty grid");
  if (grid.y > 65535 || grid.z > 65535) throw std::runtime_error("sim: grid.y/z above 65535");
  if (cluster_x < 1 || cluster_x > 8 || grid.x % cluster_x != 0)
    throw std::runtime_error("sim: cluster of " + std::to_string(cluster_x) + " blocks for a grid of " +
                             std::to_string(grid.x) + " (1..8, dividing grid.x)");
  s.nthreads = static_cast<int>(n);
  s.block = block;
  s.body = &body;
  s.error.clear();
  s.stats = LaunchStats{};
  s.exchange.assign(static_cast<size_t>(n), 0);
  blockDim = block;
  gridDim = grid;
  // One fiber set per block of a cluster; s.fibers is swapped with the one that runs. Swapping vectors
  // moves no Fiber, so the contexts stay where makecontext put them.
  std::vector<std::vector<Fiber>>& blocks = s.cluster_fibers;
  if (blocks.size() < cluster_x) blocks.resize(cluster_x);
  for (auto& f : blocks)
    if (f.size() < static_cast<size_t>(n)) f.resize(static_cast<size_t>(n));
  try {
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x0 = 0; x0 < grid.x; x0 += cluster_x) {
          for (unsigned b = 0; b < cluster_x; ++b) {
            std::swap(s.fibers, blocks[b]);
            init_block();
            std::swap(s.fibers, blocks[b]);
          }
          for (;;) {
            for (unsigned k = 0; k < cluster_x; ++k) {
              const unsigned b = s.order == Order::Forward ? k : cluster_x - 1 - k;
              std::swap(s.fibers, blocks[b]);
              try {
                run_block_until_parked(x0 + b, y, z);
              } catch (...) {
                std::swap(s.fibers, blocks[b]);
                throw;
              }
              std::swap(s.fibers, blocks[b]);
            }
            int waiting = 0, exited = 0;
            for (unsigned b = 0; b < cluster_x; ++b)
              for (int t = 0; t < s.nthreads; ++t) {
                const State st = blocks[b][static_cast<size_t>(t)].state;
                waiting += st == State::WaitCluster;
                exited += st == State::Done;
              }
            if (waiting == 0) break;  // every thread of the cluster has exited
            if (exited > 0)
              throw std::runtime_error(
                  "sim: " + std::to_string(exited) + " threads exited while " + std::to_string(waiting) +
                  " wait at the cluster barrier, in the cluster of block (" + std::to_string(x0) + ", " +
                  std::to_string(y) + ", " + std::to_string(z) + ")");
            for (unsigned b = 0; b < cluster_x; ++b)
              for (int t = 0; t < s.nthreads; ++t) blocks[b][static_cast<size_t>(t)].state = State::Ready;
            ++s.stats.cluster_barriers;
          }
        }
  } catch (...) {
    s.body = nullptr;
    throw;
  }
  s.body = nullptr;
}

namespace detail {

void block_barrier() { yield_as(State::WaitBlock); }
void cluster_barrier() { yield_as(State::WaitCluster); }

int lane_id() { return sched().current % kWarp; }

uint64_t warp_exchange(uint64_t mine, int src_lane) {
  Scheduler& s = sched();
  const int me = s.current;
  s.exchange[static_cast<size_t>(me)] = mine;
  yield_as(State::WaitWarp);  // every lane has published
  const int src = (me / kWarp) * kWarp + src_lane;
  uint64_t got = 0;
  if (src_lane < 0 || src_lane >= kWarp || src >= s.nthreads) {
    if (s.error.empty()) s.error = "shuffle reads lane " + std::to_string(src_lane) + " which does not exist";
  } else {
    got = s.exchange[static_cast<size_t>(src)];
  }
  yield_as(State::WaitWarp);  // every lane has read before anyone publishes again
  return got;
}

}  // namespace detail
}  // namespace sim
