// The README's example: build a ResNet-18 and train it with SGD through the public API.
#include <cstdio>
#include <resnet/resnet.hpp>

int main() {
  using namespace resnet;
  auto opts = models::ResNetOptions().num_classes(2);
  auto net = models::resnet18<float>(opts);  // add net->to(Device::cuda()) with resnet::cuda
  optim::SGD<float> opt(net->named_parameters(), optim::SGDOptions().lr(0.05).momentum(0.9));
  auto images = Tensor<float>::randn({8, 3, 64, 64});
  std::vector<int32_t> labels{0, 1, 0, 1, 1, 0, 1, 0};
  for (int step = 0; step < 5; ++step) {
    opt.zero_grad();
    auto loss = cross_entropy(net->forward(images), labels);
    loss.backward();
    opt.step();
    std::printf("step %d loss %.4f\n", step, loss.item());
  }
}
