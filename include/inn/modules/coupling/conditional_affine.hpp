#pragma once
// ConditionalAffineTransform (FrEIA): an affine map of the whole input whose
// [s | t] come from the conditions alone: a = subnet(cat(c_0, c_1, ...)) (cl -> 2*C),
//   y = exp(clamp*g(a[:C])) * x + a[C:]         reverse x = (y - t) * exp(-s)
// Needs at least one condition (shape_error::condition_required). `split_len` is validated as
// FrEIA does but unused; C = 1 is accepted (nothing is split).

#include <string_view>

#include "../detail/one_sided_affine.hpp"

namespace inn {

template <nn::SubnetConstructor Subnet, CouplingOptions O = CouplingOptions{}>
struct ConditionalAffineTransform {
    static constexpr std::string_view name = "ConditionalAffineTransform";

    static constexpr shape_result output_shapes(const signature& s) {
        shape_result r = check_coupling(s, O, false);
        if (r.ok() && !s.conditional()) return fail(shape_error::condition_required);
        return r;
    }

    // The one-sided affine coupling without a passive part: the subnet reads cat(c...) alone.
    template <Scalar S, signature Sig>
    struct bind
        : detail::one_sided_affine<
              detail::coupling_subnet<Subnet, S,
                                      Sig.in().with(0, Sig.conditions.total_channels()),
                                      2 * Sig.in().channels(), ConditionalAffineTransform>,
              O, S, Sig, 0> {
        using bind::one_sided_affine::one_sided_affine;
    };
};

}  // namespace inn
