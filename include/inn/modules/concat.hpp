#pragma once
// Concat (FrEIA): two or more tensors in, their concatenation along one dim out.
//
//   struct cat : Node<Concat<>, inputs<out<split, 1>, a>> {};          // along channels
//   struct cat_h : Node<Concat<{.dim = 1}>, inputs<top, bottom>> {};   // along the height
//   Concat<ConcatOptions{.dim = 1}>    // the same form with the type named (clang 14)
//
// The inputs must have equal rank and equal sizes outside `dim` (counted without the batch); a
// mismatch is a compile error naming the node. The inverse splits back into the input sizes. No
// parameters, log-determinant 0.

#include <string_view>

#include "../core/module.hpp"
#include "split.hpp"  // detail::section_layout and the copy loops, shared with Split

namespace inn {

struct ConcatOptions {
    int dim = 0;  // counted without the batch
};

template <ConcatOptions O = ConcatOptions{}>
struct Concat {
    static constexpr std::string_view name = "Concat";
    static constexpr ConcatOptions options = O;

    static constexpr shape_result output_shapes(const signature& s) {
        if (s.inputs.count < 2) return fail(shape_error::wrong_input_count, 0, 0, 0, 2);
        if (auto r = expect_no_condition(s); !r.ok()) return r;
        const dims& first = s.in(0);
        if (O.dim < 0 || O.dim >= first.rank) return fail(shape_error::split_bad_dim, 0, 0, O.dim);
        int length = 0;
        for (int i = 0; i < s.inputs.count; ++i) {
            const dims& d = s.in(i);
            // Ports 0 and i disagree; `dim` is the first dimension where they do (for ranks
            // that differ: the first dimension one of them lacks).
            if (d.rank != first.rank)
                return fail(shape_error::concat_mismatch, 0, i,
                            d.rank < first.rank ? d.rank : first.rank);
            for (int k = 0; k < d.rank; ++k)
                if (k != O.dim && d[k] != first[k])
                    return fail(shape_error::concat_mismatch, 0, i, k);
            length += d[O.dim];
        }
        return returns({first.with(O.dim, length)});
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr int n_in = Sig.inputs.count;
        static constexpr detail::section_layout<n_in> layout{
            output_shapes(Sig).outputs[0], O.dim, Sig.inputs};
        static constexpr view_kind view =
            layout.outer == 1 ? view_kind::inputs_in_output : view_kind::none;

        explicit bind(generator&) {}

        void forward(const run_args<S>& a) const {
            detail::concat_sections<S, n_in>(layout, a.batch, a.in.data(), a.out[0]);
        }
        void inverse(const run_args<S>& a) const {
            detail::split_sections<S, n_in>(layout, a.batch, a.in[0], a.out.data());
        }
        /// A copy: dL/dy split back into the inputs' gradients.
        void backward(const backward_args<S>& a) const {
            detail::split_sections<S, n_in>(layout, a.batch, a.grad_out[0], a.grad_in.data());
        }
    };
};

/// Deprecated FrEIA names of Concat (FrEIA warns on construction; here they are the same type).
template <ConcatOptions O = ConcatOptions{}>
using ConcatChannel = Concat<O>;
template <ConcatOptions O = ConcatOptions{}>
using Concat1d = Concat<O>;

}  // namespace inn
