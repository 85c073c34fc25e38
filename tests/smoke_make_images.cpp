// smoke_make_images DIR [PER_CLASS_TRAIN] [PER_CLASS_TEST]: writes a small synthetic two-class ImageFolder
// (DIR/{train,test}/{cat,dog}/*.png) for the train_catsdogs smoke test when the real dataset is absent.
// "cat" images are reddish with horizontal stripes, "dog" images bluish with vertical stripes, plus noise
// and a random offset, so the task is learnable but not trivial.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <stb/stb_image_write.h>

#include "resnet/core/random.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: smoke_make_images DIR [PER_CLASS_TRAIN] [PER_CLASS_TEST]\n");
    return 2;
  }
  const std::string root = argv[1];
  const int n_train = argc > 2 ? std::atoi(argv[2]) : 60, n_test = argc > 3 ? std::atoi(argv[3]) : 20;
  const int w = 48, h = 48;
  resnet::Generator gen(1234);
  std::vector<unsigned char> px(static_cast<size_t>(w) * h * 3);
  for (const char* split : {"train", "test"}) {
    const int n = std::string(split) == "train" ? n_train : n_test;
    for (int label = 0; label < 2; ++label) {
      const std::string dir = root + "/" + split + "/" + (label == 0 ? "cat" : "dog");
      std::filesystem::create_directories(dir);
      for (int i = 0; i < n; ++i) {
        const int offset = static_cast<int>(gen.randint(8)), period = 6 + static_cast<int>(gen.randint(6));
        for (int y = 0; y < h; ++y)
          for (int x = 0; x < w; ++x) {
            const int t = label == 0 ? y : x;
            const bool stripe = ((t + offset) / (period / 2)) % 2 == 0;
            for (int c = 0; c < 3; ++c) {
              double base = stripe ? 170 : 70;
              if (c == 0) base += label == 0 ? 40 : -20;
              if (c == 2) base += label == 0 ? -20 : 40;
              double v = base + gen.normal(0, 25);
              px[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<unsigned char>(v < 0     ? 0
                                                                                        : v > 255 ? 255
                                                                                                  : v);
            }
          }
        char name[64];
        std::snprintf(name, sizeof(name), "/%s.%d.png", label == 0 ? "cat" : "dog", i + 1);
        if (!stbi_write_png((dir + name).c_str(), w, h, 3, px.data(), w * 3)) {
          std::fprintf(stderr, "smoke_make_images: cannot write %s%s\n", dir.c_str(), name);
          return 1;
        }
      }
    }
  }
  return 0;
}
