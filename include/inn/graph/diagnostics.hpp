#pragma once
// Turns a planner error into a compile error that names the nodes involved.
//
// C++20 static_assert messages must be literals, so the node names travel as template arguments
// of a reporter whose own name says what is wrong; compilers print both, e.g.
//
//   In instantiation of 'struct inn::error::output_consumed_twice<split2, 0, concat2, bad>':
//   error: static assertion failed: inn: an output of a node is consumed twice ...

#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>

#include <boost/hana/at.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>

#include "../core/error_report.hpp"
#include "plan.hpp"

namespace inn::error {

template <class Node, class Missing>
struct node_is_fed_by_a_node_missing_from_the_graph {
    static_assert(check_failed<Node, Missing>,
                  "inn: a node is connected to a node that is not in the network's node list "
                  "(the node and the missing one are named above)");
};
template <class Node, class ConditionSource>
struct condition_node_used_as_an_input {
    static_assert(check_failed<Node, ConditionSource>,
                  "inn: a ConditionNode can only be used as a condition, not as an input");
};
template <class Node, class OutputSource>
struct output_node_used_as_a_source {
    static_assert(check_failed<Node, OutputSource>,
                  "inn: an OutputNode has no outputs and cannot feed another node");
};
template <class Node>
struct output_node_needs_exactly_one_input {
    static_assert(check_failed<Node>, "inn: an OutputNode takes exactly one input");
};
template <class Node>
struct too_many_ports {
    static_assert(check_failed<Node>, "inn: a node has more than 8 inputs, outputs or conditions");
};
template <class Node>
struct graph_has_a_cycle_through {
    static_assert(check_failed<Node>, "inn: the graph has a cycle through this node");
};
template <class Node, class Source, int Slot>
struct node_reads_an_output_that_does_not_exist {
    static_assert(check_failed<Node, Source>,
                  "inn: a node reads output Slot of a node that has fewer outputs");
};
template <class Node, int Slot, class FirstConsumer, class SecondConsumer>
struct output_consumed_twice {
    static_assert(check_failed<Node, FirstConsumer, SecondConsumer>,
                  "inn: an output of a node is consumed twice (node, output slot and both "
                  "consumers are named above); an invertible graph uses each tensor once "
                  "(to reuse one, make it a condition)");
};
template <class Node, int Slot>
struct output_never_consumed {
    static_assert(check_failed<Node>,
                  "inn: an output of a node is never consumed (a loose end): connect it or "
                  "end it in an OutputNode");
};
template <class NotANode>
struct graph_list_holds_something_that_is_not_a_node {
    static_assert(check_failed<NotANode>,
                  "inn: a GraphINN lists nodes (InputNode, ConditionNode, Node<module, ...>, "
                  "OutputNode, FeedForwardNode, or nodes<...> packs of them); the type named "
                  "above is none of these - a module goes into a Node<...>");
};
template <class Node>
struct node_listed_twice {
    static_assert(check_failed<Node>,
                  "inn: a node appears twice in the GraphINN's list; list each node once");
};
template <class Block, int Slot>
struct sequence_block_has_more_than_one_output {
    static_assert(check_failed<Block>,
                  "inn: a SequenceINN block must have exactly one output (the next block reads "
                  "it); a module with several outputs, such as Split, goes into a GraphINN");
};
template <class Node>
struct input_node_used_only_as_a_condition {
    static_assert(check_failed<Node>,
                  "inn: an InputNode is used only as a condition; a tensor that conditions "
                  "nodes and is not transformed is a ConditionNode");
};
template <class Node>
struct input_node_never_used {
    static_assert(check_failed<Node>, "inn: an InputNode is never used");
};
template <class Node>
struct condition_node_never_used {
    static_assert(check_failed<Node>, "inn: a ConditionNode conditions no node");
};
template <class Node>
struct node_cannot_be_inverted_in_order {
    static_assert(check_failed<Node>,
                  "inn: the graph is not invertible: this node is conditioned on a value that "
                  "its own inverse has to produce first");
};
template <class Network = void>
struct graph_has_no_output_node {
    static_assert(check_failed<Network>, "inn: the network has no OutputNode");
};

// ---- FeedForwardNode -------------------------------------------------------------------------

template <class Node, class FeedForwardSource>
struct feed_forward_node_used_as_an_input {
    static_assert(check_failed<Node, FeedForwardSource>,
                  "inn: a FeedForwardNode's output can only be used as a condition, not as an "
                  "input (the node and the FeedForwardNode are named above)");
};
template <class FeedForward>
struct feed_forward_node_never_used {
    static_assert(check_failed<FeedForward>, "inn: a FeedForwardNode conditions no node");
};
template <class FeedForward, class User>
struct feed_forward_node_needs_a_value_computed_after_its_user {
    static_assert(check_failed<FeedForward, User>,
                  "inn: a FeedForwardNode reads a value that is only computed after a node it "
                  "conditions (the FeedForwardNode and that node are named above)");
};
template <class FeedForward, class User>
struct feed_forward_input_known_only_after_its_user_in_the_inverse {
    static_assert(check_failed<FeedForward, User>,
                  "inn: in the inverse direction, a FeedForwardNode's source is only known after "
                  "a node that needs the FeedForwardNode's output (both named above), so the "
                  "network cannot be inverted; read a condition or a tensor that the inverse "
                  "produces earlier");
};
template <class FeedForward>
struct feed_forward_node_has_no_source {
    static_assert(check_failed<FeedForward>,
                  "inn: a FeedForwardNode needs at least one source (conditions<...>)");
};
template <class FeedForward, class FirstSourceShape, class OtherSourceShape>
struct feed_forward_sources_differ_outside_the_channel_dim {
    static_assert(check_failed<FeedForward, FirstSourceShape, OtherSourceShape>,
                  "inn: a FeedForwardNode's sources are concatenated along the channel dim, so "
                  "they must agree in every other dim (the node and both shapes are named above)");
};
template <class FeedForward, class Layer>
struct feed_forward_layer_states_no_output_shape {
    static_assert(check_failed<FeedForward, Layer>,
                  "inn: a FeedForwardNode's layer must state its output shape (a static "
                  "constexpr dims output_shape(dims) on the layer spec, as every inn::nn layer "
                  "has)");
};
template <class FeedForward, class Layer, class SourceShape>
struct feed_forward_layer_does_not_take_its_input {
    static_assert(check_failed<FeedForward, Layer, SourceShape>,
                  "inn: a FeedForwardNode's layer does not take the shape of its sources (node, "
                  "layer and source shape are named above)");
};

// ---- a module rejects the shapes it is given -------------------------------------------------

template <class Node, int Port, int Expected>
struct node_gets_the_wrong_number_of_inputs {
    static_assert(check_failed<Node>,
                  "inn: a node gets a number of inputs its module does not take (Expected)");
};
template <class Node, class InputShape, int MinRank>
struct node_gets_an_input_of_unsupported_rank {
    static_assert(check_failed<Node, InputShape>,
                  "inn: a node's module does not accept the rank of its input shape");
};
template <class Node>
struct node_requires_a_condition {
    static_assert(check_failed<Node>, "inn: this module needs at least one condition");
};
template <class Node>
struct node_does_not_take_conditions {
    static_assert(check_failed<Node>, "inn: this module does not take conditions");
};
template <class Node, int Given, int Takes>
struct node_takes_another_number_of_conditions {
    static_assert(check_failed<Node>,
                  "inn: this module takes a fixed number of conditions: the node named above "
                  "is given the first number, the module takes the second");
};
template <class Node, class InputShape, class ConditionShape>
struct condition_shape_does_not_match_input {
    static_assert(check_failed<Node, InputShape, ConditionShape>,
                  "inn: a condition's non-channel dims differ from the input's (a condition of "
                  "the wrong shape)");
};
template <class Node, class ShapeA, class ShapeB, int Dim>
struct node_concatenates_mismatched_shapes {
    static_assert(check_failed<Node, ShapeA, ShapeB>,
                  "inn: a node concatenates shapes that differ outside the concatenation dim");
};
template <class Node, class InputShape, int Dim>
struct split_sections_do_not_add_up {
    static_assert(check_failed<Node, InputShape>,
                  "inn: Split's section sizes add up to more than the split dimension");
};
template <class Node, class InputShape, int Dim>
struct node_uses_a_dim_outside_its_input {
    static_assert(check_failed<Node, InputShape>, "inn: a node's dim is outside its input's rank");
};
template <class Node, class InputShape>
struct downsampling_of_an_odd_spatial_size {
    static_assert(check_failed<Node, InputShape>,
                  "inn: a node downsamples an odd height or width (both must be even)");
};
template <class Node, class InputShape>
struct upsampling_of_channels_not_divisible_by_4 {
    static_assert(check_failed<Node, InputShape>,
                  "inn: a node upsamples a channel count that is not divisible by 4");
};
template <class Node, class InputShape>
struct reshape_changes_the_number_of_elements {
    static_assert(check_failed<Node, InputShape>,
                  "inn: a Reshape's target shape has a different number of elements");
};
template <class Node, class InputShape>
struct node_has_too_few_channels {
    static_assert(check_failed<Node, InputShape>,
                  "inn: a node's input has too few channels for its module");
};
template <class Node, class InputShape>
struct node_has_an_invalid_option {
    static_assert(check_failed<Node, InputShape>,
                  "inn: a module option is out of range for this input (e.g. split_len)");
};

}  // namespace inn::error

