#pragma once
// AffineCouplingOneSided (FrEIA): part 1 passes unchanged and conditions the
// affine map of part 2 through one `subnet` (len1 + cl -> 2*len2, output [s | t]):
//   y = cat(x1, x2 * exp(clamp*g(s)) + t)        reverse x2 = (y2 - t) * exp(-s), LJD -sum(s)

#include <string_view>

#include "../detail/one_sided_affine.hpp"

namespace inn {

template <nn::SubnetConstructor Subnet, CouplingOptions O = CouplingOptions{}>
struct AffineCouplingOneSided {
    static constexpr std::string_view name = "AffineCouplingOneSided";

    static constexpr shape_result output_shapes(const signature& s) { return check_coupling(s, O); }

    template <Scalar S, signature Sig>
    struct bind
        : detail::one_sided_affine<
              detail::coupling_subnet<Subnet, S, detail::coupling_layout<Sig, O>::in1,
                                      2 * detail::coupling_layout<Sig, O>::len2,
                                      AffineCouplingOneSided>,
              O, S, Sig, detail::coupling_layout<Sig, O>::len1> {
        using layout = detail::coupling_layout<Sig, O>;
        using bind::one_sided_affine::one_sided_affine;
    };
};

}  // namespace inn
