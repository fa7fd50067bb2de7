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

#include <tuple>
#include <type_traits>

#include "../core/module.hpp"
#include "../core/shape.hpp"

namespace inn {

enum class node_kind { input, condition, module, output };

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

namespace detail {
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
}  // namespace detail

/// A network input of the given per-sample shape.
template <ShapeType InputShape>
struct InputNode {
    static constexpr node_kind kind = node_kind::input;
    static constexpr dims shape = InputShape::value;
    using input_connections = inputs<>;
    using condition_connections = inputs<>;
};

/// A condition (FrEIA's ConditionNode): fed at run time, usable only as a condition.
template <ShapeType ConditionShape>
struct ConditionNode {
    static constexpr node_kind kind = node_kind::condition;
    static constexpr dims shape = ConditionShape::value;
    using input_connections = inputs<>;
    using condition_connections = inputs<>;
};

/// An invertible module applied to `In` (a node, `out<node, i>` or `inputs<...>`), with optional
/// `conditions<...>`.
template <ModuleSpec Module, class In, class Cond = conditions<>>
struct Node {
    static constexpr node_kind kind = node_kind::module;
    using module = Module;
    using input_connections = typename detail::connection_list<In>::type;
    using condition_connections = typename detail::connection_list<Cond>::type;
};

/// A network output: exactly one connection.
template <class In>
struct OutputNode {
    static constexpr node_kind kind = node_kind::output;
    using input_connections = typename detail::connection_list<In>::type;
    using condition_connections = inputs<>;
};

template <class N>
concept GraphNode = requires {
    { N::kind } -> std::convertible_to<node_kind>;
    typename N::input_connections;
    typename N::condition_connections;
};

}  // namespace inn
