#pragma once
// GraphINN: an arbitrary invertible graph, declared as a list of node types.
//
//   using Net = GraphINN<in1, in2, cond, perm, split1, ..., output1, output2>;
//
// The order of InputNodes, ConditionNodes and OutputNodes in the list is the order of the
// network's tensors (as in FrEIA); the order of the other nodes only breaks ties in execution.

#include <string>
#include <type_traits>
#include <utility>

#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>

#include "../core/type_name.hpp"
#include "diagnostics.hpp"
#include "feed_forward.hpp"
#include "network.hpp"

namespace inn {

namespace graph {

namespace hana = boost::hana;

/// Position of node type T in the list All, -1 if absent (a connection to a node missing from
/// the list). A fold, not hana::index_if: it runs once per connection, and index_if's linear
/// recursion added 130 MiB and about 0.3 s to the largest example (docs/compile-cost.md).
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
    if constexpr (runs(N::kind)) n.rule = &N::module::output_shapes;
    return n;
}

template <class... Nodes>
struct graph_description {
    static constexpr auto nodes = hana::tuple_t<Nodes...>;
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

/// Checks the list itself before any planning (which would report a node listed twice as
/// "never used" or "consumed twice", and something that is not a node as a cascade of template
/// errors): every entry a node, none twice. Instantiates the reporter; true if the list is fine.
template <class... Nodes>
constexpr bool diagnose_list() {
    constexpr int n = int(sizeof...(Nodes));
    constexpr bool is_node[] = {GraphNode<Nodes>..., true};
    constexpr int not_node = [&] {
        for (int i = 0; i < n; ++i)
            if (!is_node[i]) return i;
        return -1;
    }();
    if constexpr (not_node >= 0) {
        error::graph_list_holds_something_that_is_not_a_node<nth_t<not_node, Nodes...>>{};
        return false;
    } else {
        // The first entry whose type was listed before it.
        constexpr int first_at[] = {index_of<Nodes, Nodes...>()..., 0};
        constexpr int twice = [&] {
            for (int i = 0; i < n; ++i)
                if (first_at[i] != i) return i;
            return -1;
        }();
        if constexpr (twice >= 0) {
            error::node_listed_twice<nth_t<twice, Nodes...>>{};
            return false;
        }
        return true;
    }
}

template <class... T>
struct node_pack {};

// Flattens node_packs into one list of nodes, in order (packs may nest). Partial
// specialisations, not hana::flatten: on the largest example hana's version cost 50 MiB more
// (docs/compile-cost.md).
template <class Out, class... In>
struct flatten_nodes;
template <class... Out>
struct flatten_nodes<node_pack<Out...>> {
    using type = std::conditional_t<diagnose_list<Out...>(), graph_description<Out...>,
                                    invalid_description>;
};
template <class... Out, class... P, class... In>
struct flatten_nodes<node_pack<Out...>, node_pack<P...>, In...> {
    using type = typename flatten_nodes<node_pack<Out...>, P..., In...>::type;
};
template <class... Out, class N, class... In>
struct flatten_nodes<node_pack<Out...>, N, In...> {
    using type = typename flatten_nodes<node_pack<Out..., N>, In...>::type;
};
template <class... Nodes>
using description_of = typename flatten_nodes<node_pack<>, Nodes...>::type;

template <template <int> class Node, int... K>
node_pack<Node<K>...> indexed_nodes(std::integer_sequence<int, K...>);

}  // namespace graph

/// Several nodes where one is expected in a GraphINN's list: `nodes<a, b, c>`.
template <class... Nodes>
using nodes = graph::node_pack<Nodes...>;
/// `Node<0>, ..., Node<N-1>` for a node template indexed by an int: repeated stages of a graph.
template <template <int> class Node, int N>
using repeat_nodes = decltype(graph::indexed_nodes<Node>(std::make_integer_sequence<int, N>{}));

/// A graph of nodes in float; `GraphINN<...>::with_scalar<double>` for double precision. The list
/// may contain `nodes<...>` and `repeat_nodes<...>` packs, which are flattened in place.
template <class... Nodes>
using GraphINN = graph::network<float, graph::checked_t<graph::description_of<Nodes...>>>;

}  // namespace inn
