#pragma once
// SIMD vectors of the build's target for the element-wise loops outside the dispatched kernels
// (coupling tails, Adam, activation gradients): `simd<S>` (kernels/vector/simd.ipp: vector
// extensions of the build's widest registers, load, store, lane sums, an activation on every
// lane), and loops of whole Eigen packets. The dense kernels pick a wider target at run time
// where the CPU has one (targets.hpp).

#include <cstring>
#include <type_traits>

#include <Eigen/Core>

#include "../../core/config.hpp"
#include "targets.hpp"

namespace inn::nn::kernels {

/// The identity, for layers without an activation to fuse.
struct no_act {
    template <class T> T operator()(T x) const { return x; }
};

/// The build's widest vectors (64 bytes with AVX-512, 32 with AVX, else 16): wider ones would
/// be split anyway, and passing them by value would change the ABI.
using isa::build::simd;
using isa::build::vector_bytes;

/// dst[0, n) = f(src[0, n)) for an Eigen array expression `f`, one full SIMD packet at a time
/// and the remaining elements one by one: Eigen's own loop over a dynamic size would leave runs
/// shorter than a packet to scalar code anyway, and a padded copy costs store-forwarding stalls.
template <Scalar S, class F> void apply_packets(const S* src, S* dst, index_t n, F f) {
    constexpr int L = simd<S>::lanes;
    using A = Eigen::Array<S, L, 1>;
    using A1 = Eigen::Array<S, 1, 1>;
    index_t i = 0;
    for (; i + L <= n; i += L)
        Eigen::Map<A>(dst + i) = f(Eigen::Map<const A>(src + i));
    for (; i < n; ++i) {
        const A1 v(src[i]);
        const A1 r = f(v);
        dst[i] = r(0);
    }
}

/// The sum of p[0, n): whole packets into one packet of partial sums, then its lanes and the
/// rest in order - vectorised, and the same bits for the same build whatever the alignment.
template <Scalar S> S sum(const S* p, index_t n) {
    constexpr int L = simd<S>::lanes;
    using A = Eigen::Array<S, L, 1>;
    A acc = A::Zero();
    index_t i = 0;
    for (; i + L <= n; i += L)
        acc += Eigen::Map<const A>(p + i);
    S total = acc.sum();
    for (; i < n; ++i)
        total += p[i];
    return total;
}

/// dst = alpha * tanh(src * tenth / alpha) (the soft clamp of AllInOneBlock, constants rounded
/// to S first as PyTorch does); one instantiation per scalar type.
template <Scalar S> void tanh_clamp(const S* src, S* dst, index_t n, S alpha, S tenth) {
    apply_packets(src, dst, n, [&](const auto& v) { return (v * tenth / alpha).tanh() * alpha; });
}
/// p = exp(p), or exp(-p) with `negate`.
template <Scalar S> void exp_inplace(S* p, index_t n, bool negate) {
    if (negate)
        apply_packets(p, p, n, [](const auto& v) { return (-v).exp(); });
    else
        apply_packets(p, p, n, [](const auto& v) { return v.exp(); });
}

} // namespace inn::nn::kernels
