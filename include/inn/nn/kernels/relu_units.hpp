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
// whole MLP in a small fraction of its FLOP count. The pieces are summed in long double with
// compensation and rounded once, so each output has the rounding of one multiply-add of rounded
// A and B (|A x| + |B| ulps), within what the layers' H-term sums give; a sample near a switch
// point sees the point rounded once (the units' weight times that rounding). It is used only where
// every switch point, A and B is finite and, where nonzero, normal (a subnormal one would lose its
// digits); otherwise, and for NaN or infinite parameters, the plain fused kernel runs
// (kernels/mlp.hpp). NaN inputs give NaN; x = ±inf gives the limit, ±inf or B where the last
// piece is flat (the layers may give NaN there, from inf - inf or 0 inf in their sums). The network
// makes the form when parameters change (tensor_ref::remake), never while a trainer has gradients
// attached.

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "../../core/aligned_vector.hpp"
#include "../../core/config.hpp"

namespace inn::nn::kernels {

/// The form above of W1 [H, 1], b1 [H], W2 [O, H], b2 [O]: `points` holds the switch points of
/// the units of w1 != 0 in ascending order, then NaN up to `span` (a power of two above H, so
/// that the search takes the same log2(span) steps for every sample and never reads past the
/// end: no point compares below a NaN); `pieces` holds per piece its O slopes, then its O
/// intercepts - piece i lies above i points.
template <Scalar S> struct relu_units {
    aligned_vector<S> points, pieces;
    index_t span = 0;

    bool empty() const { return pieces.size() == 0; }

    /// Makes the form; false, and empty, where a switch point, slope or intercept would not be
    /// finite or a nonzero one not normal. Sized for H units whatever their weights, so that
    /// remaking it allocates nothing.
    bool make(const S* W1, const S* b1, const S* W2, const S* b2, index_t H, index_t O) {
        for (index_t k = 0; k < H; ++k)
            if (!std::isfinite(W1[k]) || !std::isfinite(b1[k]))
                return drop();
        for (index_t j = 0; j < O * H; ++j)
            if (!std::isfinite(W2[j]))
                return drop();
        for (index_t o = 0; o < O; ++o)
            if (!std::isfinite(b2[o]))
                return drop();

        // The switching units in ascending order of their exact switch point.
        order.clear();
        for (index_t k = 0; k < H; ++k)
            if (W1[k] != 0)
                order.emplace_back(-wide(b1[k]) / wide(W1[k]), k);
        std::sort(order.begin(), order.end());

        span = index_t(std::bit_ceil(std::size_t(H) + 1));
        points.resize(span);
        pieces.resize((H + 1) * 2 * O);
        std::fill(points.data(), points.data() + span, std::numeric_limits<S>::quiet_NaN());
        for (std::size_t j = 0; j < order.size(); ++j)
            if (!usable(points.data()[j] = S(order[j].first)))
                return drop();

        // Below every point: the units of w1 < 0 are on, the constant units add w2 relu(b1).
        sums.assign(std::size_t(4 * O), wide(0)); // per output A, its compensation, B, its
        for (index_t o = 0; o < O; ++o)
            add(o, wide(0), wide(b2[o]));
        for (index_t k = 0; k < H; ++k)
            for (index_t o = 0; o < O; ++o) {
                const wide w2 = W2[o * H + k];
                if (W1[k] < 0)
                    add(o, w2 * wide(W1[k]), w2 * wide(b1[k]));
                else if (W1[k] == 0)
                    add(o, wide(0), w2 * std::max(wide(b1[k]), wide(0)));
            }
        if (!store(0, O))
            return drop();
        // Each point switches its unit on (w1 > 0) or off (w1 < 0).
        for (std::size_t j = 0; j < order.size(); ++j) {
            const index_t k = order[j].second;
            const wide sign = W1[k] > 0 ? 1 : -1;
            for (index_t o = 0; o < O; ++o) {
                const wide w2 = sign * wide(W2[o * H + k]);
                add(o, w2 * wide(W1[k]), w2 * wide(b1[k]));
            }
            if (!store(index_t(j) + 1, O))
                return drop();
        }
        return true;
    }

    /// Empty (the plain kernel runs); keeps nothing allocated.
    bool drop() {
        points.clear();
        pieces.clear();
        span = 0;
        order = {};
        sums = {};
        return false;
    }

  private:
    using wide = long double;
    std::vector<std::pair<wide, index_t>> order;
    std::vector<wide> sums;

    static bool usable(S v) {
        return std::isfinite(v) && (v == 0 || std::abs(v) >= std::numeric_limits<S>::min());
    }
    // Neumaier's compensated sum: the pieces' sums stay exact to long double's rounding however
    // many units switch on and off before them.
    static void sum(wide& s, wide& c, wide v) {
        const wide t = s + v;
        c += std::abs(s) >= std::abs(v) ? (s - t) + v : (v - t) + s;
        s = t;
    }
    void add(index_t o, wide a, wide b) {
        sum(sums[4 * o], sums[4 * o + 1], a);
        sum(sums[4 * o + 2], sums[4 * o + 3], b);
    }
    bool store(index_t piece, index_t O) {
        S* p = pieces.data() + piece * 2 * O;
        for (index_t o = 0; o < O; ++o) {
            p[o] = S(sums[4 * o] + sums[4 * o + 1]);
            p[O + o] = S(sums[4 * o + 2] + sums[4 * o + 3]);
            if (!usable(p[o]) || !usable(p[O + o]))
                return false;
        }
        return true;
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

} // namespace inn::nn::kernels
