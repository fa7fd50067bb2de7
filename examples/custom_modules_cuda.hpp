#pragma once
// The custom modules of custom_modules.hpp on the GPU (inn::cuda::network): a device twin per
// module, attached from outside through inn::space_binding, so the host modules stay as they
// are and this header is only needed where the CUDA backend is used (it includes <inn/cuda.hpp>,
// which needs thrust; compiled by nvcc it runs on the GPU, by g++ on thrust's host system).
//
// A device twin is a struct built from the CUDA context and the host module (its parameters
// uploaded), with `upload` (called again after training), const `forward` / `inverse` on
// `run_args<S, inn::cuda::device>` (device pointers and row strides; a.context is the stream),
// and its element-wise work as named functors with an `INN_HD operator()(index_t)`, launched by
// inn::cuda::for_each_index. Functors hold everything they read as members (device code cannot
// read the host's static data) and are declared at namespace scope, not inside the twin.

#include <inn/cuda.hpp>

#include "custom_modules.hpp"

namespace example {

// The kernels: functors at namespace scope, with only types and scalars as template arguments
// (nvcc's generated kernel stubs cannot name a type nested in a module's `bind`, whose
// signature is a class-type template argument).

/// y[b, i] = x[b, i] * factor[i] (or / factor[i]), one scalar per index.
template <inn::Scalar S> struct scale_columns {
    const S* x;
    inn::index_t ldx;
    S* y;
    inn::index_t ldy;
    const S* factor;
    inn::index_t cols;
    bool divide;
    INN_HD void operator()(inn::index_t k) const {
        const inn::index_t b = k / cols, i = k - b * cols;
        const S v = x[b * ldx + i];
        y[b * ldy + i] = divide ? v / factor[i] : v * factor[i];
    }
};
template <inn::Scalar S> struct add_to_log_det {
    S* ljd;
    S v;
    INN_HD void operator()(inn::index_t b) const { ljd[b] += v; }
};
/// Both outputs of sample b from both inputs, swapped where its condition is not positive.
template <inn::Scalar S> struct swap_where_not_positive {
    const S* x1;
    inn::index_t ld1;
    const S* x2;
    inn::index_t ld2;
    const S* c;
    inn::index_t ldc;
    S* y1;
    inn::index_t ldy1;
    S* y2;
    inn::index_t ldy2;
    inn::index_t n;
    INN_HD void operator()(inn::index_t k) const {
        const inn::index_t b = k / n, i = k - b * n;
        const bool keep = c[b * ldc] > S(0);
        const S a = x1[b * ld1 + i], d = x2[b * ld2 + i]; // both read before writing
        y1[b * ldy1 + i] = keep ? a : d;
        y2[b * ldy2 + i] = keep ? d : a;
    }
};

/// FixedRandomElementwiseMultiply on the device: the factors uploaded once, one pass per call.
template <inn::Scalar S, inn::signature Sig> struct FixedRandomElementwiseMultiplyCuda {
    using host_type = FixedRandomElementwiseMultiply::bind<S, Sig>;
    static constexpr inn::index_t C = host_type::C;

    inn::cuda::device_buffer<S> factor{C};
    S log_det = 0;

    FixedRandomElementwiseMultiplyCuda(const inn::cuda::context& ctx, const host_type& h) {
        upload(ctx, h);
    }
    void upload(const inn::cuda::context& ctx, const host_type& h) {
        inn::cuda::copy_to_device(ctx, h.factor.data(), factor.data(), C);
        log_det = h.log_det;
    }

    void forward(const inn::run_args<S, inn::cuda::device>& a) const { run(a, false); }
    void inverse(const inn::run_args<S, inn::cuda::device>& a) const { run(a, true); }

  private:
    void run(const inn::run_args<S, inn::cuda::device>& a, bool divide) const {
        const inn::cuda::context& ctx = *a.context;
        inn::cuda::for_each_index(ctx, a.batch * C,
                                  scale_columns<S>{a.in[0].data, a.in[0].stride, a.out[0].data,
                                                   a.out[0].stride, factor.data(), C, divide});
        inn::cuda::for_each_index(ctx, a.batch,
                                  add_to_log_det<S>{a.ljd, divide ? -log_det : log_det});
    }
};

/// ConditionalSwap on the device: one pass, each index moving one scalar of both inputs.
template <inn::Scalar S, inn::signature Sig> struct ConditionalSwapCuda {
    using host_type = ConditionalSwap::bind<S, Sig>;
    static constexpr inn::index_t n = host_type::n;

    ConditionalSwapCuda(const inn::cuda::context&, const host_type&) {}
    void upload(const inn::cuda::context&, const host_type&) {}

    void forward(const inn::run_args<S, inn::cuda::device>& a) const {
        inn::cuda::for_each_index(
            *a.context, a.batch * n,
            swap_where_not_positive<S>{a.in[0].data, a.in[0].stride, a.in[1].data, a.in[1].stride,
                                       a.cond[0].data, a.cond[0].stride, a.out[0].data,
                                       a.out[0].stride, a.out[1].data, a.out[1].stride, n});
    }
    void inverse(const inn::run_args<S, inn::cuda::device>& a) const { forward(a); }
};

} // namespace example

// The twins, registered for the device memory space.
namespace inn {
template <> struct space_binding<example::FixedRandomElementwiseMultiply, cuda::device> {
    template <Scalar S, signature Sig>
    using bind = example::FixedRandomElementwiseMultiplyCuda<S, Sig>;
};
template <> struct space_binding<example::ConditionalSwap, cuda::device> {
    template <Scalar S, signature Sig> using bind = example::ConditionalSwapCuda<S, Sig>;
};
} // namespace inn
