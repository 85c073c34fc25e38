// What a training run leaves besides checkpoints: metrics.csv (one row per epoch) and a training-curve plot
// (SVG, drawn here by hand: two panels, loss and test accuracy per epoch). Both are rewritten whole and
// atomically every epoch, so a reader never sees a half-written file and a resumed run can drop the rows of
// epochs it is about to redo.
#pragma once
//
// Declarations; the definitions are in training_log_inl.hpp (compiled into libresnet in the compiled mode).
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include "resnet/core/compiled_mode.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace tools {

struct EpochMetrics {
  int64_t epoch = 0;  // 1-based, as printed in the log
  double train_loss = 0, test_loss = 0, test_acc = 0, lr = 0;
  double seconds = 0;  // wall time since the run began (across resumes) at the end of this epoch
};

inline const char* metrics_header() { return "epoch,train_loss,test_loss,test_acc,lr,seconds"; }

// metrics.csv: the header, then one row per epoch.
std::string metrics_csv(const std::vector<EpochMetrics>& rows);
// Reads a metrics.csv back (a resumed run keeps the rows of the epochs it does not redo).
std::vector<EpochMetrics> read_metrics_csv(const std::string& path);
// Writes `text` to `path` through a temporary and a rename (io::AtomicFile).
void write_text_atomically(const std::string& path, const std::string& text);
// Two panels side by side: train and test loss, and test accuracy, per epoch.
std::string training_curves_svg(const std::vector<EpochMetrics>& rows, const std::string& title);

}  // namespace tools
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/tools/training_log_inl.hpp"
#endif
