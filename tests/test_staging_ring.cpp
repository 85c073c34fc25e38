// upload_async's staging ring (include/resnet/backend/cuda/staging_ring.hpp) on the CPU: the same
// bookkeeping the CUDA build runs over pinned memory and cudaEvent_t, here over host memory and a fake
// device whose copies happen only when the test completes their events. A piece rewritten before its copy
// ran would deliver the wrong bytes, so every test checks what each destination finally holds.
#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

#include "catch.hpp"
#include "resnet/backend/cuda/staging_ring.hpp"

namespace {

// A device that runs its queue only when told: copy() queues, record() closes the queue behind an event,
// complete_through(k) runs everything up to the k-th record (stream order), wait() is a host wait that
// completes the event it waits for.
struct FakeDevice {
  struct Copy {
    void* dst;
    const char* src;
    size_t n;
  };
  struct Record {
    int event;
    std::vector<Copy> copies;
  };
  struct State {
    std::vector<Copy> queued;    // copies not yet behind an event
    std::vector<Record> stream;  // recorded, not yet run
    std::vector<bool> done;      // per event: its latest record has run
    size_t waits = 0, frees = 0, freed_bytes = 0, live_events = 0;
    std::vector<size_t> allocs;
  };
  std::shared_ptr<State> st = std::make_shared<State>();

  using Event = int;
  using Stream = int;
  char* alloc(size_t n) {
    st->allocs.push_back(n);
    return new char[n];
  }
  void free(char* p, size_t n) {
    delete[] p;
    ++st->frees;
    st->freed_bytes += n;
  }
  Event make_event() {
    st->done.push_back(true);
    ++st->live_events;
    return static_cast<int>(st->done.size()) - 1;
  }
  void destroy_event(Event) { --st->live_events; }
  void copy(void* dst, const char* src, size_t n, Stream) { st->queued.push_back(Copy{dst, src, n}); }
  void record(Event e, Stream) {
    st->done[static_cast<size_t>(e)] = false;
    st->stream.push_back(Record{e, st->queued});
    st->queued.clear();
  }
  bool done(Event e) const { return st->done[static_cast<size_t>(e)]; }
  void wait(Event e) {
    ++st->waits;
    size_t k = 0;
    while (k < st->stream.size() && st->stream[k].event != e) ++k;
    REQUIRE(k < st->stream.size());  // waiting for an event nothing will complete would hang a GPU
    complete_through(k + 1);
  }
  // Runs the first k recorded pieces of work, in order.
  void complete_through(size_t k) {
    for (size_t i = 0; i < k && i < st->stream.size(); ++i) {
      for (const Copy& c : st->stream[i].copies) std::memcpy(c.dst, c.src, c.n);
      st->done[static_cast<size_t>(st->stream[i].event)] = true;
    }
    st->stream.erase(st->stream.begin(),
                     st->stream.begin() + static_cast<std::ptrdiff_t>(std::min(k, st->stream.size())));
  }
  void complete_all() { complete_through(st->stream.size()); }
};

using Ring = resnet::cuda::detail::StagingRing<FakeDevice>;

// An upload's bytes: distinct per upload and position.
std::vector<char> pattern(size_t n, int upload) {
  std::vector<char> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<char>((upload * 31 + static_cast<int>(i) * 7) & 0x7f);
  return v;
}

// Uploads `count` pieces of `n` bytes from one host buffer that is overwritten after every call (as a
// loader's batch buffer is), into destinations the caller checks later.
struct Uploads {
  std::vector<std::vector<char>> dst, want;
  void add(Ring& ring, size_t n) {
    const int k = static_cast<int>(dst.size());
    std::vector<char> host = pattern(n, k);
    want.push_back(host);
    dst.emplace_back(n, '\0');
    ring.upload(dst.back().data(), host.data(), n, 0);
    std::fill(host.begin(), host.end(), '\x55');  // the caller reuses its buffer at once
  }
  // Destinations must not move once queued: reserve before uploading.
  explicit Uploads(size_t most) {
    dst.reserve(most);
    want.reserve(most);
  }
  void check() const {
    for (size_t k = 0; k < dst.size(); ++k) {
      INFO("upload " << k);
      CHECK(dst[k] == want[k]);
    }
  }
};

}  // namespace

TEST_CASE("staging ring: pieces are carved front to back, aligned, with nothing waited for", "[staging]") {
  FakeDevice dev;
  Uploads u(8);
  Ring ring(dev, 4096);
  u.add(ring, 1000);  // 1024 with alignment
  u.add(ring, 1);
  u.add(ring, 256);
  CHECK(ring.capacity() == 4096);
  CHECK(ring.live_offsets() == std::vector<size_t>{0, 1024, 1280});
  CHECK(ring.head() == 1536);
  CHECK(ring.waits() == 0);
  dev.complete_all();
  u.check();
  CHECK(dev.st->allocs == std::vector<size_t>{4096});
}

