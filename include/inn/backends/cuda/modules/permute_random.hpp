#pragma once
// PermuteRandom on the device: y[:, i] = x[:, perm[i]] (per pixel) as one gather pass.

#include <vector>

#include "../../../modules/permute_random.hpp"
#include "../buffer.hpp"
#include "../launch.hpp"
#include "../nn.hpp"

namespace inn::cuda {

// y[b, i * n_pix + p] = x[b, idx[i] * n_pix + p] (a functor of the scalar only: see
// all_in_one_block.hpp).
template <Scalar S> struct channel_gather {
    const S* x;
    index_t ldx;
    S* y;
    index_t ldy;
    const index_t* idx;
    index_t size, n_pix;
    INN_HD void operator()(index_t k) const {
        const index_t b = fast_div(k, size), q = k - b * size, i = fast_div(q, n_pix);
        y[b * ldy + q] = x[b * ldx + idx[i] * n_pix + (q - i * n_pix)];
    }
};

template <PermuteRandomOptions O, Scalar S, signature Sig> struct permute_random {
    using host_type = typename PermuteRandom<O>::template bind<S, Sig>;
    static constexpr index_t channels = host_type::channels, n_pix = host_type::n_pix,
                             size = host_type::size;

    device_buffer<index_t> perm{channels}, perm_inv{channels};

    permute_random(const context& ctx, const host_type& h) { upload(ctx, h); }
    void upload(const context& ctx, const host_type& h) {
        std::vector<index_t> p(static_cast<std::size_t>(channels)), pi(p.size());
        for (index_t i = 0; i < channels; ++i) {
            p[std::size_t(i)] = index_t(h.perm.values[std::size_t(i)]);
            pi[std::size_t(i)] = index_t(h.perm_inv.values[std::size_t(i)]);
        }
        copy_to_device(ctx, p.data(), perm.data(), channels);
        copy_to_device(ctx, pi.data(), perm_inv.data(), channels);
        ctx.synchronize();
    }

    void forward(const run_args<S, device>& a) const { run(a, perm.data()); }
    void inverse(const run_args<S, device>& a) const { run(a, perm_inv.data()); }

  private:
    static void run(const run_args<S, device>& a, const index_t* idx) {
        for_each_index(*a.context, a.batch * size,
                       channel_gather<S>{a.in[0].data, a.in[0].stride, a.out[0].data,
                                         a.out[0].stride, idx, size, n_pix});
    }
};

} // namespace inn::cuda

namespace inn {
template <PermuteRandomOptions O> struct space_binding<PermuteRandom<O>, cuda::device> {
    template <Scalar S, signature Sig> using bind = cuda::permute_random<O, S, Sig>;
};
} // namespace inn
