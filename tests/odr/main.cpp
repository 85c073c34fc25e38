// The ODR test's program: one unit built with CUDA and one without, linked together. Before the ABI
// namespace (core/abi.hpp) the linker kept one body of every inline function, so both units answered
// cuda_compiled() alike, silently; now each unit runs its own build's code.
#include <cstdio>

bool cuda_unit(float* sum);
bool cpu_unit(float* sum);

int main() {
  float a = 0, b = 0;
  const bool with = cuda_unit(&a), without = cpu_unit(&b);
  std::printf("unit built with CUDA: cuda_compiled() = %d, sum %g; unit built without: %d, sum %g\n", with, a,
              without, b);
  if (!with || without || a != 6.0f || b != 6.0f) {
    std::printf("FAILED: the two builds share inline bodies (one-definition rule broken)\n");
    return 1;
  }
  return 0;
}