TEST_CASE("staging ring: wrapping waits only for the oldest pieces still in flight", "[staging]") {
  FakeDevice dev;
  Uploads u(16);
  Ring ring(dev, 4096);
  for (int i = 0; i < 4; ++i) u.add(ring, 1000);  // the block is full: 4 pieces of 1024
  CHECK(ring.head() == 4096);
  CHECK(ring.in_flight() == 4);
  // None has been copied yet: the fifth upload wraps to offset 0 and must wait for the first piece (and
  // only for it; the device then runs the queue in order, so only that one event is waited on).
  u.add(ring, 1000);
  CHECK(ring.waits() == 1);
  CHECK(dev.st->waits == 1);
  CHECK(ring.live_offsets() == std::vector<size_t>{1024, 2048, 3072, 0});
  CHECK(u.dst[0] == u.want[0]);  // delivered before its bytes were rewritten
  // Completed pieces are retired without a wait, however far the ring comes round.
  dev.complete_all();
  for (int i = 0; i < 7; ++i) u.add(ring, 1000);
  CHECK(ring.waits() == 1 + 3);  // the 7 uploads overrun 3 of their own still in flight, each once
  dev.complete_all();
  u.check();
}

TEST_CASE("staging ring: a piece that does not fit the tail wraps, retiring the tail first", "[staging]") {
  FakeDevice dev;
  Uploads u(16);
  Ring ring(dev, 8192);
  for (int i = 0; i < 8; ++i) u.add(ring, 1024);  // lap 1: pieces 0..7 at 0, 1024, ..., 7168
  u.add(ring, 1024);                              // lap 2 starts at 0: waits for piece 0 only
  CHECK(ring.waits() == 1);
  dev.complete_through(6);                        // pieces 1..6 copied; 7 and 8 still in flight
  for (int i = 0; i < 3; ++i) u.add(ring, 2048);  // at 1024, 3072, 5120: pieces 1..6 retired, no wait
  CHECK(ring.waits() == 1);
  CHECK(ring.head() == 7168);
  // 2048 more do not fit the 1024 left: piece 7 (the tail, the oldest) is retired first (a wait), then the
  // front's pieces 8 and 9 (a wait each).
  u.add(ring, 2048);
  CHECK(ring.waits() == 4);
  CHECK(ring.live_offsets() == std::vector<size_t>{3072, 5120, 0});
  CHECK(ring.head() == 2048);
  CHECK(u.dst[7] == u.want[7]);
  dev.complete_all();
  u.check();
}

TEST_CASE("staging ring: an upload over a quarter of the block grows it after retiring the old one",
          "[staging]") {
  FakeDevice dev;
  Uploads u(8);
  Ring ring(dev, 4096);
  u.add(ring, 1000);
  u.add(ring, 1000);  // both in flight in the old block
  u.add(ring, 1025);  // 1280 > 4096 / 4: the block becomes the next power of two times 4096 >= 4 * 1280
  CHECK(ring.capacity() == 8192);
  CHECK(dev.st->allocs == std::vector<size_t>{4096, 8192});
  CHECK(ring.blocks() == 2);
  // The old block was freed only after both its pieces were copied: each was waited on.
  CHECK(dev.st->frees == 1);
  CHECK(dev.st->freed_bytes == 4096);
  CHECK(ring.waits() == 2);
  CHECK(u.dst[0] == u.want[0]);
  CHECK(u.dst[1] == u.want[1]);
  CHECK(ring.live_offsets() == std::vector<size_t>{0});
  CHECK(ring.head() == 1280);
  // 80 MiB against the real 64 MiB minimum: 4 x 80 MiB rounds up to 512 MiB.
  FakeDevice big;
  Uploads v(2);
  Ring real(big, Ring::kDefaultMin);
  v.add(real, size_t(80) << 20);
  CHECK(real.capacity() == size_t(512) << 20);
  big.complete_all();
  v.check();
  dev.complete_all();
  u.check();
}

TEST_CASE("staging ring: retired events are reused, so a steady state makes no new ones", "[staging]") {
  FakeDevice dev;
  size_t made = 0;
  {
    Uploads u(64);
    Ring ring(dev, 4096);
    for (int i = 0; i < 8; ++i) {
      u.add(ring, 1000);
      dev.complete_all();
    }
    // At most 4 pieces are ever live (and here the ring wrapped twice): one event each, then reused.
    made = ring.events();
    CHECK(made <= 4);
    for (int i = 0; i < 40; ++i) {
      u.add(ring, 1000);
      dev.complete_all();
    }
    CHECK(ring.events() == made);
    CHECK(ring.waits() == 0);
    u.check();
    u.add(ring, 1000);  // left in flight: the destructor must wait for it before freeing the block
  }
  CHECK(dev.st->waits == 1);
  CHECK(dev.st->frees == 1);
  CHECK(dev.st->live_events == 0);
  CHECK(made > 0);
}

TEST_CASE("staging ring: bad input is refused by name", "[staging]") {
  FakeDevice dev;
  CHECK_THROWS_WITH(Ring(dev, 1000), Catch::Contains("multiple of 256"));
  Ring ring(dev, 4096);
  char buf[8] = {};
  CHECK_THROWS_WITH(ring.upload(nullptr, buf, 8, 0), Catch::Contains("null destination"));
  CHECK_THROWS_WITH(ring.upload(buf, nullptr, 8, 0), Catch::Contains("null source"));
  ring.upload(nullptr, nullptr, 0, 0);  // nothing to copy: nothing happens
  CHECK(ring.capacity() == 0);
  CHECK(ring.in_flight() == 0);
}
