#pragma once
// IRevNetDownsampling / IRevNetUpsampling (FrEIA.modules.IRevNet*): the invertible 2x2
// space-to-depth reshuffle of i-RevNet. (C, H, W) <-> (4C, H/2, W/2), log|det J| = 0.
//
//   IRevNetDownsampling<>                          // FrEIA's default backend
//   IRevNetDownsampling<{.legacy_backend = true}>  // FrEIA's reshape backend
//
// For the 2x2 patch at (2i, 2j) with in-patch offset (dy, dx), k = 2*dy + dx, channel c of the
// high-resolution side goes to low-resolution channel 4c + k (default) or k*C + c (legacy).
//
// FrEIA's default backend is a grouped stride-2 convolution with a fixed one-hot kernel, stored
// in the state_dict as `downsample_kernel` (4C, 1, 2, 2), C the high-resolution channel count.
// The kernel is exposed (not trainable) so that state_dicts load, but the computation is a
// plain index map: it is exact, and unlike the convolution it does not spread an Inf/NaN of one
// pixel to the other three outputs of its patch (0 * Inf). A loaded kernel is not consulted.

#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>

#include "../core/module.hpp"
#include "../core/parameters.hpp"
#include "detail/space_to_depth.hpp"

namespace inn {

struct IRevNetOptions {
    bool legacy_backend = false;
};

namespace detail {

/// The 2x2 space-to-depth map between a high-resolution sample (C, H, W) and its low-resolution
/// form (4C, H/2, W/2): the value k of a patch is its pixel k = 2 dy + dx.
template <dims High, bool Legacy> struct irevnet_shuffle {
    using geometry = space_to_depth<High, Legacy>;

    /// ToLow: high -> low (downsampling); otherwise low -> high.
    template <bool ToLow, Scalar S> static void run(const S* src, S* dst) {
        geometry::for_each_patch([&](const auto& hi, const auto& lo) {
            for (std::size_t k = 0; k < 4; ++k) {
                if constexpr (ToLow)
                    dst[lo[k]] = src[hi[k]];
                else
                    dst[hi[k]] = src[lo[k]];
            }
        });
    }
};

/// FrEIA's `downsample_kernel`: kernel 4c + k has a 1 at (dy, dx) with k = 2*dy + dx.
template <Scalar S> parameter<S> irevnet_kernel(index_t channels) {
    parameter<S> p(tensor_shape{4 * channels, 1, 2, 2}, /*learned=*/false);
    for (index_t c = 0; c < channels; ++c)
        for (index_t k = 0; k < 4; ++k)
            p.values[(4 * c + k) * 4 + k] = S(1);
    return p;
}

struct irevnet_no_kernel {};

/// The bound module of both directions; `Down` says which way `forward` goes.
/// `High` is the high-resolution side (C, H, W).
template <Scalar S, dims High, bool Legacy, bool Down> struct irevnet_bound {
    using shuffle = irevnet_shuffle<High, Legacy>;
    static constexpr index_t C = High[0];
    static constexpr index_t n = shuffle::geometry::size;

    // Legacy FrEIA keeps no state.
    [[no_unique_address]] std::conditional_t<Legacy, irevnet_no_kernel, parameter<S>>
        downsample_kernel;

    explicit irevnet_bound(generator&) {
        if constexpr (!Legacy)
            downsample_kernel = irevnet_kernel<S>(C);
    }
    void forward(const run_args<S>& a) const { apply<Down>(a); }
    void inverse(const run_args<S>& a) const { apply<!Down>(a); }
    /// A permutation's transpose is its inverse: the gradient moves back the other way.
    void backward(const backward_args<S>& a) const {
        for (index_t b = 0; b < a.batch; ++b)
            shuffle::template run<!Down>(a.grad_out[0].row(b), a.grad_in[0].row(b));
    }
    /// For fusing with its neighbours (graph/fusion.hpp): the reshuffle as a gather.
    void affine_form(pass p, affine_gather<S>& m) const {
        const bool to_low = p == pass::inverse ? !Down : Down;
        m.set_identity(n);
        shuffle::geometry::for_each_patch([&](const auto& hi, const auto& lo) {
            for (std::size_t k = 0; k < 4; ++k) {
                if (to_low)
                    m.source[std::size_t(lo[k])] = hi[k];
                else
                    m.source[std::size_t(hi[k])] = lo[k];
            }
        });
    }
    template <class V> void visit(V&& v, const std::string& prefix) {
        if constexpr (!Legacy)
            v(prefix + "downsample_kernel", downsample_kernel.ref());
    }

  private:
    // A permutation: log|det J| = 0, nothing to add.
    template <bool ToLow> static void apply(const run_args<S>& a) {
        for (index_t b = 0; b < a.batch; ++b)
            shuffle::template run<ToLow>(a.in[0].row(b), a.out[0].row(b));
    }
};

} // namespace detail

/// (C, H, W) -> (4C, H/2, W/2); H and W must be even.
template <IRevNetOptions Opt = IRevNetOptions{}> struct IRevNetDownsampling {
    static constexpr std::string_view name = "IRevNetDownsampling";
    static constexpr IRevNetOptions options = Opt;

    static constexpr shape_result output_shapes(const signature& s) {
        return detail::space_to_depth_shapes(s);
    }

    template <Scalar S, signature Sig>
    using bind = detail::irevnet_bound<S, Sig.in(), Opt.legacy_backend, /*Down=*/true>;
};

/// (C, H, W) -> (C/4, 2H, 2W), the exact inverse of IRevNetDownsampling; C must be divisible
/// by 4. As in FrEIA it is the downsampler of its output shape run backwards, so its
/// `downsample_kernel` has shape (C, 1, 2, 2).
template <IRevNetOptions Opt = IRevNetOptions{}> struct IRevNetUpsampling {
    static constexpr std::string_view name = "IRevNetUpsampling";
    static constexpr IRevNetOptions options = Opt;

    static constexpr shape_result output_shapes(const signature& s) {
        return detail::depth_to_space_shapes(s);
    }

    template <Scalar S, signature Sig>
    using bind = detail::irevnet_bound<S, detail::high_resolution(Sig.in()), Opt.legacy_backend,
                                       /*Down=*/false>;
};

} // namespace inn
