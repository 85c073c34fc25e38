// The definitions of summary.hpp: included by it in header-only mode, and compiled once into the library in
// the compiled mode (src/models/summary.cpp). Not for direct inclusion.
#pragma once

#include <cstdio>
#include <iomanip>
#include <sstream>

#include "resnet/core/abi.hpp"
#include "resnet/core/error.hpp"
#include "resnet/models/summary.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace models {

RESNET_INLINE std::string with_commas(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return v < 0 ? "-" + s : s;
}

RESNET_INLINE std::string format_summary(const ModelSummary& s) {
  std::ostringstream os;
  os << std::left << std::setw(34) << "layer" << std::setw(13) << "type" << std::setw(22) << "output shape"
     << std::right << std::setw(14) << "params" << std::setw(18) << "MACs"
     << "\n";
  os << std::string(101, '-') << "\n";
  for (const auto& r : s.rows) {
    std::string name = std::string(static_cast<size_t>(r.depth) * 2, ' ') + r.name;
    os << std::left << std::setw(34) << name << std::setw(13) << r.type << std::setw(22)
       << r.output.to_string() << std::right << std::setw(14) << with_commas(r.params) << std::setw(18)
       << with_commas(r.macs) << "\n";
  }
  os << std::string(101, '-') << "\n";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(s.total_macs) / 1e9);
  os << "total parameters: " << with_commas(s.total_params) << "\n";
  os << "total multiply-accumulates per image: " << with_commas(s.total_macs) << " (" << buf << " G)\n";
  os << "output shape: " << s.output.to_string() << "\n";
  return os.str();
}

}  // namespace models
}  // namespace RESNET_ABI
}  // namespace resnet
