// Deterministic parallel loops: work is cut into chunks whose boundaries depend only on the
// problem size, never on the thread count, so per-chunk results (and any reduction done over
// chunks in index order) are identical for any number of threads.
#pragma once

#include <cstddef>
#include <functional>

namespace owf {

// Number of worker threads to use for `requested` (0 = all hardware threads).
int ResolveThreads(int requested);

// Calls fn(chunk) for chunk in [0, num_chunks) on up to `threads` threads (0 = all cores): the
// calling thread and workers of one persistent pool (started on first use, grown on demand).
// fn must not throw. Chunks are handed out dynamically; callers must make each chunk's work
// independent of which thread runs it. Safe to call from several threads at once; a call made
// from inside a chunk runs its chunks inline on that thread.
void ParallelFor(size_t num_chunks, int threads, const std::function<void(size_t)>& fn);

}  // namespace owf
