#include "owf/core/memory.h"

#include <sys/mman.h>

#include <cstdlib>

namespace owf {
namespace {
constexpr size_t kLarge = size_t{1} << 20;
}

void* AllocateLarge(size_t bytes) {
  if (bytes < kLarge) {
    void* p = std::malloc(bytes == 0 ? 1 : bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }
  // Populate the whole mapping in one call: on virtual machines a page fault per 4 KiB page
  // costs more than the quantisation itself.
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return p;
}

void FreeLarge(void* p, size_t bytes) noexcept {
  if (bytes < kLarge) {
    std::free(p);
  } else {
    munmap(p, bytes);
  }
}

}  // namespace owf
