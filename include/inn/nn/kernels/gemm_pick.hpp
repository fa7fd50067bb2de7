#pragma once
// The measured pick of gemm_nt's plan: how a Linear product walks W and the samples depends on
// the machine's caches, so where it can matter the first product of each layer shape and batch
// class in a process times the candidate plans on its own data and keeps the fastest.
//
//   * Candidates: one panel of samples against all of W (W streams once per 48 samples); W
//     in blocks of about a quarter of L2 multiplied into four panels at a time (each block read
//     once per 192 samples), only where W is larger than half of L2 and the batch fills the
//     four panels; and W's packed copy where the layer has one (the network makes them when
//     the parameters change, for weights without a gradient attached): samples broadcast from
//     their rows, nothing transposed per call. Where there is one candidate, nothing is timed.
//   * Determinism: every plan gives the same bits (gemm.hpp), so which one a process picks,
//     and when, never changes a result. The pick is made once per (scalar, In, Out, batch class)
//     and process - never per call - on the call's own buffers (no allocation), lock-free;
//     two threads racing to make it store equally valid picks.
//   * `gemm_picks()` lists what was picked (benchmarks print it beside their figures).

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdio>
#include <string>

#include "caches.hpp"
#include "gemm.hpp"

namespace inn::nn::kernels {

/// Panels of scratch a Linear layer asks for (gemm_nt_scratch): enough for the blocked plan.
inline constexpr index_t gemm_pick_panels = 4;

/// The candidate plans for a product of `In` x `Out` weights over `batch` samples with room for
/// `scratch_panels` panels; one candidate (the default plan) where nothing is to be chosen.
template <Scalar S>
inline int gemm_candidates(index_t In, index_t Out, index_t batch, index_t scratch_panels,
                           gemm_plan (&out)[2]) {
    out[0] = gemm_plan{};
    const long w_bytes = long(In) * Out * long(sizeof(S));
    const long l2 = caches().l2;
    if (scratch_panels < gemm_pick_panels || batch < gemm_pick_panels * gemm_panel<S> ||
        w_bytes <= l2 / 2)
        return 1;
    const index_t rows =
        std::max<index_t>(8, index_t(l2 / 4 / (long(In) * long(sizeof(S)))) / 8 * 8);
    out[1] = gemm_plan{gemm_pick_panels, rows};
    return 2;
}

/// Picks that gemm_picks() lists: the first this many of the process.
inline constexpr int gemm_pick_records = 64;

namespace detail {
/// What the processes' picks are, per layer shape: index of the plan + 1 (0: not picked yet)
/// per batch class (the bit width of the batch).
template <Scalar S, index_t In, index_t Out, bool Packed> struct gemm_pick_slots {
    static inline std::atomic<int> slot[64] = {};
};

/// Every shape that has picked, for gemm_picks(): a fixed list of the first
/// gemm_pick_records (no allocation at call time).
struct pick_record {
    std::atomic<long> in{0}, out{0}, batch_class{0}, rows{0};
    std::atomic<int> scalar_bytes{0}, plan{0}, packed{0};
};
inline pick_record* pick_records() {
    static pick_record r[gemm_pick_records];
    return r;
}
inline std::atomic<int>& pick_count() {
    static std::atomic<int> n{0};
    return n;
}
} // namespace detail

/// gemm_nt_dense with the plan picked for this shape and batch class (timed on this call the
/// first time; see above). `Wp`: W's packed copy (pack_weights), or null.
template <Scalar S, index_t In, index_t Out, class F>
void gemm_nt_picked(const S* X, index_t ldx, const S* W, const S* bias, S* Y, index_t ldy,
                    index_t batch, S* scratch, index_t scratch_panels, F act,
                    const S* Wp = nullptr) {
    if constexpr (In == 0 || Out == 0)
        return gemm_nt<S, In, Out>(X, ldx, W, bias, Y, ldy, batch, scratch, act);
    gemm_plan plans[3];
    int n = 1;
    if (scratch) {
        gemm_plan panel_plans[2];
        n = gemm_candidates<S>(In, Out, batch, scratch_panels, panel_plans);
        std::copy_n(panel_plans, n, plans);
    }
    // The packed copy where the tile runs at all (not for one or two samples, nor where
    // gemm_nt_dense leaves the product to Eigen).
    bool packed = Wp && batch > 2 && In >= 16;
    if constexpr (switchable)
        packed = packed && tuning().gemm && tuning().pack_weights;
    if (packed)
        plans[n++] = gemm_plan{.packed = true};
    if (n == 1)
        return gemm_nt_dense<S>(X, ldx, W, bias, Y, ldy, batch, In, Out, scratch, act, plans[0],
                                Wp);
    const int cls = int(std::bit_width(std::size_t(batch)));
    std::atomic<int>& slot = packed ? detail::gemm_pick_slots<S, In, Out, true>::slot[cls]
                                    : detail::gemm_pick_slots<S, In, Out, false>::slot[cls];
    if (const int picked = slot.load(std::memory_order_relaxed); picked > 0)
        return gemm_nt_dense<S>(X, ldx, W, bias, Y, ldy, batch, In, Out, scratch, act,
                                plans[picked - 1], Wp);
    // Each candidate twice, the better of its two times (the first run also warms the caches);
    // the last run leaves the call's result in Y, the same bits whichever ran last.
    double best = 0;
    int best_plan = 0;
    for (int i = 0; i < n; ++i) {
        double t = 0;
        for (int rep = 0; rep < 2; ++rep) {
            const auto t0 = std::chrono::steady_clock::now();
            gemm_nt_dense<S>(X, ldx, W, bias, Y, ldy, batch, In, Out, scratch, act, plans[i],
                             Wp);
            const double dt =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            t = rep == 0 ? dt : std::min(t, dt);
        }
        if (i == 0 || t < best)
            best = t, best_plan = i;
    }
    int expected = 0;
    if (slot.compare_exchange_strong(expected, best_plan + 1)) {
        const int k = detail::pick_count().fetch_add(1);
        if (k < gemm_pick_records) {
            auto& r = detail::pick_records()[k];
            r.in = long(In), r.out = long(Out), r.batch_class = long(cls);
            r.rows = long(plans[best_plan].row_block);
            r.scalar_bytes = int(sizeof(S));
            r.packed = plans[best_plan].packed ? 1 : 0;
            r.plan = best_plan + 1; // written last: a reader sees a record once this is set
        }
    }
}

/// What the measured picks chose so far, one line per layer shape and batch class, e.g.
/// "  float 512x784, batch 128-255: W in blocks of 128 rows x 4 panels"; empty if none ran.
/// Past gemm_pick_records picks, a last line says how many more were made.
inline std::string gemm_picks() {
    std::string s;
    const int total = detail::pick_count().load(), n = std::min(total, gemm_pick_records);
    for (int k = 0; k < n; ++k) {
        const auto& r = detail::pick_records()[k];
        if (r.plan.load() == 0)
            continue;
        char line[160];
        const long lo = 1L << (r.batch_class - 1), hi = (1L << r.batch_class) - 1;
        if (r.packed)
            std::snprintf(line, sizeof line,
                          "  %s %ldx%ld, batch %ld-%ld: packed W, samples from their rows\n",
                          r.scalar_bytes == 4 ? "float" : "double", r.in.load(), r.out.load(), lo,
                          hi);
        else if (r.plan == 1)
            std::snprintf(line, sizeof line, "  %s %ldx%ld, batch %ld-%ld: one panel, all of W\n",
                          r.scalar_bytes == 4 ? "float" : "double", r.in.load(), r.out.load(), lo,
                          hi);
        else
            std::snprintf(line, sizeof line,
                          "  %s %ldx%ld, batch %ld-%ld: W in blocks of %ld rows x %ld panels\n",
                          r.scalar_bytes == 4 ? "float" : "double", r.in.load(), r.out.load(), lo,
                          hi, r.rows.load(), long(gemm_pick_panels));
        s += line;
    }
    if (total > n)
        s += "  and " + std::to_string(total - n) + " more, not listed\n";
    return s;
}

} // namespace inn::nn::kernels
