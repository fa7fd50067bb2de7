#pragma once
// An element-wise module described as data: which input element each output element reads, and
// the affine map applied to it,
//
//     out[j] = scale[j] · in[source[j]] + shift[j]        for every sample,
//
// with a log|det J| that does not depend on the data. PermuteRandom, ActNorm,
// LearnedElementwiseScaling and the i-RevNet reshuffles are such maps; a bound module says so
// with `void affine_form(pass, affine_gather<S>&) const` (core/module.hpp), and the network fuses
// a chain of them into one pass over the batch (graph/fusion.hpp): maps compose into a map.

#include <cstddef>
#include <vector>

#include "config.hpp"

namespace inn {

template <Scalar S> struct affine_gather {
    std::vector<index_t> source;
    std::vector<S> scale;
    std::vector<S> shift;
    S log_det = 0; // added to every sample's log|det J|

    index_t size() const { return index_t(source.size()); }

    /// The identity on n elements. Resizing to the size it had allocates nothing.
    void set_identity(index_t n) {
        source.resize(std::size_t(n));
        scale.assign(std::size_t(n), S(1));
        shift.assign(std::size_t(n), S(0));
        for (index_t j = 0; j < n; ++j)
            source[std::size_t(j)] = j;
        log_det = 0;
    }

    /// Whether every element keeps its value (only moves): then the pass is a plain gather,
    /// exact, without the multiply-add.
    bool only_moves() const {
        for (std::size_t j = 0; j < scale.size(); ++j)
            if (scale[j] != S(1) || shift[j] != S(0))
                return false;
        return true;
    }
};

/// `out` = `second` after `first`: out[j] = a[j] · (A[s[j]] · in[src[s[j]]] + B[s[j]]) + b[j],
/// where (a, b, s) is `second` and (A, B, src) is `first`. The scale and shift are rounded once
/// each, as the two modules round theirs; log-dets are kept apart by the caller (their sum in
/// the modules' order gives the unfused bits).
template <Scalar S>
void compose(const affine_gather<S>& second, const affine_gather<S>& first, affine_gather<S>& out) {
    const std::size_t n = second.source.size();
    out.source.resize(n);
    out.scale.resize(n);
    out.shift.resize(n);
    for (std::size_t j = 0; j < n; ++j) {
        const auto s = std::size_t(second.source[j]);
        out.source[j] = first.source[s];
        out.scale[j] = second.scale[j] * first.scale[s];
        out.shift[j] = second.scale[j] * first.shift[s] + second.shift[j];
    }
    out.log_det = 0;
}

} // namespace inn
