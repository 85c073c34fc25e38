// A user's plain C++ program on the GPU backend: compiled by g++ (no CUDA header), linked with resnet::cuda.
// Prints the device count; with a GPU, runs a small convolution + fused BatchNorm + ReLU there and checks it
// against the CPU.
#include <cmath>
#include <cstdio>

#include <resnet/resnet.hpp>

int main() {
  using namespace resnet;
  std::printf("resnet::cuda linked (RESNET_WITH_CUDA=%d): %d CUDA device(s)\n", RESNET_WITH_CUDA,
              cuda::device_count());
  if (cuda::device_count() == 0) {
    std::printf("no GPU here (%s): nothing to run\n", cuda::unavailable_reason().c_str());
    return 0;
  }
  Generator g(1);
  auto x = Tensor<float>::randn({2, 3, 8, 8}, g), w = Tensor<float>::randn({4, 3, 3, 3}, g);
  auto gamma = Tensor<float>::ones({4}), beta = Tensor<float>::zeros({4});
  auto run = [&](Device d) {
    auto rm = Tensor<float>::zeros({4}, d), rv = Tensor<float>::ones({4}, d);
    auto y = conv2d(x.to(d), w.to(d), ConvParams{1, 1, 1, 1});
    return batch_norm(y, Tensor<float>(), gamma.to(d), beta.to(d), rm, rv, true, BatchNormParams{},
                      Activation::ReLU)
        .to_vector();
  };
  auto a = run(Device::cpu()), b = run(Device::cuda());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::fmax(worst, std::fabs(a[i] - b[i]));
  std::printf("max |cpu - gpu| = %g\n", worst);
  return worst < 1e-2 ? 0 : 1;
}
