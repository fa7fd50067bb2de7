#pragma once
// GINCouplingBlock (FrEIA): GLOW's subnets and data flow (subnet1, subnet2),
// but after clamping s <- s - mean(s over channels), per sample and pixel (not over pixels, as
// AllInOneBlock's gin_block does). Every pixel is volume preserving: LJD 0 in both directions.

#include <string_view>

#include "glow.hpp"

namespace inn {

template <nn::SubnetConstructor Subnet, CouplingOptions O = CouplingOptions{}>
struct GINCouplingBlock {
    static constexpr std::string_view name = "GINCouplingBlock";

    static constexpr shape_result output_shapes(const signature& s) { return check_coupling(s, O); }

    template <Scalar S, signature Sig>
    using bind = detail::glow_coupling<GINCouplingBlock, Subnet, O, true, S, Sig>;
};

}  // namespace inn
