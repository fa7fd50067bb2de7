#pragma once
// A persistent pool of worker threads for splitting a batch across cores
// (`network::set_threads`). Threads are created once; a call hands them a function pointer and
// a context pointer, so running a job neither allocates nor creates threads. Workers spin
// briefly after each job (back-to-back calls then start within a microsecond) and otherwise
// sleep on a futex (std::atomic::wait). An exception thrown by a part is caught on its thread;
// once every part has finished, the one of the lowest part is rethrown on the caller's thread.

#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace inn::graph {

class thread_pool {
  public:
    using job = void (*)(void* context, int part);

    thread_pool() = default;
    explicit thread_pool(int threads) { resize(threads); }
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;
    ~thread_pool() { stop(); }

    /// Total threads including the caller's: `threads - 1` workers.
    int size() const { return int(workers_.size()) + 1; }

    void resize(int threads) {
        if (threads < 1)
            threads = 1;
        if (threads == size())
            return;
        stop();
        stopping_.store(false);
        try {
            workers_.reserve(std::size_t(threads - 1));
            // The generation is read here, not in the new thread: a job posted before the
            // thread first runs must not be mistaken for an old one.
            const unsigned start = generation_.load();
            errors_.assign(std::size_t(threads), nullptr);
            for (int i = 1; i < threads; ++i)
                workers_.emplace_back([this, i, start] { work(i, start); });
        } catch (...) {
            // The system refused a thread (or memory): none of the new ones stay, so the pool
            // runs on the caller alone, as its size() then says.
            stop();
            errors_.assign(1, nullptr);
            throw;
        }
    }

    /// Runs `f(context, part)` for part = 0 .. size()-1, part 0 on the calling thread; returns
    /// when all have finished, rethrowing the exception of the lowest part that threw.
    void run(job f, void* context) {
        if (workers_.empty()) {
            f(context, 0);
            return;
        }
        job_ = f;
        context_ = context;
        pending_.store(int(workers_.size()), std::memory_order_relaxed);
        generation_.fetch_add(1, std::memory_order_release);
        generation_.notify_all();
        try {
            f(context, 0);
        } catch (...) {
            errors_[0] = std::current_exception();
        }
        // Wait for the workers: spin a little (they usually finish with us), then sleep.
        const auto until = clock::now() + spin_time;
        for (int spin = 0;; ++spin) {
            const int left = pending_.load(std::memory_order_acquire);
            if (left == 0)
                break;
            if (spin % 64 != 63 || clock::now() < until)
                pause();
            else
                pending_.wait(left, std::memory_order_acquire);
        }
        // Each part wrote only its own slot, and the acquire above orders those writes first.
        for (auto& e : errors_) {
            if (e) {
                std::exception_ptr first = e;
                for (auto& other : errors_) other = nullptr;
                std::rethrow_exception(first);
            }
        }
    }

  private:
    using clock = std::chrono::steady_clock;
    // How long a thread spins before it sleeps: long enough to catch back-to-back calls, short
    // enough not to take a shared core from others for long.
    static constexpr auto spin_time = std::chrono::microseconds(50);

    static void pause() {
#if defined(__x86_64__) || defined(__i386__)
        _mm_pause();
#else
        std::this_thread::yield();
#endif
    }

    void work(int part, unsigned seen) {
        for (;;) {
            unsigned now = generation_.load(std::memory_order_acquire);
            const auto until = clock::now() + spin_time;
            for (int spin = 1; now == seen; ++spin) {
                if (spin % 64 == 0 && clock::now() >= until)
                    break;
                pause();
                now = generation_.load(std::memory_order_acquire);
            }
            if (now == seen) {
                generation_.wait(seen, std::memory_order_acquire);
                continue;
            }
            seen = now;
            if (stopping_.load(std::memory_order_acquire))
                return;
            try {
                job_(context_, part);
            } catch (...) {
                errors_[std::size_t(part)] = std::current_exception();
            }
            if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1)
                pending_.notify_one();
        }
    }

    void stop() {
        if (workers_.empty())
            return;
        stopping_.store(true, std::memory_order_release);
        generation_.fetch_add(1, std::memory_order_release);
        generation_.notify_all();
        for (auto& t : workers_)
            t.join();
        workers_.clear();
    }

    std::vector<std::thread> workers_;
    std::vector<std::exception_ptr> errors_ = std::vector<std::exception_ptr>(1);
    std::atomic<unsigned> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stopping_{false};
    job job_ = nullptr;
    void* context_ = nullptr;
};

} // namespace inn::graph
