/* stb_image's implementation, from Debian's libstb-dev header, compiled with the fuzzer's instrumentation
   (the resnet library itself links libstb.so, which holds the same code). */
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
