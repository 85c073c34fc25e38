// The bookkeeping of upload_async's staging ring, apart from CUDA so that it runs in a CPU test: which bytes
// of the block a new upload takes, when the ring wraps or grows, and which earlier pieces must be retired
// (their copies complete) before their bytes are written again.
//
// A ring is one host block carved front to back. Each upload takes the next piece (rounded up to kAlign),
// copies the caller's bytes into it, queues a copy from it to the device and records an event behind that
// copy. Pieces are retired in the order they were made (a FIFO), and a piece's bytes are written again only
// after it is retired: retiring waits for its event only when the event has not completed yet, so in a
// steady state nothing waits. An upload larger than a quarter of the block grows it (to the next power of
// two times min_bytes at least 4 times the upload) after retiring every piece of the old block.
//
// Dev, the device policy, provides (the real one is pinned memory and cudaEvent_t, src/cuda/host_sync.cu;
// the CPU test's completes events by hand):
//   Event, Stream                                   value types
//   char* alloc(size_t bytes); void free(char*, size_t bytes)
//   Event make_event(); void destroy_event(Event)
//   void copy(void* dst, const char* staged, size_t bytes, Stream)   queue the copy from the block
//   void record(Event, Stream)                      an event behind everything queued so far
//   bool done(Event)                                without waiting
//   void wait(Event)                                block until done (a host wait)
#pragma once

#include "resnet/core/abi.hpp"

#include <cstddef>
#include <cstring>
#include <deque>
#include <utility>
#include <vector>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {
namespace detail {

template <typename Dev>
class StagingRing {
 public:
  using Event = typename Dev::Event;
  using Stream = typename Dev::Stream;
  static constexpr size_t kAlign = 256;                    // each piece starts on a 256-byte boundary
  static constexpr size_t kDefaultMin = size_t(64) << 20;  // the smallest block: 64 MiB
  static constexpr size_t kHeadroom = 4;  // the block holds at least 4 times the largest upload

  explicit StagingRing(Dev dev = Dev(), size_t min_bytes = kDefaultMin)
      : dev_(std::move(dev)), min_(min_bytes) {
    RESNET_CHECK(min_bytes >= kAlign && min_bytes % kAlign == 0, "StagingRing: the smallest block (",
                 min_bytes, " bytes) must be a positive multiple of ", kAlign, " bytes");
  }
  StagingRing(const StagingRing&) = delete;
  StagingRing& operator=(const StagingRing&) = delete;
  // Waits for the pieces still in flight (a device may still read the block), then frees everything.
  ~StagingRing() {
    while (!live_.empty()) retire_front();
    for (Event e : spare_) dev_.destroy_event(e);
    if (base_) dev_.free(base_, cap_);
  }

  // Stages nbytes of src and queues their copy to dst on stream s; src may be reused on return.
  void upload(void* dst, const void* src, size_t nbytes, Stream s) {
    if (nbytes == 0) return;
    RESNET_CHECK(dst && src, "upload_async: a null ", dst ? "source" : "destination", " pointer for ", nbytes,
                 " bytes");
    const size_t n = (nbytes + kAlign - 1) / kAlign * kAlign;
    if (n > cap_ / kHeadroom) grow(n * kHeadroom);
    size_t start = head_;
    if (start + n > cap_) {
      // Wrap: the pieces from head to the end are the oldest; retire them before the front is reused.
      while (!live_.empty() && live_.front().off >= head_) retire_front();
      start = 0;
    }
    // The oldest pieces that [start, start + n) overlaps (pieces of the previous lap, in address order).
    while (!live_.empty() && live_.front().off >= start && live_.front().off < start + n) retire_front();
    std::memcpy(base_ + start, src, nbytes);
    dev_.copy(dst, base_ + start, nbytes, s);
    const Event ev = take_event();
    dev_.record(ev, s);
    live_.push_back(Piece{start, n, ev});
    head_ = start + n;
  }

  // For tests and reports.
  size_t capacity() const { return cap_; }
  size_t head() const { return head_; }
  size_t in_flight() const { return live_.size(); }
  size_t waits() const { return waits_; }    // retirements that had to wait for their event
  size_t blocks() const { return blocks_; }  // blocks allocated so far (the first one counts)
  size_t events() const { return events_; }  // events made so far (reused once retired)
  // Offsets of the pieces not yet retired, oldest first.
  std::vector<size_t> live_offsets() const {
    std::vector<size_t> v;
    for (const Piece& p : live_) v.push_back(p.off);
    return v;
  }
  Dev& device() { return dev_; }

 private:
  struct Piece {
    size_t off, len;
    Event ev;
  };
  void retire_front() {
    const Piece p = live_.front();
    live_.pop_front();
    if (!dev_.done(p.ev)) {
      ++waits_;
      dev_.wait(p.ev);
    }
    spare_.push_back(p.ev);
  }
  Event take_event() {
    if (!spare_.empty()) {
      const Event e = spare_.back();
      spare_.pop_back();
      return e;
    }
    ++events_;
    return dev_.make_event();
  }
  void grow(size_t want) {
    size_t cap = min_;
    while (cap < want) cap *= 2;
    while (!live_.empty()) retire_front();  // the old block may be freed only once no copy reads it
    if (base_) {
      char* old = base_;
      base_ = nullptr;
      const size_t old_cap = cap_;
      cap_ = 0;
      dev_.free(old, old_cap);
    }
    base_ = dev_.alloc(cap);
    cap_ = cap;
    head_ = 0;
    ++blocks_;
  }

  Dev dev_;
  size_t min_;
  char* base_ = nullptr;
  size_t cap_ = 0, head_ = 0;
  size_t waits_ = 0, blocks_ = 0, events_ = 0;
  std::deque<Piece> live_;
  std::vector<Event> spare_;
};

}  // namespace detail
}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
