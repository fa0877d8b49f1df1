// A small work pool for the hand-written CPU kernels (few-row linear, fused RMSNorm), built to
// degrade gracefully on a busy machine. OpenMP's team (at::parallel_for) splits the work evenly up
// front and the caller waits at a barrier for every thread, so when the OS deschedules one helper
// (other processes, a data loader, a server's request handling) the whole product waits a time
// slice for it; idle OpenMP threads also spin and steal the CPU from threads that have work.
// Here the work is cut into chunks that threads claim from a shared counter: the caller works too
// and waits only for chunks a helper has actually claimed, so a helper that is not running simply
// does nothing and the others take its share. Idle helpers spin for 100 us (the next kernel of a
// decode step usually follows within that), then sleep on a condition variable. libgomp's own idle
// threads are set to wait passively (src/native.ts), so the two pools do not compete for cores.
#pragma once

#include <immintrin.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace pisces {

// How long an idle helper spins for the next job before it sleeps: a decode step's kernels mostly
// follow each other within this, and a short spin steals little from other work on a busy machine.
constexpr int kSpinMicroseconds = 100;

class WorkPool {
 public:
  static WorkPool& instance() {
    static WorkPool* pool = new WorkPool();  // never destroyed: helpers are detached and idle at exit
    return *pool;
  }

  // Runs fn(begin, end) over [0, n) in chunks of `chunk` items, on the calling thread plus up to
  // threads - 1 helpers. Returns when every item is done. Safe to call from several threads: a
  // call that finds the pool busy runs inline.
  void run(int64_t n, int64_t chunk, int threads, const std::function<void(int64_t, int64_t)>& fn) {
    chunk = std::max<int64_t>(1, chunk);
    const int64_t chunks = (n + chunk - 1) / chunk;
    if (threads <= 1 || chunks <= 1) {
      fn(0, n);
      return;
    }
    std::unique_lock<std::mutex> submit(submit_, std::try_to_lock);
    if (!submit.owns_lock()) {
      fn(0, n);
      return;
    }
    ensureHelpers(std::min(threads, 64) - 1);
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    job->n = n;
    job->chunk = chunk;
    job->chunks = chunks;
    {
      std::lock_guard<std::mutex> lock(m_);
      current_ = job;
      generation_.fetch_add(1, std::memory_order_release);
    }
    if (sleeping_.load(std::memory_order_acquire) > 0) cv_.notify_all();
    work(*job);
    // wait only for chunks a helper claimed and is still running
    for (int spins = 0; job->done.load(std::memory_order_acquire) < chunks; spins++) {
      if (spins < 2000)
        _mm_pause();
      else
        sched_yield();
    }
    std::lock_guard<std::mutex> lock(m_);
    if (current_ == job) current_.reset();
  }

 private:
  struct Job {
    const std::function<void(int64_t, int64_t)>* fn = nullptr;
    int64_t n = 0, chunk = 1, chunks = 0;
    std::atomic<int64_t> next{0}, done{0};
  };

  static void work(Job& job) {
    for (;;) {
      const int64_t c = job.next.fetch_add(1, std::memory_order_relaxed);
      if (c >= job.chunks) return;
      const int64_t begin = c * job.chunk;
      (*job.fn)(begin, std::min(job.n, begin + job.chunk));
      job.done.fetch_add(1, std::memory_order_release);
    }
  }

  void ensureHelpers(int count) {
    while (static_cast<int>(helpers_) < count) {
      std::thread([this] { helperLoop(); }).detach();
      helpers_++;
    }
  }

  void helperLoop() {
    uint64_t seen = generation_.load(std::memory_order_acquire);
    for (;;) {
      // spin briefly for the next job, then sleep until one is posted
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicroseconds);
      int spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen) {
        if (++spins % 64 == 0 && std::chrono::steady_clock::now() > until) {
          std::unique_lock<std::mutex> lock(m_);
          sleeping_.fetch_add(1, std::memory_order_acq_rel);
          cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
          sleeping_.fetch_sub(1, std::memory_order_acq_rel);
          break;
        }
        _mm_pause();
      }
      std::shared_ptr<Job> job;
      {
        std::lock_guard<std::mutex> lock(m_);
        seen = generation_.load(std::memory_order_acquire);
        job = current_;
      }
      // a late helper finds every chunk claimed and never calls fn; the Job outlives it (shared_ptr)
      if (job) work(*job);
    }
  }

  std::mutex submit_;
  std::mutex m_;
  std::condition_variable cv_;
  std::shared_ptr<Job> current_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> sleeping_{0};
  size_t helpers_ = 0;
};

}  // namespace pisces
