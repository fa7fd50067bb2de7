#pragma once
// The graph DSL: nodes are types, and the name of the struct a user derives is the node's name.
//
//   struct in1    : InputNode<Shape<100>> {};
//   struct cond   : ConditionNode<Shape<42>> {};
//   struct split1 : Node<Split<>, in1> {};
//   struct affine : Node<AffineCouplingOneSided<subnet>, out<split1, 1>, conditions<cond>> {};
//   struct output : OutputNode<affine> {};
//
// A connection is `out<node, slot>`; a bare node means its output 0 (FrEIA's `node` vs
// `node.out1`); several inputs are listed with `inputs<...>`, conditions with `conditions<...>`.
// A FeedForwardNode computes a condition through an ordinary (non-invertible) network:
//
//   struct feat : FeedForwardNode<nn::Sequential<nn::Linear<42, 32>, nn::ReLU, nn::Linear<32, 8>>,
//                                 conditions<cond>> {};
//   struct affine : Node<AffineCouplingOneSided<subnet>, out<split1, 1>, conditions<feat>> {};
//
// The node types and the connection lists are public (namespace inn); what the containers make
// of them (inn::graph) is not.

#include <tuple>
#include <type_traits>

#include "../core/module.hpp"
#include "../core/shape.hpp"

namespace inn {

namespace graph {
enum class node_kind { input, condition, module, feed_forward, output };
/// The module spec of a FeedForwardNode: runs `Layer` on its sources (graph/feed_forward.hpp).
template <class Layer>
struct feed_forward;
}  // namespace graph

/// Output `Slot` of node `N` (FrEIA's `N.out<Slot>`).
template <class N, int Slot = 0>
struct out {
    using node = N;
    static constexpr int slot = Slot;
};

/// The inputs of a node, in order: `Node<Concat<>, inputs<a, out<b, 1>>>`.
/// At run time the same name bundles a network's input tensors: `net.forward(inputs(x1, x2))`.
template <class... T>
struct inputs {
    std::tuple<const T&...> items;
    constexpr explicit inputs(const T&... t) : items(t...) {}
};
template <class... T>
inputs(const T&...) -> inputs<T...>;

/// The conditions of a node, in order (FrEIA's `conditions=[...]`); at run time, a network's
/// condition tensors: `net.forward(x, conditions(c))`.
template <class... T>
struct conditions {
    std::tuple<const T&...> items;
    constexpr explicit conditions(const T&... t) : items(t...) {}
};
template <class... T>
conditions(const T&...) -> conditions<T...>;

namespace graph {
template <class C>
struct as_connection {
    using type = out<C, 0>;
};
template <class N, int S>
struct as_connection<out<N, S>> {
    using type = out<N, S>;
};

template <class T>
struct connection_list {
    using type = inputs<typename as_connection<T>::type>;
};
template <class... C>
struct connection_list<inputs<C...>> {
    using type = inputs<typename as_connection<C>::type...>;
};
template <class... C>
struct connection_list<conditions<C...>> {
    using type = inputs<typename as_connection<C>::type...>;
};
}  // namespace graph

/// A network input of the given per-sample shape.
template <ShapeType InputShape>
struct InputNode {
    static constexpr graph::node_kind kind = graph::node_kind::input;
    static constexpr dims shape = InputShape::value;
    using input_connections = inputs<>;
    using condition_connections = inputs<>;
};

/// A condition (FrEIA's ConditionNode): fed at run time, usable only as a condition.
template <ShapeType ConditionShape>
struct ConditionNode {
    static constexpr graph::node_kind kind = graph::node_kind::condition;
    static constexpr dims shape = ConditionShape::value;
    using input_connections = inputs<>;
    using condition_connections = inputs<>;
};

/// An invertible module applied to `In` (a node, `out<node, i>` or `inputs<...>`), with optional
/// `conditions<...>`.
template <ModuleSpec Module, class In, class Cond = conditions<>>
struct Node {
    static constexpr graph::node_kind kind = graph::node_kind::module;
    using module = Module;
    using input_connections = typename graph::connection_list<In>::type;
    using condition_connections = typename graph::connection_list<Cond>::type;
};

/// FrEIA's FeedForwardNode: a non-invertible helper that computes a new *condition* from its
/// `Sources` (a node, `out<node, i>` or `conditions<...>`: ConditionNodes, other
/// FeedForwardNodes or any tensor of the graph) through an ordinary network `Layer`, an `nn`
/// layer spec such as `nn::Sequential<nn::Linear<10, 32>, nn::ReLU, nn::Linear<32, 8>>`. Several
/// sources are concatenated along the channel dim first. The output shape is the layer's
/// (FrEIA's `output_dims`, inferred here). It runs in both directions, wherever its sources are
/// known, contributes no log-det, and takes a `module_list` index like any node with a module;
/// its output can only be used as a condition.
template <class Layer, class Sources>
struct FeedForwardNode {
    static constexpr graph::node_kind kind = graph::node_kind::feed_forward;
    using layer = Layer;
    using module = graph::feed_forward<Layer>;
    using input_connections = inputs<>;
    using condition_connections = typename graph::connection_list<Sources>::type;
};

/// A network output: exactly one connection.
template <class In>
struct OutputNode {
    static constexpr graph::node_kind kind = graph::node_kind::output;
    using input_connections = typename graph::connection_list<In>::type;
    using condition_connections = inputs<>;
};

namespace graph {
template <class N>
concept GraphNode = requires {
    { N::kind } -> std::convertible_to<node_kind>;
    typename N::input_connections;
    typename N::condition_connections;
};
}  // namespace graph

}  // namespace inn
