#include "owf/core/memory.h"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>

namespace owf {
namespace {

constexpr size_t kLarge = size_t{1} << 20;
constexpr size_t kPage = size_t{4} << 10;

// Freed large mappings, kept for reuse: whole-model quantisation allocates the same few sizes
// for every tensor, and a fresh mapping costs a kernel zero-fill of every page.
class Pool {
 public:
  void* Take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    // Smallest cached block that fits without wasting more than half of it.
    auto it = free_.lower_bound(bytes);
    if (it == free_.end() || it->first > 2 * bytes) return nullptr;
    void* p = it->second;
    cached_ -= it->first;
    sizes_[p] = it->first;
    free_.erase(it);
    return p;
  }
  // Returns false if the pool does not want the block (caller unmaps it).
  bool Give(void* p, size_t mapped) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ + mapped > kMaxCached) return false;
    free_.emplace(mapped, p);
    cached_ += mapped;
    return true;
  }
  // The mapped size of a block handed out by Take (may exceed the requested size).
  size_t MappedSize(void* p, size_t requested) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sizes_.find(p);
    if (it == sizes_.end()) return requested;
    const size_t s = it->second;
    sizes_.erase(it);
    return s;
  }

 private:
  // Enough for the few buffers of one tensor; beyond it blocks go back to the OS, so streaming a
  // model keeps peak memory at a few times its largest tensor.
  static constexpr size_t kMaxCached = size_t{1} << 30;
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::map<void*, size_t> sizes_;
  size_t cached_ = 0;
};

Pool& GlobalPool() {
  static Pool* pool = new Pool();  // never destroyed: blocks may be freed during static teardown
  return *pool;
}

size_t RoundToPages(size_t bytes) { return (bytes + kPage - 1) / kPage * kPage; }

}  // namespace

void* AllocateLarge(size_t bytes) {
  if (bytes < kLarge) {
    void* p = std::malloc(bytes == 0 ? 1 : bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }
  const size_t mapped = RoundToPages(bytes);
  if (void* p = GlobalPool().Take(mapped)) return p;
  // Populate the whole mapping in one call: on virtual machines a page fault per 4 KiB page
  // costs more than the quantisation itself.
  void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return p;
}

void FreeLarge(void* p, size_t bytes) noexcept {
  if (bytes < kLarge) {
    std::free(p);
    return;
  }
  const size_t mapped = GlobalPool().MappedSize(p, RoundToPages(bytes));
  if (!GlobalPool().Give(p, mapped)) munmap(p, mapped);
}

}  // namespace owf
