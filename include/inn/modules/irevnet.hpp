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

#include <string>
#include <string_view>
#include <type_traits>

#include "../core/module.hpp"
#include "../core/parameters.hpp"

namespace inn {

struct IRevNetOptions {
    bool legacy_backend = false;
};

namespace detail {

/// The 2x2 space-to-depth map between a high-resolution sample (C, H, W) and its low-resolution
/// form (4C, H/2, W/2).
template <index_t C, index_t H, index_t W, bool Legacy> struct irevnet_shuffle {
    static constexpr index_t H2 = H / 2, W2 = W / 2, P2 = H2 * W2;

    static constexpr index_t channel(index_t c, index_t k) {
        return Legacy ? k * C + c : 4 * c + k;
    }

    /// ToLow: high -> low (downsampling); otherwise low -> high.
    template <bool ToLow, Scalar S> static void run(const S* src, S* dst) {
        for (index_t c = 0; c < C; ++c)
            for (index_t dy = 0; dy < 2; ++dy)
                for (index_t dx = 0; dx < 2; ++dx) {
                    const index_t lo = channel(c, 2 * dy + dx) * P2;
                    const index_t hi = c * H * W + dy * W + dx;
                    for (index_t i = 0; i < H2; ++i)
                        for (index_t j = 0; j < W2; ++j) {
                            const index_t h = hi + 2 * i * W + 2 * j, l = lo + i * W2 + j;
                            if constexpr (ToLow)
                                dst[l] = src[h];
                            else
                                dst[h] = src[l];
                        }
                }
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
template <Scalar S, index_t C, index_t H, index_t W, bool Legacy, bool Down> struct irevnet_bound {
    using shuffle = irevnet_shuffle<C, H, W, Legacy>;
    static constexpr index_t n = C * H * W;

    // Legacy FrEIA keeps no state.
    [[no_unique_address]] std::conditional_t<Legacy, irevnet_no_kernel, parameter<S>>
        downsample_kernel;

    explicit irevnet_bound(generator&) {
        if constexpr (!Legacy)
            downsample_kernel = irevnet_kernel<S>(C);
    }
    void forward(const run_args<S>& a) const { apply<Down>(a); }
    void inverse(const run_args<S>& a) const { apply<!Down>(a); }
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
        if (auto r = expect_single_input(s, 3, 3); !r.ok())
            return r;
        if (auto r = expect_no_condition(s); !r.ok())
            return r;
        const dims& d = s.in();
        if (d[1] % 2 != 0 || d[2] % 2 != 0)
            return fail(shape_error::odd_spatial_size);
        return returns({make_dims({4 * d[0], d[1] / 2, d[2] / 2})});
    }

    template <Scalar S, signature Sig>
    using bind = detail::irevnet_bound<S, Sig.in()[0], Sig.in()[1], Sig.in()[2], Opt.legacy_backend,
                                       /*Down=*/true>;
};

/// (C, H, W) -> (C/4, 2H, 2W), the exact inverse of IRevNetDownsampling; C must be divisible
/// by 4. As in FrEIA it is the downsampler of its output shape run backwards, so its
/// `downsample_kernel` has shape (C, 1, 2, 2).
template <IRevNetOptions Opt = IRevNetOptions{}> struct IRevNetUpsampling {
    static constexpr std::string_view name = "IRevNetUpsampling";
    static constexpr IRevNetOptions options = Opt;

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s, 3, 3); !r.ok())
            return r;
        if (auto r = expect_no_condition(s); !r.ok())
            return r;
        const dims& d = s.in();
        if (d[0] % 4 != 0)
            return fail(shape_error::channels_not_divisible);
        return returns({make_dims({d[0] / 4, 2 * d[1], 2 * d[2]})});
    }

    template <Scalar S, signature Sig>
    using bind = detail::irevnet_bound<S, Sig.in()[0] / 4, 2 * Sig.in()[1], 2 * Sig.in()[2],
                                       Opt.legacy_backend, /*Down=*/false>;
};

} // namespace inn
