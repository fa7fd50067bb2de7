#pragma once
// SequenceINN: a chain of single-input, single-output blocks (FrEIA's SequenceINN).
//
//   using Net = SequenceINN<Shape<2>, Repeat<8, AllInOneBlock<subnet, {.permute_soft = true}>>>;
//   using cINN = SequenceINN<Shape<784>, Conditions<Shape<10>>,
//                            Repeat<12, Conditioned<AllInOneBlock<subnet>, 0>>>;
//
// A chain is planned by the same planner as a graph, so shapes, checks and execution are shared.

#include <array>
#include <string>
#include <tuple>

#include "../core/type_name.hpp"
#include "diagnostics.hpp"
#include "graph_inn.hpp"  // graph::checked_t
#include "network.hpp"

namespace inn {

/// `N` copies of the blocks, in order (FrEIA: a loop of `append` calls).
template <int N, class... Blocks>
struct Repeat {
    static_assert(N >= 0, "inn: Repeat count must be non-negative");
};
/// A block that reads condition `Index` of the network (FrEIA: `append(..., cond=Index)`).
template <class Block, int Index = 0>
struct Conditioned {};
/// The shapes of a SequenceINN's conditions, in index order.
template <ShapeType... Shapes>
struct Conditions {};

namespace graph {

template <class... T>
struct type_list {};

template <class Spec, int Cond>
struct sequence_entry {};

template <class... L>
struct concat_lists;
template <>
struct concat_lists<> {
    using type = type_list<>;
};
template <class... A>
struct concat_lists<type_list<A...>> {
    using type = type_list<A...>;
};
template <class... A, class... B, class... Rest>
struct concat_lists<type_list<A...>, type_list<B...>, Rest...> {
    using type = typename concat_lists<type_list<A..., B...>, Rest...>::type;
};

template <class B>
struct flatten {
    using type = type_list<sequence_entry<B, -1>>;
};
template <class B, int I>
struct flatten<Conditioned<B, I>> {
    using type = type_list<sequence_entry<B, I>>;
};
template <int N, class... Bs>
struct flatten<Repeat<N, Bs...>> {
    using once = typename concat_lists<typename flatten<Bs>::type...>::type;
    template <std::size_t>
    using copy = once;
    using type = decltype([]<std::size_t... I>(std::index_sequence<I...>) {
        return typename concat_lists<copy<I>...>::type{};
    }(std::make_index_sequence<std::size_t(N)>{}));
};

/// Node types of a sequence: their names are what diagnostics and summaries print.
template <ShapeType S>
struct sequence_input : InputNode<S> {};
template <int J, ShapeType S>
struct sequence_condition : ConditionNode<S> {};
template <int K, ModuleSpec Spec>
struct sequence_block {
    static constexpr node_kind kind = node_kind::module;
    using module = Spec;
    using input_connections = inputs<>;
    using condition_connections = inputs<>;
};
struct sequence_output {
    static constexpr node_kind kind = node_kind::output;
    using input_connections = inputs<>;
    using condition_connections = inputs<>;
};

template <class Input, class Conds, class Entries>
struct sequence_description;

template <ShapeType In, ShapeType... CondShapes, class... Specs, int... Cond>
struct sequence_description<In, Conditions<CondShapes...>,
                            type_list<sequence_entry<Specs, Cond>...>> {
    static constexpr int n_cond = sizeof...(CondShapes);
    static constexpr int n_blocks = sizeof...(Specs);
    static constexpr int size = 2 + n_cond + n_blocks;

    template <class Seq>
    struct make_nodes;
    template <std::size_t... J, std::size_t... K>
    struct make_nodes<std::pair<std::index_sequence<J...>, std::index_sequence<K...>>> {
        using type = std::tuple<sequence_input<In>, sequence_condition<int(J), CondShapes>...,
                                sequence_block<int(K), Specs>..., sequence_output>;
    };
    using nodes = typename make_nodes<std::pair<std::make_index_sequence<std::size_t(n_cond)>,
                                                std::make_index_sequence<std::size_t(n_blocks)>>>::type;

    static constexpr graph_plan<size> plan = [] {
        node_info n[size]{};
        n[0].kind = node_kind::input;
        n[0].shape = In::value;
        dims cshapes[] = {CondShapes::value..., dims{}};
        for (int j = 0; j < n_cond; ++j) {
            n[1 + j].kind = node_kind::condition;
            n[1 + j].shape = cshapes[j];
        }
        int conds[] = {Cond..., -1};
        shape_result (*rules[])(const signature&) = {&Specs::output_shapes..., nullptr};
        for (int k = 0; k < n_blocks; ++k) {
            node_info& b = n[1 + n_cond + k];
            b.kind = node_kind::module;
            b.rule = rules[k];
            b.n_in = 1;
            b.in[0] = {k == 0 ? 0 : n_cond + k, 0};
            if (conds[k] >= 0) {
                b.n_cond = 1;
                b.cond[0] = {conds[k] < n_cond ? 1 + conds[k] : -1, 0};
            }
        }
        n[size - 1].kind = node_kind::output;
        n[size - 1].n_in = 1;
        n[size - 1].in[0] = {n_blocks == 0 ? 0 : n_cond + n_blocks, 0};
        return make_plan(n);
    }();

    static constexpr bool conditions_exist = ((Cond < n_cond) && ...);
    static_assert(conditions_exist,
                  "inn: a Conditioned<Block, Index> block refers to a condition index that the "
                  "SequenceINN's Conditions<...> does not have");
    template <class... N>
    static constexpr bool check(std::tuple<N...>*) {
        if constexpr (!conditions_exist)
            return false;
        else
            return diagnose<plan, N...>();
    }
    static constexpr bool valid = check(static_cast<nodes*>(nullptr));

    static std::string_view node_name(int node) {
        static const std::array<std::string, std::size_t(size)> names = [] {
            std::array<std::string, std::size_t(size)> n;
            n[0] = "x";
            for (int j = 0; j < n_cond; ++j) n[std::size_t(1 + j)] = "c" + std::to_string(j);
            std::string_view specs[] = {inn::module_name<Specs>()..., ""};
            for (int k = 0; k < n_blocks; ++k)
                n[std::size_t(1 + n_cond + k)] =
                    "block " + std::to_string(k) + " (" + std::string(specs[k]) + ")";
            n[std::size_t(size - 1)] = "z";
            return n;
        }();
        return names[std::size_t(node)];
    }
    static std::string default_prefix(int module) { return "module_list." + std::to_string(module); }
};

template <class... Args>
struct sequence_args {
    using conds = Conditions<>;
    using entries = typename concat_lists<typename flatten<Args>::type...>::type;
};
template <class... C, class... Rest>
struct sequence_args<Conditions<C...>, Rest...> {
    using conds = Conditions<C...>;
    using entries = typename concat_lists<typename flatten<Rest>::type...>::type;
};

template <class In, class... Args>
using sequence_description_of = sequence_description<In, typename sequence_args<Args...>::conds,
                                                     typename sequence_args<Args...>::entries>;

}  // namespace graph

/// A chain of blocks on `InputShape`, in float; `::with_scalar<double>` for double precision.
/// Optional `Conditions<Shapes...>` first, then blocks, `Repeat<n, blocks...>` and
/// `Conditioned<block, index>`.
template <ShapeType InputShape, class... Blocks>
using SequenceINN =
    network<float, graph::checked_t<graph::sequence_description_of<InputShape, Blocks...>>>;

}  // namespace inn
