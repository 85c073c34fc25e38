// Builds a ResNet-18 through the public API and takes two SGD steps on a random batch.
#include <cmath>
#include <cstdio>

#include <resnet/resnet.hpp>

int main() {
  using namespace resnet;
  manual_seed(1);
  auto o = models::ResNetOptions().num_classes(2);
  auto net = models::resnet18<float>(o);
  optim::SGD<float> opt(net->named_parameters(), optim::SGDOptions().lr(0.01).momentum(0.9));
  auto x = Tensor<float>::randn({2, 3, 32, 32});
  double losses[2];
  for (int i = 0; i < 2; ++i) {
    opt.zero_grad();
    auto loss = cross_entropy(net->forward(x), std::vector<int32_t>{0, 1});
    loss.backward();
    opt.step();
    losses[i] = loss.item();
  }
  std::printf("consumer: loss %.4f -> %.4f\n", losses[0], losses[1]);
  return std::isfinite(losses[1]) ? 0 : 1;
}