namespace inn::graph {

namespace hana = boost::hana;

// A SequenceINN's blocks (defined in graph/sequence_inn.hpp): a loose end there has no
// OutputNode to cure it.
template <int K, ModuleSpec Spec>
struct sequence_block;
template <class Node>
inline constexpr bool is_sequence_block = false;
template <int K, ModuleSpec Spec>
inline constexpr bool is_sequence_block<sequence_block<K, Spec>> = true;

// Whether a connection list (a node's input_connections or condition_connections) reads Target.
template <class Target, class List>
inline constexpr bool lists_node = false;
template <class Target, template <class...> class L, class... C>
inline constexpr bool lists_node<Target, L<C...>> = (std::is_same_v<typename C::node, Target> ||
                                                     ...);

template <int I, class... T>
using nth_t = typename decltype(+hana::at_c<std::size_t(I)>(hana::tuple_t<T...>))::type;

template <class List, int I>
struct connection_at;
template <template <class...> class L, class... C, int I>
struct connection_at<L<C...>, I> {
    using type = typename nth_t<I, C...>::node;
};

/// The reporter for a FeedForwardNode whose shape rule failed (graph/feed_forward.hpp says
/// which codes it uses).
template <class Node, shape_result R, signature Sig>
constexpr void diagnose_feed_forward() {
    using S = shape_error;
    using Layer = typename Node::layer;
    // Named constants first: class-type template arguments computed in place crash GCC 12.
    constexpr dims first = Sig.conditions[0];
    constexpr dims other = Sig.conditions[R.port_b];
    constexpr dims source = Node::module::source_shape(Sig);
    if constexpr (R.error == S::condition_required) {
        error::feed_forward_node_has_no_source<Node>{};
    } else if constexpr (R.error == S::condition_spatial_mismatch) {
        error::feed_forward_sources_differ_outside_the_channel_dim<Node, shape_of<first>,
                                                                    shape_of<other>>{};
    } else if constexpr (!Node::module::states_output_shape) {
        error::feed_forward_layer_states_no_output_shape<Node, Layer>{};
    } else {
        error::feed_forward_layer_does_not_take_its_input<Node, Layer, shape_of<source>>{};
    }
}

/// Instantiates the reporter for `Plan`'s error, if any; true when the plan is valid.
template <auto& Plan, class... Nodes>
constexpr bool diagnose() {
    using E = graph_error;
    constexpr auto& p = Plan;
    if constexpr (p.ok()) {
        return true;
    } else if constexpr (p.error == E::no_output) {
        error::graph_has_no_output_node<std::tuple<Nodes...>>{};
        return false;
    } else {
        using A = nth_t<(p.node_a < 0 ? 0 : p.node_a), Nodes...>;
        using B = nth_t<(p.node_b < 0 ? 0 : p.node_b), Nodes...>;
        using C = nth_t<(p.node_c < 0 ? 0 : p.node_c), Nodes...>;
        if constexpr (p.error == E::too_many_ports) {
            error::too_many_ports<A>{};
        } else if constexpr (p.error == E::source_not_in_graph) {
            using list = std::conditional_t<p.slot == 0, typename A::input_connections,
                                            typename A::condition_connections>;
            error::node_is_fed_by_a_node_missing_from_the_graph<
                A, typename connection_at<list, p.port>::type>{};
        } else if constexpr (p.error == E::condition_node_as_input) {
            error::condition_node_used_as_an_input<A, B>{};
        } else if constexpr (p.error == E::output_node_as_source) {
            error::output_node_used_as_a_source<A, B>{};
        } else if constexpr (p.error == E::output_node_arity) {
            error::output_node_needs_exactly_one_input<A>{};
        } else if constexpr (p.error == E::cycle) {
            error::graph_has_a_cycle_through<A>{};
        } else if constexpr (p.error == E::slot_out_of_range) {
            error::node_reads_an_output_that_does_not_exist<A, B, p.slot>{};
        } else if constexpr (p.error == E::consumed_twice) {
            error::output_consumed_twice<A, p.slot, B, C>{};
        } else if constexpr (p.error == E::loose_end && is_sequence_block<A>) {
            error::sequence_block_has_more_than_one_output<A, p.slot>{};
        } else if constexpr (p.error == E::loose_end) {
            error::output_never_consumed<A, p.slot>{};
        } else if constexpr (p.error == E::input_unused &&
                             (lists_node<A, typename Nodes::condition_connections> || ...)) {
            error::input_node_used_only_as_a_condition<A>{};
        } else if constexpr (p.error == E::input_unused) {
            error::input_node_never_used<A>{};
        } else if constexpr (p.error == E::condition_unused) {
            error::condition_node_never_used<A>{};
        } else if constexpr (p.error == E::not_invertible) {
            error::node_cannot_be_inverted_in_order<A>{};
        } else if constexpr (p.error == E::feed_forward_as_input) {
            error::feed_forward_node_used_as_an_input<A, B>{};
        } else if constexpr (p.error == E::feed_forward_unused) {
            error::feed_forward_node_never_used<A>{};
        } else if constexpr (p.error == E::feed_forward_needs_its_user) {
            error::feed_forward_node_needs_a_value_computed_after_its_user<A, B>{};
        } else if constexpr (p.error == E::feed_forward_after_its_user) {
            error::feed_forward_input_known_only_after_its_user_in_the_inverse<A, B>{};
        } else if constexpr (p.error == E::module_rejects_shapes &&
                             A::kind == node_kind::feed_forward) {
            diagnose_feed_forward<A, p.shape, p.sig[p.node_a]>();
        } else if constexpr (p.error == E::module_rejects_shapes) {
            using S = shape_error;
            constexpr shape_result r = p.shape;
            constexpr signature sig = p.sig[p.node_a];
            using In = shape_of<sig.inputs.count ? sig.inputs[r.port_a] : dims{1, {1}}>;
            if constexpr (r.error == S::wrong_input_count) {
                error::node_gets_the_wrong_number_of_inputs<A, sig.inputs.count, r.expected>{};
            } else if constexpr (r.error == S::wrong_rank) {
                error::node_gets_an_input_of_unsupported_rank<A, In, r.expected>{};
            } else if constexpr ((r.error == S::condition_required ||
                                  r.error == S::condition_not_accepted) &&
                                 r.expected > 0) {
                // a module with a fixed count (GaussianMixtureModel: w, mu, U, i)
                error::node_takes_another_number_of_conditions<A, sig.conditions.count,
                                                               r.expected>{};
            } else if constexpr (r.error == S::condition_required) {
                error::node_requires_a_condition<A>{};
            } else if constexpr (r.error == S::condition_not_accepted) {
                error::node_does_not_take_conditions<A>{};
            } else if constexpr (r.error == S::condition_spatial_mismatch) {
                error::condition_shape_does_not_match_input<
                    A, In, shape_of<sig.conditions[r.port_b]>>{};
            } else if constexpr (r.error == S::concat_mismatch) {
                error::node_concatenates_mismatched_shapes<
                    A, In, shape_of<sig.inputs[r.port_b]>, r.dim>{};
            } else if constexpr (r.error == S::split_sections_too_large) {
                error::split_sections_do_not_add_up<A, In, r.dim>{};
            } else if constexpr (r.error == S::split_bad_dim) {
                error::node_uses_a_dim_outside_its_input<A, In, r.dim>{};
            } else if constexpr (r.error == S::odd_spatial_size) {
                error::downsampling_of_an_odd_spatial_size<A, In>{};
            } else if constexpr (r.error == S::channels_not_divisible) {
                error::upsampling_of_channels_not_divisible_by_4<A, In>{};
            } else if constexpr (r.error == S::reshape_size_mismatch) {
                error::reshape_changes_the_number_of_elements<A, In>{};
            } else if constexpr (r.error == S::too_few_channels) {
                error::node_has_too_few_channels<A, In>{};
            } else {
                error::node_has_an_invalid_option<A, In>{};
            }
        }
        return false;
    }
}

/// Stands in for a network whose plan failed, so one wiring mistake gives one error.
struct invalid_description {
    static constexpr bool valid = false;
    static constexpr auto nodes = hana::tuple_t<>;
    static constexpr graph_plan<1> plan = [] {
        graph_plan<1> p;
        p.n_edges = 0;
        return p;
    }();
    static std::string_view node_name(int) { return {}; }
    static std::string default_prefix(int) { return {}; }
};

template <class D>
using checked_t = std::conditional_t<D::valid, D, invalid_description>;

}  // namespace inn::graph
