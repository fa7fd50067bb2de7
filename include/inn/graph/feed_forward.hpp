#pragma once
// The module behind a FeedForwardNode (graph/node.hpp): an ordinary network `Layer` (an nn layer
// spec) run on the node's sources, which the planner passes as the conditions of its signature.
// The executor calls its forward in both directions (graph/executor.hpp); it writes the node's
// one output, a condition buffer, and leaves the log-det alone.

#include <algorithm>
#include <string>

#include "../core/module.hpp"
#include "../nn/layer.hpp"

namespace inn::graph {

template <class Layer>
struct feed_forward {
    static constexpr std::string_view name = "FeedForwardNode";

    /// Whether the layer spec states its output shape, which the planner needs (nn layers do).
    static constexpr bool states_output_shape = nn::LayerWithOutputShape<Layer>;

    /// The shape the layer sees: the sources concatenated along the channel dim (dims{} if they
    /// differ elsewhere or there are none).
    static constexpr dims source_shape(const signature& s) {
        if (s.conditions.count == 0) return dims{};
        int channels = 0;
        for (int j = 0; j < s.conditions.count; ++j) {
            if (!same_outside_channels(s.conditions[0], s.conditions[j])) return dims{};
            channels += s.conditions[j].channels();
        }
        return s.conditions[0].with(0, channels);
    }

    /// The shape rule. The error codes are read by graph/diagnostics.hpp, which names the node:
    /// condition_required (no source), condition_spatial_mismatch (sources that cannot be
    /// concatenated, ports 0 and port_b), invalid_option (the layer does not take the input).
    static constexpr shape_result output_shapes(const signature& s) {
        if (s.conditions.count == 0) return fail(shape_error::condition_required);
        for (int j = 1; j < s.conditions.count; ++j)
            if (!same_outside_channels(s.conditions[0], s.conditions[j]))
                return fail(shape_error::condition_spatial_mismatch, 0, j);
        if constexpr (states_output_shape) {
            const dims out = Layer::output_shape(source_shape(s));
            if (out.rank > 0) return returns({out});
        }
        return fail(shape_error::invalid_option);
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr dims in_shape = source_shape(Sig);
        using layer_type = nn::bind_layer<Layer, S, in_shape>;
        // One source is read where it lies; several are first copied side by side.
        static constexpr bool joins = Sig.conditions.count > 1;

        layer_type layer;

        explicit bind(generator& g) : layer(g) {}

        static constexpr index_t scratch_size(pass, index_t batch) {
            return (joins ? in_shape.size() * batch : 0) + nn::layer_scratch<layer_type>(batch);
        }

        void forward(const run_args<S>& a) const {
            cview<S> x = a.cond[0];
            S* scratch = a.scratch;
            if constexpr (joins) {
                for (index_t b = 0; b < a.batch; ++b) {
                    S* row = scratch + b * in_shape.size();
                    for (int j = 0; j < Sig.conditions.count; ++j) {
                        const index_t n = Sig.conditions[j].size();
                        const S* src = a.cond[std::size_t(j)].row(b);
                        row = std::copy(src, src + n, row);
                    }
                }
                x = {scratch, in_shape.size()};
                scratch += in_shape.size() * a.batch;
            }
            layer.forward(x, a.out[0], a.batch, scratch);
        }
        /// The same computation: a FeedForwardNode is evaluated, not inverted.
        void inverse(const run_args<S>& a) const { forward(a); }

        /// The layer's tensors directly under the node's prefix, as in FrEIA's
        /// `module_list.<k>.0.weight` for an nn.Sequential.
        template <class V>
        void visit(V&& v, const std::string& prefix) {
            nn::visit_layer(layer, v, prefix);
        }
    };

  private:
    static constexpr bool same_outside_channels(const dims& a, const dims& b) {
        if (a.rank != b.rank) return false;
        for (int d = 1; d < a.rank; ++d)
            if (a[d] != b[d]) return false;
        return true;
    }
};

}  // namespace inn::graph
