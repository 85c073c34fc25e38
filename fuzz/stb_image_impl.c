/* stb_image's implementation, from Debian's libstb-dev header, compiled with the fuzzer's instrumentation
   (the resnet library itself links libstb.so, which holds the same code). Its allocations are filled with
   a byte the fuzz target chooses, so decoding twice with two fill bytes exposes any result that depends on
   uninitialised memory (AddressSanitizer does not see those reads). */
#include <stdlib.h>
#include <string.h>

unsigned char fuzz_stbi_fill = 0;

static void* fuzz_stbi_malloc(size_t n) {
  void* p = malloc(n);
  if (p) memset(p, fuzz_stbi_fill, n);
  return p;
}
static void* fuzz_stbi_realloc(void* p, size_t old_size, size_t new_size) {
  unsigned char* q = (unsigned char*)realloc(p, new_size);
  if (q && new_size > old_size) memset(q + old_size, fuzz_stbi_fill, new_size - old_size);
  return q;
}

#define STBI_MALLOC(n) fuzz_stbi_malloc(n)
#define STBI_REALLOC(p, n) realloc(p, n)
#define STBI_REALLOC_SIZED(p, old_size, new_size) fuzz_stbi_realloc(p, old_size, new_size)
#define STBI_FREE(p) free(p)
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
