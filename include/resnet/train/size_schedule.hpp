// Progressive resizing: the training images' size as a function of the epoch, and the size the test set
// is evaluated at (FixRes: train at a lower resolution, test at a higher one). Phases begin at a 0-based
// epoch and last until the next; epochs before the first phase, and a size of 0, keep the dataset's own.
//
//   auto s = ImageSizeSchedule().phase(0, 96).phase(10, 112).phase(20, 128).test_size(160);
//   auto t = ImageSizeSchedule::parse("96@0-9,112@10-19,128@20-");  // the same phases as text
//
// The size depends on the epoch alone, so a resumed run (same schedule) loads each epoch at the size an
// uninterrupted one would. The dataset must be able to give its samples at another size
// (Dataset::load_resized: ImageFolderDataset does).
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "resnet/core/arg.hpp"
#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

class ImageSizeSchedule {
 public:
  struct Phase {
    int64_t first_epoch = 0;
    int size = 0;
  };

  // Adds a phase from `first_epoch` (after the last one's) at `size` pixels.
  ImageSizeSchedule& phase(int64_t first_epoch, int size) {
    RESNET_CHECK(first_epoch >= 0, "image sizes: a phase's first epoch must be 0 or more, got ", first_epoch);
    RESNET_CHECK(size > 0 && size <= 4096, "image sizes: a size must be in [1, 4096], got ", size);
    RESNET_CHECK(phases_.empty() || first_epoch > phases_.back().first_epoch,
                 "image sizes: the phase at epoch ", first_epoch, " does not come after the one at epoch ",
                 phases_.back().first_epoch);
    phases_.push_back(Phase{first_epoch, size});
    return *this;
  }
  RESNET_ARG(int, test_size) = 0;  // > 0: the test set at this size; 0: at its own

 public:
  // "S@A-B,S@C-D,...,S@E-" (0-based epochs, each phase from the epoch after the previous one's last; the
  // last may be open), or "" for none. A test size is its own setting.
  static ImageSizeSchedule parse(const std::string& spec) {
    ImageSizeSchedule s;
    int64_t expect = -1;  // the first epoch the next phase must have
    size_t at = 0;
    while (at < spec.size()) {
      size_t end = spec.find(',', at);
      if (end == std::string::npos) end = spec.size();
      const std::string part = spec.substr(at, end - at);
      at = end + 1;
      const size_t a = part.find('@'), d = part.find('-', a == std::string::npos ? 0 : a);
      RESNET_CHECK(a != std::string::npos, "image sizes '", spec, "': phase '", part,
                   "' is not SIZE@FIRST-LAST (e.g. 128@0-9) or SIZE@FIRST- (to the end)");
      const int size = static_cast<int>(number(spec, part, part.substr(0, a)));
      const int64_t first =
          number(spec, part, part.substr(a + 1, (d == std::string::npos ? part.size() : d) - a - 1));
      RESNET_CHECK(expect < 0 || first == expect, "image sizes '", spec, "': phase '", part,
                   "' begins at epoch ", first, ", not at ", expect, " where the previous one ended");
      s.phase(first, size);
      expect = -2;  // an open phase must be the last
      if (d != std::string::npos && d + 1 < part.size()) {
        const int64_t last = number(spec, part, part.substr(d + 1));
        RESNET_CHECK(last >= first, "image sizes '", spec, "': phase '", part, "' ends before it begins");
        expect = last + 1;
      }
      RESNET_CHECK(expect != -2 || at >= spec.size(), "image sizes '", spec, "': phase '", part,
                   "' runs to the end, so no phase may follow it");
    }
    return s;
  }

  // The training size of epoch `epoch` (0-based); 0: the dataset's own.
  int size_at(int64_t epoch) const {
    int size = 0;
    for (const Phase& p : phases_)
      if (p.first_epoch <= epoch) size = p.size;
    return size;
  }
  bool empty() const { return phases_.empty(); }
  const std::vector<Phase>& phases() const { return phases_; }
  // The phases as parse() reads them (open-ended last phase), e.g. for a checkpoint's metadata.
  std::string to_string() const {
    std::string s;
    for (size_t i = 0; i < phases_.size(); ++i) {
      if (i) s += ",";
      s += std::to_string(phases_[i].size) + "@" + std::to_string(phases_[i].first_epoch) + "-";
      if (i + 1 < phases_.size()) s += std::to_string(phases_[i + 1].first_epoch - 1);
    }
    return s;
  }

 private:
  static int64_t number(const std::string& spec, const std::string& part, const std::string& text) {
    char* end = nullptr;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    RESNET_CHECK(!text.empty() && end == text.c_str() + text.size() && v >= 0, "image sizes '", spec, "': '",
                 text, "' in phase '", part, "' is not a non-negative whole number");
    return static_cast<int64_t>(v);
  }
  std::vector<Phase> phases_;
};

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
