#pragma once
// ActNorm on the device (modules/actnorm.hpp): y = (x - loc) / exp(log_scale) per channel, one
// element-wise pass, and the constant log-determinant -n_pix Σ log_scale per sample. Its data
// initialisation stays on the host: inn::cuda::network refuses a host network whose ActNorm
// still awaits its first batch.

#include <vector>

#include "../../../modules/actnorm.hpp"
#include "../buffer.hpp"
#include "../launch.hpp"
#include "../nn.hpp"

namespace inn::cuda {

// Forward (x - loc) / scale, a division as FrEIA's; inverse scale * y + loc. (Kernels' functors
// live at namespace scope, see permute_random.hpp.)
template <Scalar S> struct actnorm_affine {
    const S* in;
    index_t ldi;
    S* out;
    index_t ldo;
    const S* scale;
    const S* loc;
    index_t size, n_pix;
    bool forward;
    INN_HD void operator()(index_t k) const {
        const index_t b = fast_div(k, size), q = k - b * size, c = fast_div(q, n_pix);
        const S v = in[b * ldi + q];
        out[b * ldo + q] = forward ? (v - loc[c]) / scale[c] : scale[c] * v + loc[c];
    }
};
template <Scalar S> struct actnorm_log_det {
    S* ljd;
    S v;
    INN_HD void operator()(index_t b) const { ljd[b] += v; }
};

template <Scalar S, signature Sig> struct actnorm_module {
    using host_type = typename ActNorm::template bind<S, Sig>;
    static constexpr index_t channels = host_type::channels, n_pix = host_type::n_pix,
                             size = host_type::size;

    device_buffer<S> scale{channels}, loc{channels};
    S log_det = 0;

    actnorm_module(const context& ctx, const host_type& h) { upload(ctx, h); }
    void upload(const context& ctx, const host_type& h) {
        // exp(log_scale) and the log-determinant as the host's prepare() computes them.
        const vector<S> sc = h.log_scale.values.array().exp();
        log_det = -h.log_scale.values.sum() * S(n_pix);
        copy_to_device(ctx, sc.data(), scale.data(), channels);
        copy_to_device(ctx, h.loc.data(), loc.data(), channels);
        ctx.synchronize(); // `sc` goes out of scope
    }

    void forward(const run_args<S, device>& a) const { run(a, true); }
    void inverse(const run_args<S, device>& a) const { run(a, false); }

  private:
    void run(const run_args<S, device>& a, bool fwd) const {
        const context& ctx = *a.context;
        for_each_index(ctx, a.batch * size,
                       actnorm_affine<S>{a.in[0].data, a.in[0].stride, a.out[0].data,
                                         a.out[0].stride, scale.data(), loc.data(), size, n_pix,
                                         fwd});
        if (a.jac)
            for_each_index(ctx, a.batch, actnorm_log_det<S>{a.ljd, fwd ? log_det : -log_det});
    }
};

} // namespace inn::cuda

namespace inn {
template <> struct space_binding<ActNorm, cuda::device> {
    template <Scalar S, signature Sig> using bind = cuda::actnorm_module<S, Sig>;
};
} // namespace inn
