#pragma once
// The small MLP of one input with ReLU (a subnet of 2-d data: Linear(1, H) -> ReLU -> Linear(H, O))
// is a piecewise-linear function of its input. Hidden unit k switches at t_k = -b1_k / w1_k (on
// above it where w1_k > 0, below it where w1_k < 0; a unit of w1_k = 0 is the constant
// w2_k relu(b1_k)), so between two neighbouring switch points every output is
//
//   y_o = A_o x + B_o,   A_o = Σ_on w2_ok w1_k,   B_o = b2_o + Σ_on w2_ok b1_k (+ the constants).
//
// The form keeps the sorted switch points and each of the H + 1 pieces' A and B; a sample costs a
// binary search (log2 H loads and compares) and O multiply-adds instead of H (1 + O) of them - the
// whole MLP in a small fraction of its FLOP count. The pieces are summed in a wider type with
// compensation and rounded once, so each output has the rounding of one multiply-add of rounded
// A and B (|A x| + |B| ulps), within what the layers' H-term sums give; a sample near a switch
// point sees the point rounded once (the units' weight times that rounding). It is used only where
// every switch point, A and B is finite and, where nonzero, normal (a subnormal one would lose its
// digits); otherwise, and for NaN or infinite parameters, the plain fused kernel runs
// (kernels/mlp.hpp). NaN inputs give NaN; x = ±inf gives the limit, ±inf or B where the last
// piece is flat (the layers may give NaN there, from inf - inf or 0 inf in their sums).
//
// Training needs the form's other half. With the units sorted by their exact switch point, the
// samples that turn unit k on are those on one side of t_k, so its parameter gradients are sums
// over a suffix or prefix of the samples sorted by x:
//
//   dW2_ok = w1_k Σ_on g_o x + b1_k Σ_on g_o,  db1_k = Σ_o W2_ok Σ_on g_o,
//   dW1_k = Σ_o W2_ok Σ_on g_o x,              dx = Σ_o g_o A_o (the slopes of x's piece),
//
// a bucket per piece and one sweep over the units instead of H (3 + 4 O) operations per sample
// (relu_units_backward). The network makes the inference form when parameters change
// (tensor_ref::remake), and while a trainer has gradients attached the training form: the same
// pieces summed without compensation (remade every step, so it must be cheap), with the exact
// points for the backward.

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "../../core/aligned_vector.hpp"
#include "../../core/config.hpp"

