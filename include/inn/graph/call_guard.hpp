#pragma once
// Detects two calls entering one network at once (a network is not thread-safe: its buffers
// belong to one call; use one network per thread, or one network with set_threads). The check
// costs an atomic exchange per call, so it is on in debug builds (no NDEBUG) and wherever
// INN_CHECK_CONCURRENT_CALLS=1 is defined for a whole target; the member exists either way, so
// targets with and without it agree on the network's layout.

#include <atomic>

#include "../core/errors.hpp"

#ifndef INN_CHECK_CONCURRENT_CALLS
#ifdef NDEBUG
#define INN_CHECK_CONCURRENT_CALLS 0
#else
#define INN_CHECK_CONCURRENT_CALLS 1
#endif
#endif

namespace inn::detail {

class call_guard {
  public:
    call_guard() = default;
    // A copy is another network: it is not busy.
    call_guard(const call_guard&) {}
    call_guard& operator=(const call_guard&) { return *this; }

    /// Held for the duration of one call.
    class scope {
      public:
        explicit scope(call_guard& g) : g_(g) {
            if constexpr (INN_CHECK_CONCURRENT_CALLS) {
                if (g_.busy_.exchange(true, std::memory_order_acquire))
                    throw usage_error(
                        "inn: two calls entered one network at the same time; a network's "
                        "buffers belong to one call: give each thread its own copy of the "
                        "network, or split batches with net.set_threads(n)");
            }
        }
        ~scope() {
            if constexpr (INN_CHECK_CONCURRENT_CALLS) g_.busy_.store(false, std::memory_order_release);
        }
        scope(const scope&) = delete;
        scope& operator=(const scope&) = delete;

      private:
        call_guard& g_;
    };

  private:
    std::atomic<bool> busy_{false};
};

}  // namespace inn::detail
