#pragma once
// GraphINN: an arbitrary invertible graph, declared as a list of node types.
//
//   using Net = GraphINN<in1, in2, cond, perm, split1, ..., output1, output2>;
//
// The order of InputNodes, ConditionNodes and OutputNodes in the list is the order of the
// network's tensors (as in FrEIA); the order of the other nodes only breaks ties in execution.

#include <string>
#include <tuple>

#include "../core/type_name.hpp"
#include "diagnostics.hpp"
#include "network.hpp"

namespace inn {

namespace graph {

template <class T, class... All>
constexpr int index_of() {
    int i = 0, found = -1;
    ((std::is_same_v<T, All> ? (found = found < 0 ? i : found, ++i) : ++i), ...);
    return found;
}

template <class List, class... All>
struct connections_of;
template <template <class...> class L, class... C, class... All>
struct connections_of<L<C...>, All...> {
    static constexpr int count = sizeof...(C);
    static constexpr void fill(connection* out) {
        int k = 0;
        ((out[k++] = connection{index_of<typename C::node, All...>(), C::slot}), ...);
    }
};

template <class N, class... All>
constexpr node_info describe() {
    node_info n;
    n.kind = N::kind;
    if constexpr (N::kind == node_kind::input || N::kind == node_kind::condition) n.shape = N::shape;
    using ins = connections_of<typename N::input_connections, All...>;
    using conds = connections_of<typename N::condition_connections, All...>;
    n.n_in = ins::count;
    n.n_cond = conds::count;
    if constexpr (ins::count <= max_ports && conds::count <= max_ports) {
        ins::fill(n.in);
        conds::fill(n.cond);
    }
    if constexpr (N::kind == node_kind::module) n.rule = &N::module::output_shapes;
    return n;
}

template <class... Nodes>
struct graph_description {
    using nodes = std::tuple<Nodes...>;
    static constexpr int size = sizeof...(Nodes);
    static constexpr node_info infos[size] = {describe<Nodes, Nodes...>()...};
    static constexpr graph_plan<size> plan = make_plan(infos);
    static constexpr bool valid = diagnose<plan, Nodes...>();

    static std::string_view node_name(int node) {
        static constexpr std::string_view names[] = {inn::detail::type_name<Nodes>()...};
        return names[node];
    }
    static std::string default_prefix(int module) { return "module_list." + std::to_string(module); }
};

/// Stands in for a network whose plan failed, so one wiring mistake gives one error.
struct invalid_description {
    using nodes = std::tuple<>;
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

template <class... T>
struct node_pack {};

// Flattens node_packs into one list of nodes.
template <class Out, class... In>
struct flatten_nodes;
template <class... Out>
struct flatten_nodes<node_pack<Out...>> {
    using type = graph_description<Out...>;
};
template <class... Out, class... P, class... In>
struct flatten_nodes<node_pack<Out...>, node_pack<P...>, In...> {
    using type = typename flatten_nodes<node_pack<Out...>, P..., In...>::type;
};
template <class... Out, class N, class... In>
struct flatten_nodes<node_pack<Out...>, N, In...> {
    using type = typename flatten_nodes<node_pack<Out..., N>, In...>::type;
};

template <template <int> class Node, class Seq>
struct indexed_nodes;
template <template <int> class Node, std::size_t... K>
struct indexed_nodes<Node, std::index_sequence<K...>> {
    using type = node_pack<Node<int(K)>...>;
};

}  // namespace graph

/// Several nodes where one is expected in a GraphINN's list: `nodes<a, b, c>`.
template <class... Nodes>
using nodes = graph::node_pack<Nodes...>;
/// `Node<0>, ..., Node<N-1>` for a node template indexed by an int: repeated stages of a graph.
template <template <int> class Node, int N>
using repeat_nodes = typename graph::indexed_nodes<Node, std::make_index_sequence<std::size_t(N)>>::type;

/// A graph of nodes in float; `GraphINN<...>::with_scalar<double>` for double precision. The list
/// may contain `nodes<...>` and `repeat_nodes<...>` packs, which are flattened in place.
template <class... Nodes>
using GraphINN =
    network<float, graph::checked_t<typename graph::flatten_nodes<graph::node_pack<>, Nodes...>::type>>;

}  // namespace inn
