#pragma once
// What a module is given at "construction" (FrEIA: dims_in, dims_c) and what its shape rule
// returns. Everything here is a constexpr value, so the graph planner can infer all shapes with
// ordinary loops and a module can be instantiated for exactly its signature.

#include "shape.hpp"

namespace inn {

inline constexpr int max_ports = 8;  // inputs, outputs or conditions of one node

/// An ordered list of shapes: a node's inputs, outputs or conditions.
struct port_list {
    int count = 0;
    dims shape[max_ports] = {};

    constexpr const dims& operator[](int i) const { return shape[i]; }
    constexpr void push(const dims& d) { shape[count++] = d; }
    /// Sum of the channel counts (FrEIA's `condition_length`).
    constexpr int total_channels() const {
        int n = 0;
        for (int i = 0; i < count; ++i) n += shape[i].channels();
        return n;
    }
    friend constexpr bool operator==(const port_list&, const port_list&) = default;
};

constexpr port_list make_ports(std::initializer_list<dims> l) {
    port_list p;
    for (const dims& d : l) p.push(d);
    return p;
}

/// The shapes a module is built for: FrEIA's (dims_in, dims_c).
struct signature {
    port_list inputs;
    port_list conditions;

    constexpr const dims& in(int i = 0) const { return inputs[i]; }
    constexpr bool conditional() const { return conditions.count > 0; }
    friend constexpr bool operator==(const signature&, const signature&) = default;
};

/// Why a module rejects a signature. The graph turns a non-`none` code into a static_assert
/// that names the node (see graph/diagnostics.hpp).
enum class shape_error {
    none,
    wrong_input_count,            // e.g. Concat with one input, a coupling with two
    wrong_rank,                   // `expected` holds the required rank
    condition_required,           // ConditionalAffineTransform without a condition
    condition_not_accepted,       // PermuteRandom, Split, ... given a condition
    condition_spatial_mismatch,   // condition's spatial dims differ from the input's
    concat_mismatch,              // inputs differ outside the concatenation dim
    split_sections_too_large,     // section sizes add up to more than the dimension
    split_bad_dim,                // dim outside the input's rank
    odd_spatial_size,             // down-sampling of an odd height or width
    channels_not_divisible,       // up-sampling of a channel count not divisible by 4
    reshape_size_mismatch,        // Reshape to a different element count
    too_few_channels,             // a coupling of a single channel, a soft permutation of one
    invalid_option,               // an option value the module rejects (e.g. split_len > 1)
};

/// A module's answer to a signature: the output shapes, or an error with the ports involved.
struct shape_result {
    port_list outputs;
    shape_error error = shape_error::none;
    int port_a = 0, port_b = 0;  // offending input (or condition) ports
    int dim = 0;                 // offending dimension, or an expected value
    int expected = 0;

    constexpr bool ok() const { return error == shape_error::none; }
};

constexpr shape_result fail(shape_error e, int port_a = 0, int port_b = 0, int dim = 0,
                            int expected = 0) {
    shape_result r;
    r.error = e;
    r.port_a = port_a;
    r.port_b = port_b;
    r.dim = dim;
    r.expected = expected;
    return r;
}

constexpr shape_result returns(std::initializer_list<dims> l) {
    shape_result r;
    r.outputs = make_ports(l);
    return r;
}

/// Common checks of single-input modules; return a failed result or ok().
constexpr shape_result expect_single_input(const signature& s, int min_rank = 1,
                                           int max_rank_ = max_rank) {
    if (s.inputs.count != 1) return fail(shape_error::wrong_input_count, 0, 0, 0, 1);
    if (s.in().rank < min_rank || s.in().rank > max_rank_)
        return fail(shape_error::wrong_rank, 0, 0, 0, min_rank);
    return {};
}

constexpr shape_result expect_no_condition(const signature& s) {
    if (s.conditions.count != 0) return fail(shape_error::condition_not_accepted);
    return {};
}

/// Coupling blocks: every condition must share the input's non-channel dims (FrEIA asserts).
constexpr shape_result expect_conditions_match_spatial(const signature& s, int first = 0,
                                                       int last = max_ports) {
    for (int j = first; j < s.conditions.count && j < last; ++j) {
        const dims& c = s.conditions[j];
        bool same = c.rank == s.in().rank;
        for (int d = 1; same && d < c.rank; ++d) same = c[d] == s.in()[d];
        if (!same) return fail(shape_error::condition_spatial_mismatch, 0, j);
    }
    return {};
}

}  // namespace inn
