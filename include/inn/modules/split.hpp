#pragma once
// Split (FrEIA): one tensor in, its consecutive sections along one dim out.
//
//   Split<>                                    // two halves of dim 0, the first one larger
//   Split<{.n_sections = 3}>                   // L % 3 sections get one extra element
//   Split<{.section_sizes = {3, 4}}>           // sizes 3, 4 and a slack section L - 7
//   Split<{.section_sizes = {3}, .dim = 1}>    // FrEIA's int form 3: rows [0, 3) and [3, H)
//   Split<SplitOptions{.n_sections = 3}>       // the same form with the type named (clang 14)
//
// `dim` counts without the batch, as in FrEIA. Along dim 0 every section is a column block of a
// row; along a later dim it is a strided gather, done here for any dim as a loop over the outer
// dims. The inverse concatenates, and so does the gradient. No parameters, log-determinant 0.

#include <algorithm>
#include <array>
#include <string_view>

#include "../core/module.hpp"

namespace inn {

struct SplitOptions {
    int section_sizes[max_ports] = {};  // 0-terminated; empty: n_sections equal parts
    int n_sections = 2;                 // used when section_sizes is empty
    int dim = 0;                        // counted without the batch
};

namespace detail {

/// A tensor of shape d cut into pieces along `dim`: `outer` blocks (the dims before `dim`), each
/// holding the pieces' `size[j] * inner` scalars one after another.
template <int N>
struct section_layout {
    index_t outer = 1, inner = 1, length = 0;
    std::array<index_t, std::size_t(N)> size{}, offset{};

    constexpr section_layout(const dims& whole, int dim, const port_list& pieces) {
        for (int d = 0; d < dim; ++d) outer *= whole[d];
        for (int d = dim + 1; d < whole.rank; ++d) inner *= whole[d];
        length = whole[dim];
        index_t at = 0;
        for (int j = 0; j < N; ++j) {
            size[std::size_t(j)] = pieces[j][dim];
            offset[std::size_t(j)] = at;
            at += pieces[j][dim];
        }
    }
};

/// pieces[j] = whole[..., offset_j : offset_j + size_j, ...] for every row.
template <Scalar S, int N>
void split_sections(const section_layout<N>& l, index_t batch, cview<S> whole,
                    const view<S>* pieces) {
    for (index_t b = 0; b < batch; ++b) {
        const S* x = whole.row(b);
        for (index_t o = 0; o < l.outer; ++o) {
            const S* block = x + o * l.length * l.inner;
            for (int j = 0; j < N; ++j) {
                const index_t n = l.size[std::size_t(j)] * l.inner;
                std::copy_n(block + l.offset[std::size_t(j)] * l.inner, n,
                            pieces[j].row(b) + o * n);
            }
        }
    }
}

/// The inverse of split_sections: whole = cat(pieces) along the dim.
template <Scalar S, int N>
void concat_sections(const section_layout<N>& l, index_t batch, const cview<S>* pieces,
                     view<S> whole) {
    for (index_t b = 0; b < batch; ++b) {
        S* y = whole.row(b);
        for (index_t o = 0; o < l.outer; ++o) {
            S* block = y + o * l.length * l.inner;
            for (int j = 0; j < N; ++j) {
                const index_t n = l.size[std::size_t(j)] * l.inner;
                std::copy_n(pieces[j].row(b) + o * n, n,
                            block + l.offset[std::size_t(j)] * l.inner);
            }
        }
    }
}

}  // namespace detail

template <SplitOptions O = SplitOptions{}>
struct Split {
    static constexpr std::string_view name = "Split";
    static constexpr SplitOptions options = O;

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s); !r.ok()) return r;
        if (auto r = expect_no_condition(s); !r.ok()) return r;
        const dims& in = s.in();
        if (O.dim < 0 || O.dim >= in.rank) return fail(shape_error::split_bad_dim, 0, 0, O.dim);
        const int length = in[O.dim];

        int size[max_ports + 1] = {};
        int count = 0;
        if (O.section_sizes[0] == 0) {
            // FrEIA: [L//n + 1] * (L % n) + [L//n] * (n - L % n). Empty sections (n > L) would
            // be zero-extent shapes, which no Shape can hold.
            const int n = O.n_sections;
            if (n < 2 || n > max_ports || n > length) return fail(shape_error::invalid_option);
            for (int j = 0; j < n; ++j) size[count++] = length / n + (j < length % n ? 1 : 0);
        } else {
            int sum = 0;
            bool ended = false;
            for (int j = 0; j < max_ports; ++j) {
                const int v = O.section_sizes[j];
                if (v == 0) {
                    ended = true;
                    continue;
                }
                if (v < 0 || ended) return fail(shape_error::invalid_option);  // {3, 0, 4}
                size[count++] = v;
                sum += v;
            }
            if (sum > length) return fail(shape_error::split_sections_too_large, 0, 0, O.dim);
            if (sum < length) size[count++] = length - sum;  // FrEIA appends the slack section
            if (count > max_ports) return fail(shape_error::invalid_option);
        }
        shape_result r;
        for (int j = 0; j < count; ++j) r.outputs.push(in.with(O.dim, size[j]));
        return r;
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr port_list pieces = output_shapes(Sig).outputs;
        static constexpr int n_out = pieces.count;
        static constexpr detail::section_layout<n_out> layout{Sig.in(), O.dim, pieces};
        // One block per row (nothing before `dim` but ones): the pieces are column blocks.
        static constexpr view_kind view =
            layout.outer == 1 ? view_kind::outputs_in_input : view_kind::none;

        explicit bind(generator&) {}

        void forward(const run_args<S>& a) const {
            detail::split_sections<S, n_out>(layout, a.batch, a.in[0], a.out.data());
        }
        void inverse(const run_args<S>& a) const {
            detail::concat_sections<S, n_out>(layout, a.batch, a.in.data(), a.out[0]);
        }
        /// A copy: the pieces' gradients concatenated back into dL/dx.
        void backward(const backward_args<S>& a) const {
            detail::concat_sections<S, n_out>(layout, a.batch, a.grad_out.data(), a.grad_in[0]);
        }
    };
};

/// Deprecated FrEIA names of Split (FrEIA warns on construction; here they are the same type).
template <SplitOptions O = SplitOptions{}>
using SplitChannel = Split<O>;
template <SplitOptions O = SplitOptions{}>
using Split1D = Split<O>;

}  // namespace inn
