#pragma once
// A chain of per-sample modules as one kernel. Where a network is one chain (one input, one
// output, each module reading what the one before wrote) of modules whose device twins work
// sample by sample with a handful of values per sample (`per_sample`: the small AllInOneBlocks
// of the moons model), one warp carries each sample through the whole chain: the sample's
// values stay in registers from the caller's input to the caller's output, and the
// log-determinant is summed on the way. A call is then a single launch - no copies in or out,
// no intermediate buffer, no launch per module - which is what a batch of one pays for.
//
// A step is a functor with `S row(const S* x, S* y, index_t b, int lane, Lanes lanes)`: from
// the sample's values x (every lane holds them) it writes y in every lane and returns its
// log-determinant term; the lanes split its work and meet through lanes_sum (launch.hpp). On
// the host system the same code runs with one lane per sample. `prefetch(lane, lanes)` asks
// for its parameters ahead (all steps' at the start of the chain).

#include <cstddef>

#include "../../core/config.hpp"
#include "device.hpp"
#include "launch.hpp"

namespace inn::cuda {

/// The steps of a chain, in the order they run.
template <class... F> struct sample_steps {
    template <class Lanes> INN_HD void prefetch(int, Lanes) const {}
};
template <class F, class... R> struct sample_steps<F, R...> {
    F head;
    sample_steps<R...> tail;
    // Every step's parameters asked for at once, so that the sample meets one memory latency
    // for the whole chain rather than one per step.
    template <class Lanes> INN_HD void prefetch(int lane, Lanes lanes) const {
        head.prefetch(lane, lanes);
        tail.prefetch(lane, lanes);
    }
};

template <Scalar S, int C, class Lanes>
INN_HD inline void run_steps(const sample_steps<>&, S*, index_t, int, Lanes, S&) {}

template <Scalar S, int C, class Lanes, class F, class... R>
INN_HD inline void run_steps(const sample_steps<F, R...>& s, S* v, index_t b, int lane, Lanes lanes,
                             S& ljd) {
    static_assert(F::channels == C, "inn::cuda: the steps of a chain take the same values");
    S y[C];
    ljd += s.head.row(v, y, b, lane, lanes);
    for (int k = 0; k < C; ++k)
        v[k] = y[k];
    run_steps<S, C>(s.tail, v, b, lane, lanes, ljd);
}

/// The whole chain on sample b: x in, z and the log-determinant (unless null) out, written or
/// (`accumulate`: a module of a larger network) added. The sample is read whole before z is
/// written, so z may be x.
template <Scalar S, int C, class... F> struct sample_chain {
    sample_steps<F...> steps;
    const S* x;
    index_t ldx;
    S* z;
    index_t ldz;
    S* ljd;
    bool accumulate;
    template <class Lanes> INN_HD void operator()(index_t b, int lane, Lanes lanes) const {
        steps.prefetch(lane, lanes);
        S v[C];
        for (int k = 0; k < C; ++k)
            v[k] = x[b * ldx + k];
        S l = 0;
        run_steps<S, C>(steps, v, b, lane, lanes, l);
        if (lane == 0) {
            for (int k = 0; k < C; ++k)
                z[b * ldz + k] = v[k];
            if (ljd)
                ljd[b] = accumulate ? ljd[b] + l : l;
        }
    }
};

template <class F> sample_steps<F> make_sample_steps(const F& f) { return {f, {}}; }
template <class F, class G, class... R>
sample_steps<F, G, R...> make_sample_steps(const F& f, const G& g, const R&... r) {
    return {f, make_sample_steps(g, r...)};
}

/// The chain of `steps` (in the order they run) from x to z; its type is deduced from the
/// steps' values, so a kernel of it is spelled by the steps' own names (nvcc's host stubs
/// cannot spell a module's options).
template <Scalar S, int C, class... F>
sample_chain<S, C, F...> make_sample_chain(const S* x, index_t ldx, S* z, index_t ldz, S* ljd,
                                           bool accumulate, const F&... steps) {
    return {make_sample_steps(steps...), x, ldx, z, ldz, ljd, accumulate};
}

/// The most bytes of steps one chain kernel takes as arguments (within CUDA's classic limit of
/// 4 KiB with the chain's own pointers and the batch); longer chains run module by module.
inline constexpr std::size_t max_chain_bytes = 4096 - 128;

} // namespace inn::cuda