namespace inn::nn::kernels {

/// The forms above of W1 [H, 1], b1 [H], W2 [O, H], b2 [O]. The inference form (make): `points`
/// holds the switch points of the units of w1 != 0 in ascending order, then NaN up to `span` (a
/// power of two above H, so that the search takes the same log2(span) steps for every sample and
/// never reads past the end: no point compares below a NaN); `pieces` holds per piece its O
/// slopes, then its O intercepts - piece i lies above i points. The training form
/// (make_for_training) adds the points unrounded (`keys`, in `wide`).
template <Scalar S> struct relu_units {
    // Wide enough for every switch point of S (|b1 / w1| < 2^277 for float) and for sums whose
    // error stays far below S's rounding.
    using wide = std::conditional_t<sizeof(S) <= 4, double, long double>;

    aligned_vector<S> points, pieces;
    index_t span = 0;
    static constexpr index_t max_outputs = 8; // a small MLP's (kernels/mlp.hpp)

    bool empty() const { return pieces.size() == 0; }
    bool trained() const { return !keys.empty(); }

    /// Makes the inference form (and drops the training form); false, and empty, where a switch
    /// point, slope or intercept would not be finite or a nonzero one not normal. Sized for H
    /// units whatever their weights, so that remaking it allocates nothing.
    bool make(const S* W1, const S* b1, const S* W2, const S* b2, index_t H, index_t O) {
        drop_training();
        return make_form<false>(W1, b1, W2, b2, H, O);
    }

    /// Makes the training form: the inference form's points and pieces, summed without
    /// compensation (plain sums in `wide` keep their error far below S's rounding, and the form
    /// is remade every step), and the unrounded points. False, and no form, where a parameter is
    /// not finite or a piece or point not usable. Allocates only the first time.
    bool make_for_training(const S* W1, const S* b1, const S* W2, const S* b2, index_t H,
                           index_t O) {
        return make_form<true>(W1, b1, W2, b2, H, O);
    }

    /// No form (the plain kernels run); keeps nothing allocated.
    bool drop() {
        points.clear();
        pieces.clear();
        span = 0;
        order = {};
        unit_keys = {};
        drop_training();
        return false;
    }

    /// Bytes of scratch relu_units_backward needs for `batch` samples of H units and O outputs.
    static constexpr index_t backward_scratch_bytes(index_t H, index_t O, index_t batch) {
        return alignof(wide) + 4 * (H + 1) * O * index_t(sizeof(wide)) +
               2 * batch * index_t(sizeof(index_t));
    }

  private:
    template <Scalar T, int O>
    friend void relu_units_backward(const relu_units<T>&, const T*, index_t, const T*, index_t, T*,
                                    index_t, const T*, const T*, const T*, T*, T*, T*, index_t,
                                    index_t, void*);
    using bits = std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>; // S's
    std::vector<wide> keys; // the training form's unrounded points, NaN up to key_span
    index_t key_span = 0, switch_count = 0;

    // Both forms: the points in order, then the pieces (compensated sums for inference, plain
    // ones and the unrounded points `keys` for training).
    template <bool Training>
    bool make_form(const S* W1, const S* b1, const S* W2, const S* b2, index_t H, index_t O) {
        if (O > max_outputs || !finite(W1, H) || !finite(b1, H) || !finite(W2, O * H) ||
            !finite(b2, O))
            return drop();
        const std::size_t switching = sort_units(W1, b1, H);
        span = index_t(std::bit_ceil(std::size_t(H) + 1));
        points.resize(span);
        pieces.resize((H + 1) * 2 * O);
        std::fill(points.data(), points.data() + span, std::numeric_limits<S>::quiet_NaN());
        for (std::size_t j = 0; j < switching; ++j)
            points.data()[j] = S(order[j].first);
        if constexpr (Training) {
            switch_count = index_t(switching);
            key_span = span;
            keys.assign(std::size_t(span), std::numeric_limits<wide>::quiet_NaN());
            for (std::size_t j = 0; j < switching; ++j)
                keys[j] = order[j].first;
        }
        return (usable(points.data(), index_t(switching)) &&
                for_outputs(O,
                            [&]<int N>() {
                                return this->template sum_pieces<N, !Training>(W1, b1, W2, b2, H,
                                                                               switching);
                            }) &&
                usable(pieces.data(), pieces.size())) ||
               drop();
    }

    void drop_training() {
        keys = {};
        key_span = switch_count = 0;
    }
    // Whether all n values are finite: their exponent bits below all ones, tested on the bits
    // (a loop the compiler vectorises, every step).
    static bool finite(const S* v, index_t n) {
        constexpr bits magnitude = ~bits(0) >> 1,
                       inf = std::bit_cast<bits>(std::numeric_limits<S>::infinity());
        bits largest = 0;
        for (index_t i = 0; i < n; ++i)
            largest = std::max(largest, bits(std::bit_cast<bits>(v[i]) & magnitude));
        return largest < inf;
    }

    // Sorts `order`: the units in ascending order of their exact switch point, those of w1 = 0
    // (+inf) last; returns how many switch. From the last order (a training step moves few
    // points past others): insertion sort while it stays cheap, else from scratch.
    std::size_t sort_units(const S* W1, const S* b1, index_t H) {
        if (order.size() != std::size_t(H)) {
            order.resize(std::size_t(H));
            for (index_t k = 0; k < H; ++k)
                order[std::size_t(k)].second = k;
        }
        // In unit order first, as three loops the compiler vectorises (a division under a
        // condition it would neither vectorise nor hoist).
        unit_keys.resize(std::size_t(H));
        wide* key = unit_keys.data();
        for (index_t k = 0; k < H; ++k)
            key[k] = W1[k] != 0 ? wide(W1[k]) : wide(1);
        for (index_t k = 0; k < H; ++k)
            key[k] = -wide(b1[k]) / key[k];
        for (index_t k = 0; k < H; ++k)
            key[k] = W1[k] != 0 ? key[k] : std::numeric_limits<wide>::infinity();
        for (auto& [t, k] : order)
            t = unit_keys[std::size_t(k)];
        if (!insertion_sort(order, 8 * std::size_t(H)))
            std::sort(order.begin(), order.end());
        std::size_t constant = 0;
        for (index_t k = 0; k < H; ++k)
            constant += W1[k] == 0;
        return std::size_t(H) - constant;
    }

    std::vector<std::pair<wide, index_t>> order;
    std::vector<wide> unit_keys;

    // Sorts v in place by insertion unless that takes more than `budget` moves (then false, v
    // a permutation of what it was).
    static bool insertion_sort(std::vector<std::pair<wide, index_t>>& v, std::size_t budget) {
        for (std::size_t i = 1; i < v.size(); ++i) {
            const auto e = v[i];
            std::size_t j = i;
            for (; j > 0 && e.first < v[j - 1].first; --j) {
                if (budget-- == 0) {
                    v[j] = e;
                    return false;
                }
                v[j] = v[j - 1];
            }
            v[j] = e;
        }
        return true;
    }

    // Whether a unit of weight w is on below every point (w < 0) and whether it is constant
    // (w = ±0), as 0 or 1: from the bits, since GCC turns comparisons of random signs into
    // branches that mispredict half the time.
    static std::pair<wide, wide> below_points(S w) {
        const bits b = std::bit_cast<bits>(w), zero = (b << 1) == 0;
        return {wide((b >> (8 * sizeof(S) - 1)) & (1 - zero)), wide(zero)};
    }
    // Whether all n values are finite and, where nonzero, normal: on the bits, as finite.
    static bool usable(const S* v, index_t n) {
        constexpr bits magnitude = ~bits(0) >> 1,
                       normal = std::bit_cast<bits>(std::numeric_limits<S>::min()),
                       inf = std::bit_cast<bits>(std::numeric_limits<S>::infinity());
        bits largest = 0, subnormal = 0;
        for (index_t i = 0; i < n; ++i) {
            const bits m = std::bit_cast<bits>(v[i]) & magnitude;
            largest = std::max(largest, m);
            subnormal |= bits(m != 0 && m < normal);
        }
        return largest < inf && !subnormal;
    }
    // A compensated sum (Knuth's two-sum: each addition's rounding error exactly, without
    // branches): the pieces' sums stay exact to wide's rounding however many units switch on
    // and off before them.
    static void sum(wide& s, wide& c, wide v) {
        const wide t = s + v, bv = t - s;
        c += (s - (t - bv)) + (v - bv);
        s = t;
    }

    // Each piece's N slopes and N intercepts, the sums in registers: compensated (two-sum) for
    // the inference form, plain for the training form (remade every step). Units in `order`,
    // the first `switching` of them switching.
    template <int N, bool Compensated>
    bool sum_pieces(const S* W1, const S* b1, const S* W2, const S* b2, index_t H,
                    std::size_t switching) {
        wide sums[2 * N] = {}, comps[2 * N] = {}; // the slopes, then the intercepts
        auto add = [&](int i, wide v) {
            if constexpr (Compensated)
                sum(sums[i], comps[i], v);
            else
                sums[i] += v;
        };
        S* p = pieces.data();
        auto store = [&] {
            for (int i = 0; i < 2 * N; ++i)
                p[i] = Compensated ? S(sums[i] + comps[i]) : S(sums[i]);
            p += 2 * N;
        };
        // Below every point: the units of w1 < 0 are on, those of w1 = 0 add w2 relu(b1).
        for (int o = 0; o < N; ++o)
            add(N + o, wide(b2[o]));
        for (index_t k = 0; k < H; ++k) {
            const auto [neg, constant] = below_points(W1[k]);
            const wide w = W1[k], c = b1[k];
            const wide a = neg * w, b = neg * c + constant * (c + std::abs(c)) / 2;
            for (int o = 0; o < N; ++o) {
                const wide w2 = W2[o * H + k];
                add(o, w2 * a);
                add(N + o, w2 * b);
            }
        }
        store();
        // Each point switches its unit on (w1 > 0) or off (w1 < 0).
        for (std::size_t j = 0; j < switching; ++j) {
            const index_t k = order[j].second;
            const wide sign = std::copysign(wide(1), wide(W1[k])), a = W1[k], b = b1[k];
            for (int o = 0; o < N; ++o) {
                const wide w2 = sign * wide(W2[o * H + k]);
                add(o, w2 * a);
                add(N + o, w2 * b);
            }
            store();
        }
        return true;
    }

    // f.template operator()<O>() for O known at compile time (O up to max_outputs; else false).
    template <class F> static bool for_outputs(index_t O, F&& f) {
        switch (O) {
        case 1:
            return f.template operator()<1>();
        case 2:
            return f.template operator()<2>();
        case 3:
            return f.template operator()<3>();
        case 4:
            return f.template operator()<4>();
        case 5:
            return f.template operator()<5>();
        case 6:
            return f.template operator()<6>();
        case 7:
            return f.template operator()<7>();
        case 8:
            return f.template operator()<8>();
        default:
            return false;
        }
    }
};

/// y = A x + B of the piece x lies in, for every sample: the small MLP of one input and ReLU in
/// the form `units` made. The same scalar code on every target: a branch-free binary search per
/// sample, eight samples side by side so that their dependent loads overlap.
template <Scalar S, int O>
void relu_units_mlp(const relu_units<S>& units, const S* X, index_t ldx, S* Y, index_t ldy,
                    index_t batch) {
    const S* t = units.points.data();
    const S* pieces = units.pieces.data();
    const index_t span = units.span;
    // The number of points <= x (a NaN x: none; NaN points never count).
    auto search = [&]<int G>(const S* x, index_t* i) {
        for (int g = 0; g < G; ++g)
            i[g] = 0;
        for (index_t step = span / 2; step > 0; step /= 2)
            for (int g = 0; g < G; ++g)
                i[g] += t[i[g] + step - 1] <= x[g] ? step : 0;
    };
    auto store = [&](S x, index_t i, S* y) {
        const S* p = pieces + i * 2 * O;
        for (int o = 0; o < O; ++o)
            y[o] = p[o] == 0 && std::isinf(x) ? p[O + o] : p[o] * x + p[O + o];
    };
    constexpr int G = 8;
    index_t b = 0;
    for (; b + G <= batch; b += G) {
        S x[G];
        index_t i[G];
        for (int g = 0; g < G; ++g)
            x[g] = X[(b + g) * ldx];
        search.template operator()<G>(x, i);
        for (int g = 0; g < G; ++g)
            store(x[g], i[g], Y + (b + g) * ldy);
    }
    for (; b < batch; ++b) {
        index_t i;
        search.template operator()<1>(X + b * ldx, &i);
        store(X[b * ldx], i, Y + b * ldy);
    }
}

/// The backward of the small MLP of one input and ReLU from the training form `u`, made from
/// the parameters W1, b1, W2 of H units that the forward ran with (the formulas atop this file):
/// dW1, db1, dW2 accumulate (each may be null), GX (ldgx) is written (may be null); db2 = Σ gy is
/// the caller's. A unit is on where w1 x + b1 > 0 exactly (as the fused kernels' multiply-add
/// decides: ReLU's derivative at 0 is 0): the samples go to the buckets of their piece among the
/// exact points, one bucket for the units of w1 > 0 (points < x) and one for w1 < 0 (points <= x),
/// which differ only for an x that is a switch point. Sums in relu_units::wide. `scratch` holds
/// relu_units::backward_scratch_bytes(H, O, batch) bytes.
template <Scalar S, int O>
void relu_units_backward(const relu_units<S>& u, const S* X, index_t ldx, const S* GY, index_t ldg,
                         S* GX, index_t ldgx, const S* W1, const S* b1, const S* W2, S* dW1, S* db1,
                         S* dW2, index_t H, index_t batch, void* scratch) {
    using wide = typename relu_units<S>::wide;
    const wide* t = u.keys.data();
    const index_t n = u.switch_count, span = u.key_span;
    const auto& order = u.order;
    // Per bucket Σ g_o, then Σ g_o x: below[i] gathers the samples with i points < x, upto[i]
    // those with i points <= x.
    const std::size_t buckets = std::size_t(2 * (n + 1) * O);
    void* p = scratch;
    std::size_t room = std::size_t(relu_units<S>::backward_scratch_bytes(H, O, batch));
    wide* below =
        static_cast<wide*>(std::align(alignof(wide), 2 * buckets * sizeof(wide), p, room));
    std::uninitialized_value_construct_n(below, 2 * buckets); // zeros
    wide* upto = below + buckets;
    index_t* lo = reinterpret_cast<index_t*>(upto + buckets);
    std::uninitialized_value_construct_n(lo, 2 * batch);
    index_t* hi = lo + batch;
    wide total[2 * O] = {};

    // The number of points < x (a NaN x: none; NaN keys never count); then those equal to it.
    auto search = [&]<int G>(index_t b) {
        wide x[G];
        index_t i[G];
        for (int g = 0; g < G; ++g) {
            x[g] = X[(b + g) * ldx];
            i[g] = 0;
        }
        for (index_t step = span / 2; step > 0; step /= 2)
            for (int g = 0; g < G; ++g)
                i[g] += t[i[g] + step - 1] < x[g] ? step : 0;
        for (int g = 0; g < G; ++g) {
            index_t j = i[g];
            while (j < n && t[j] == x[g])
                ++j;
            lo[b + g] = i[g];
            hi[b + g] = j;
            for (int o = 0; o < O; ++o) {
                const wide gy = GY[(b + g) * ldg + o], gx = gy * x[g];
                below[i[g] * 2 * O + o] += gy;
                below[i[g] * 2 * O + O + o] += gx;
                upto[j * 2 * O + o] += gy;
                upto[j * 2 * O + O + o] += gx;
                total[o] += gy;
                total[O + o] += gx;
            }
        }
    };
    constexpr int G = 8;
    index_t b = 0;
    for (; b + G <= batch; b += G)
        search.template operator()<G>(b);
    for (; b < batch; ++b)
        search.template operator()<1>(b);

    // Sums over the samples a unit turns on for, exact zeros where there are none: below[i]
    // becomes the sum of the buckets from i up (the samples with at least i points below them),
    // upto[i] that of the buckets up to i (at most i points at or below them).
    wide run[2 * O] = {}; // running sums in registers, not through memory
    for (index_t i = n; i >= 0; --i)
        for (int m = 0; m < 2 * O; ++m)
            below[i * 2 * O + m] = run[m] += below[i * 2 * O + m];
    std::fill(run, run + 2 * O, wide(0));
    for (index_t i = 0; i <= n; ++i)
        for (int m = 0; m < 2 * O; ++m)
            upto[i * 2 * O + m] = run[m] += upto[i * 2 * O + m];
    auto gradients = [&](index_t k, const wide* on) {
        const wide w = W1[k], c = b1[k];
        wide sb = 0, sw = 0;
        for (int o = 0; o < O; ++o) {
            const wide w2 = W2[o * H + k];
            if (dW2)
                dW2[o * H + k] += S(w * on[O + o] + c * on[o]);
            sb += w2 * on[o];
            sw += w2 * on[O + o];
        }
        if (db1)
            db1[k] += S(sb);
        if (dW1)
            dW1[k] += S(sw);
    };
    // The unit at point j: w1 > 0 on past it, w1 < 0 before it (an address select, no branch:
    // the signs are random).
    for (index_t j = 0; j < n; ++j) {
        const index_t k = order[std::size_t(j)].second;
        gradients(k, W1[k] > 0 ? below + (j + 1) * 2 * O : upto + j * 2 * O);
    }
    // Units of w1 = 0: on for every sample where b1 > 0.
    const wide none[2 * O] = {};
    for (index_t j = n; j < H; ++j) {
        const index_t k = order[std::size_t(j)].second;
        gradients(k, b1[k] > 0 ? total : none);
    }

    if (!GX)
        return;
    // dx = Σ_o g_o A_o, A the slopes of the units on at x: those of piece lo, less the units of
    // w1 < 0 switching exactly at x (off there, on in piece lo).
    for (b = 0; b < batch; ++b) {
        S a[O];
        for (int o = 0; o < O; ++o)
            a[o] = u.pieces.data()[lo[b] * 2 * O + o];
        for (index_t j = lo[b]; j < hi[b]; ++j) {
            const index_t k = order[std::size_t(j)].second;
            if (W1[k] < 0)
                for (int o = 0; o < O; ++o)
                    a[o] -= W1[k] * W2[o * H + k];
        }
        S s = 0;
        for (int o = 0; o < O; ++o)
            s += GY[b * ldg + o] * a[o];
        GX[b * ldgx] = s;
    }
}

} // namespace inn::nn::kernels
