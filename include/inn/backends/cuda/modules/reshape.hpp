#pragma once
// The modules that only move data, on the device: Flatten, Reshape, Split, Concat. They declare
// the same views as on the host, so the plan usually skips them; where it cannot, they copy.

#include "../../../modules/concat.hpp"
#include "../../../modules/reshape.hpp"
#include "../../../modules/split.hpp"
#include "../buffer.hpp"
#include "../launch.hpp"
#include "../nn.hpp"

namespace inn::cuda {

/// Flatten and Reshape: each row copied as it is.
template <class Host, Scalar S> struct row_copy {
    using host_type = Host;
    static constexpr index_t size = Host::size;
    static constexpr view_kind view = view_kind::outputs_in_input;

    row_copy(const context&, const host_type&) {}
    void upload(const context&, const host_type&) {}
    void forward(const run_args<S, device>& a) const { run(a); }
    void inverse(const run_args<S, device>& a) const { run(a); }

  private:
    static void run(const run_args<S, device>& a) {
        copy_rows(*a.context, copy_kind::device_to_device, a.in[0].data, a.in[0].stride,
                  a.out[0].data, a.out[0].stride, a.batch, size);
    }
};

// Moves the block of one piece between the whole and the piece (a functor of the scalar only:
// see all_in_one_block.hpp). Block o of sample b: whole + b * ld + o * block + at <-> piece +
// b * ld + o * n.
template <Scalar S> struct section_move {
    const S* src;
    index_t lds;
    S* dst;
    index_t ldd;
    index_t n, at;
    index_t outer, block; // blocks per sample, scalars per block of the whole
    bool from_whole;
    INN_HD void operator()(index_t k) const {
        const index_t per_sample = outer * n;
        const index_t b = fast_div(k, per_sample), r = k - b * per_sample;
        const index_t o = fast_div(r, n), i = r - o * n;
        const index_t w = o * block + at + i, p = o * n + i;
        if (from_whole)
            dst[b * ldd + p] = src[b * lds + w];
        else
            dst[b * ldd + w] = src[b * lds + p];
    }
};

/// Split (forward) and Concat (inverse) of one whole into N pieces along a dim, per
/// detail::section_layout; `ToPieces` says which way the data goes.
template <Scalar S, int N, class Host> struct sections {
    // The bound host module as a type, not its layout as a reference template argument: nvcc's
    // regenerated host code turns that reference into a pointer g++ then rejects.
    static constexpr const auto& Layout = Host::layout;

    template <bool ToPieces>
    static void run(const context& ctx, index_t batch, dcview<S> whole_in, dview<S> whole_out,
                    const dcview<S>* pieces_in, const dview<S>* pieces_out) {
        for (int j = 0; j < N; ++j) {
            const index_t n = Layout.size[std::size_t(j)] * Layout.inner;
            const index_t rows = batch * Layout.outer;
            const index_t at = Layout.offset[std::size_t(j)] * Layout.inner;
            if constexpr (ToPieces)
                for_each_index(ctx, rows * n,
                               section_move<S>{whole_in.data, whole_in.stride, pieces_out[j].data,
                                               pieces_out[j].stride, n, at, Layout.outer,
                                               Layout.length * Layout.inner, true});
            else
                for_each_index(ctx, rows * n,
                               section_move<S>{pieces_in[j].data, pieces_in[j].stride,
                                               whole_out.data, whole_out.stride, n, at,
                                               Layout.outer, Layout.length * Layout.inner, false});
        }
    }
};

template <SplitOptions O, Scalar S, signature Sig> struct split_module {
    using host_type = typename Split<O>::template bind<S, Sig>;
    static constexpr int n_out = host_type::n_out;
    static constexpr view_kind view = host_type::view;
    using move = sections<S, n_out, host_type>;

    split_module(const context&, const host_type&) {}
    void upload(const context&, const host_type&) {}
    void forward(const run_args<S, device>& a) const {
        move::template run<true>(*a.context, a.batch, a.in[0], {}, nullptr, a.out.data());
    }
    void inverse(const run_args<S, device>& a) const {
        move::template run<false>(*a.context, a.batch, {}, a.out[0], a.in.data(), nullptr);
    }
};

template <ConcatOptions O, Scalar S, signature Sig> struct concat_module {
    using host_type = typename Concat<O>::template bind<S, Sig>;
    static constexpr int n_in = host_type::n_in;
    static constexpr view_kind view = host_type::view;
    using move = sections<S, n_in, host_type>;

    concat_module(const context&, const host_type&) {}
    void upload(const context&, const host_type&) {}
    void forward(const run_args<S, device>& a) const {
        move::template run<false>(*a.context, a.batch, {}, a.out[0], a.in.data(), nullptr);
    }
    void inverse(const run_args<S, device>& a) const {
        move::template run<true>(*a.context, a.batch, a.in[0], {}, nullptr, a.out.data());
    }
};

} // namespace inn::cuda

namespace inn {
template <> struct space_binding<Flatten, cuda::device> {
    template <Scalar S, signature Sig>
    using bind = cuda::row_copy<typename Flatten::template bind<S, Sig>, S>;
};
template <ShapeType Target> struct space_binding<Reshape<Target>, cuda::device> {
    template <Scalar S, signature Sig>
    using bind = cuda::row_copy<typename Reshape<Target>::template bind<S, Sig>, S>;
};
template <SplitOptions O> struct space_binding<Split<O>, cuda::device> {
    template <Scalar S, signature Sig> using bind = cuda::split_module<O, S, Sig>;
};
template <ConcatOptions O> struct space_binding<Concat<O>, cuda::device> {
    template <Scalar S, signature Sig> using bind = cuda::concat_module<O, S, Sig>;
};
} // namespace inn
