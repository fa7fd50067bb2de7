#pragma once
// The 2x2 "space-to-depth" geometry shared by HaarDownsampling/HaarUpsampling and
// IRevNetDownsampling/IRevNetUpsampling: a high-resolution sample (C, H, W) and its
// low-resolution form (4C, H/2, W/2), where the four values k = 0..3 of channel c's 2x2 patch
// at (2i, 2j) go to low-resolution channel 4c + k (default) or k*C + c (channel-major: Haar's
// `order_by_wavelet`, i-RevNet's legacy backend), position (i, j). Haar stores four wavelet
// components there, i-RevNet the four pixels themselves; both run the same index map.

#include <array>

#include "../../core/signature.hpp"

namespace inn::detail {

/// (C, H, W) -> (4C, H/2, W/2): one rank-3 input, no condition, `options_ok` (the module's own
/// option checks, reported after the port checks), H and W even.
constexpr shape_result space_to_depth_shapes(const signature& s, bool options_ok = true) {
    if (auto r = expect_single_input(s, 3, 3); !r.ok())
        return r;
    if (auto r = expect_no_condition(s); !r.ok())
        return r;
    if (!options_ok)
        return fail(shape_error::invalid_option);
    const dims& d = s.in();
    if (d[1] % 2 != 0 || d[2] % 2 != 0)
        return fail(shape_error::odd_spatial_size);
    return returns({make_dims({4 * d[0], d[1] / 2, d[2] / 2})});
}

/// The high-resolution shape (C/4, 2H, 2W) behind a low-resolution one (C, H, W).
constexpr dims high_resolution(const dims& low) {
    return make_dims({low[0] / 4, 2 * low[1], 2 * low[2]});
}

/// (C, H, W) -> (C/4, 2H, 2W), the reverse map: C must be divisible by 4.
constexpr shape_result depth_to_space_shapes(const signature& s, bool options_ok = true) {
    if (auto r = expect_single_input(s, 3, 3); !r.ok())
        return r;
    if (auto r = expect_no_condition(s); !r.ok())
        return r;
    if (!options_ok)
        return fail(shape_error::invalid_option);
    if (s.in()[0] % 4 != 0)
        return fail(shape_error::channels_not_divisible);
    return returns({high_resolution(s.in())});
}

/// The index map between a high-resolution sample `High` = (C, H, W) and its low-resolution
/// form. The modules of both directions are bound by their high-resolution side.
template <dims High, bool ChannelMajor> struct space_to_depth {
    static constexpr index_t C = High[0], H = High[1], W = High[2];
    static constexpr index_t H2 = H / 2, W2 = W / 2, P2 = H2 * W2;
    static constexpr index_t size = C * H * W; // scalars per sample, the same on both sides

    /// The low-resolution channel of value k of channel c's patches.
    static constexpr index_t channel(index_t c, index_t k) {
        return ChannelMajor ? k * C + c : 4 * c + k;
    }

    /// Calls f(hi, lo) for every 2x2 patch: hi[k] is the offset in the high-resolution sample of
    /// the patch's pixel k = 2 dy + dx, lo[k] the offset in the low-resolution sample of its
    /// k-th value.
    template <class F> static void for_each_patch(F&& f) {
        for (index_t c = 0; c < C; ++c) {
            const std::array<index_t, 4> plane{channel(c, 0) * P2, channel(c, 1) * P2,
                                               channel(c, 2) * P2, channel(c, 3) * P2};
            for (index_t i = 0; i < H2; ++i)
                for (index_t j = 0; j < W2; ++j) {
                    const index_t h = c * H * W + 2 * i * W + 2 * j, l = i * W2 + j;
                    const std::array<index_t, 4> hi{h, h + 1, h + W, h + W + 1};
                    const std::array<index_t, 4> lo{plane[0] + l, plane[1] + l, plane[2] + l,
                                                    plane[3] + l};
                    f(hi, lo);
                }
        }
    }
};

} // namespace inn::detail
