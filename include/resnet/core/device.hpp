// Device: where a tensor's storage lives. Copies between devices are always explicit (Tensor::to).
#pragma once

#include "resnet/core/abi.hpp"

#include <string>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {

enum class DeviceType { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return Device{DeviceType::CPU, 0}; }
  static Device cuda(int index = 0) { return Device{DeviceType::CUDA, index}; }

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& o) const {
    return type == o.type && (type == DeviceType::CPU || index == o.index);
  }
  bool operator!=(const Device& o) const { return !(*this == o); }

  std::string to_string() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

  // Parses "cpu", "cuda" or "cuda:N".
  static Device parse(const std::string& s) {
    if (s == "cpu") return cpu();
    if (s == "cuda") return cuda(0);
    if (s.rfind("cuda:", 0) == 0) {
      try {
        return cuda(std::stoi(s.substr(5)));
      } catch (const std::exception&) {
      }
    }
    RESNET_FAIL("unknown device '", s, "' (expected cpu, cuda or cuda:N)");
  }
};

}  // namespace RESNET_ABI
}  // namespace resnet
