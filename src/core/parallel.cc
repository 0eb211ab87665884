// ParallelFor on one persistent pool of worker threads (see owf/core/parallel.h).
//
// A call publishes a Job (the chunk counter and how many helpers it may take) on the pool's
// queue, wakes that many workers, and works on its own chunks too, so it finishes even when
// every worker is busy with other callers' jobs. Once the caller's loop finds no chunk left it
// takes the job off the queue (no worker can join after that) and waits for the helpers that
// did join to finish their last chunk; the job lives on the caller's stack. Which thread runs a
// chunk never changes what the chunk computes, so results do not depend on the thread count.
//
// A ParallelFor called from inside a chunk (on a worker or on the calling thread) runs inline:
// nesting never waits on the pool. The pool is created on first use and never destroyed, so
// nothing runs its destructor while static objects are being torn down at exit.
#include "owf/core/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace owf {
namespace {

// True while this thread is running chunks of some ParallelFor.
thread_local bool t_in_parallel_for = false;

struct Job {
  const std::function<void(size_t)>* fn = nullptr;
  size_t num_chunks = 0;
  std::atomic<size_t> next{0};
  size_t max_helpers = 0;  // workers it may take (threads - 1)
  size_t helpers = 0;      // workers that joined        (guarded by Pool::mutex_)
  size_t finished = 0;     // helpers that have left     (guarded by Pool::mutex_)
  bool queued = false;     // still on the queue         (guarded by Pool::mutex_)

  void RunChunks() {
    for (size_t i = next.fetch_add(1); i < num_chunks; i = next.fetch_add(1)) (*fn)(i);
  }
};

class Pool {
 public:
  static Pool& Get() {
    static Pool* pool = new Pool();  // never destroyed: workers may outlive static teardown
    return *pool;
  }

  void Run(size_t num_chunks, size_t threads, const std::function<void(size_t)>& fn) {
    Job job;
    job.fn = &fn;
    job.num_chunks = num_chunks;
    job.max_helpers = threads - 1;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (workers_ < job.max_helpers) {
        std::thread([this] { WorkerLoop(); }).detach();
        ++workers_;
      }
      queue_.push_back(&job);
      job.queued = true;
    }
    if (job.max_helpers == 1) {
      work_cv_.notify_one();
    } else {
      work_cv_.notify_all();
    }
    t_in_parallel_for = true;
    job.RunChunks();
    t_in_parallel_for = false;
    std::unique_lock<std::mutex> lock(mutex_);
    if (job.queued) {
      queue_.erase(std::find(queue_.begin(), queue_.end(), &job));
      job.queued = false;
    }
    done_cv_.wait(lock, [&] { return job.finished == job.helpers; });
  }

 private:
  Pool() = default;

  void WorkerLoop() {
    t_in_parallel_for = true;  // anything a worker runs is inside a ParallelFor
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      work_cv_.wait(lock, [&] { return !queue_.empty(); });
      Job* job = queue_.front();
      if (++job->helpers == job->max_helpers) {
        queue_.pop_front();
        job->queued = false;
      }
      lock.unlock();
      job->RunChunks();
      lock.lock();
      ++job->finished;
      // Only the job's caller waits on done_cv_; wake it when the last helper leaves.
      if (!job->queued && job->finished == job->helpers) done_cv_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Job*> queue_;
  size_t workers_ = 0;  // started so far (detached; they wait for work until the process ends)
};

}  // namespace

int ResolveThreads(int requested) {
  if (requested > 0) return requested;
  // hardware_concurrency() reads /sys on every call (glibc's get_nprocs: an open, a read and a
  // close); ParallelFor asks on every call, so ask once.
  static const int hw = [] {
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : static_cast<int>(n);
  }();
  return hw;
}

void ParallelFor(size_t num_chunks, int threads, const std::function<void(size_t)>& fn) {
  const size_t workers = std::min<size_t>(static_cast<size_t>(ResolveThreads(threads)), num_chunks);
  if (workers <= 1 || t_in_parallel_for) {
    for (size_t i = 0; i < num_chunks; ++i) fn(i);
    return;
  }
  Pool::Get().Run(num_chunks, workers, fn);
}

}  // namespace owf
