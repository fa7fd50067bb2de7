#pragma once
// Flatten and Reshape (FrEIA): row-major reshapes of each sample, log-determinant 0.
//
//   SequenceINN<Shape<4, 8, 8>, Flatten, Reshape<Shape<8, 32>>, Reshape<Shape<4, 8, 8>>>
//
// A sample is already stored row-major, so both are views: the network gives input and output
// the same memory and skips them (graph/memory_plan.hpp); called, they copy each row.

#include <string_view>

#include "../core/module.hpp"

namespace inn {

namespace detail {

/// Rows of `n` scalars copied as they are: the data of a reshape.
template <Scalar S>
void copy_rows(const run_args<S>& a, index_t n) {
    a.out[0].matrix(a.batch, n) = a.in[0].matrix(a.batch, n);
}

/// The gradient of a reshape: dL/dy copied as it is.
template <Scalar S>
void copy_gradient_rows(const backward_args<S>& a, index_t n) {
    a.grad_in[0].matrix(a.batch, n) = a.grad_out[0].matrix(a.batch, n);
}

}  // namespace detail

/// (C, ...) -> (C * ...,): FrEIA's Flatten.
struct Flatten {
    static constexpr std::string_view name = "Flatten";

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s); !r.ok()) return r;
        if (auto r = expect_no_condition(s); !r.ok()) return r;
        if (s.in().size() > index_t(0x7fffffff)) return fail(shape_error::invalid_option);
        return returns({make_dims({int(s.in().size())})});
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t size = Sig.in().size();
        static constexpr view_kind view = view_kind::outputs_in_input;
        explicit bind(generator&) {}
        void forward(const run_args<S>& a) const { detail::copy_rows(a, size); }
        void inverse(const run_args<S>& a) const { detail::copy_rows(a, size); }
        void backward(const backward_args<S>& a) const { detail::copy_gradient_rows(a, size); }
    };
};

/// Any shape -> `Target` with the same number of elements: FrEIA's Reshape(output_dims=...).
template <ShapeType Target>
struct Reshape {
    static constexpr std::string_view name = "Reshape";
    static constexpr dims target = Target::value;

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s); !r.ok()) return r;
        if (auto r = expect_no_condition(s); !r.ok()) return r;
        if (s.in().size() != target.size()) return fail(shape_error::reshape_size_mismatch);
        return returns({target});
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t size = Sig.in().size();
        static constexpr view_kind view = view_kind::outputs_in_input;
        explicit bind(generator&) {}
        void forward(const run_args<S>& a) const { detail::copy_rows(a, size); }
        void inverse(const run_args<S>& a) const { detail::copy_rows(a, size); }
        void backward(const backward_args<S>& a) const { detail::copy_gradient_rows(a, size); }
    };
};

}  // namespace inn
