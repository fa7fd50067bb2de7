#pragma once
// SequenceINN: a chain of single-input, single-output blocks (FrEIA's SequenceINN).
//
//   using Net = SequenceINN<Shape<2>,
//       Repeat<8, AllInOneBlock<subnet, AllInOneOptions{.permute_soft = true}>>>;
//   using cINN = SequenceINN<Shape<784>, Conditions<Shape<10>>,
//                            Repeat<12, Conditioned<AllInOneBlock<subnet>, 0>>>;
//
// A chain is planned by the same planner as a graph, so shapes, checks and execution are shared.

#include <array>
#include <string>
#include <utility>

#include <boost/hana/concat.hpp>
#include <boost/hana/flatten.hpp>
#include <boost/hana/replicate.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>
#include <boost/hana/unpack.hpp>

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

namespace hana = boost::hana;

/// One block of the chain: its module spec and the condition it reads (-1: none).
template <class Spec, int Cond>
struct sequence_entry {};

/// The entries a SequenceINN argument stands for, in order, as a hana tuple of types.
template <class Block>
constexpr auto entries(hana::basic_type<Block>) {
    return hana::tuple_t<sequence_entry<Block, -1>>;
}
template <class Block, int I>
constexpr auto entries(hana::basic_type<Conditioned<Block, I>>) {
    return hana::tuple_t<sequence_entry<Block, I>>;
}
template <int N, class... Blocks>
constexpr auto entries(hana::basic_type<Repeat<N, Blocks...>>) {
    (void)sizeof(Repeat<N, Blocks...>);  // its static_assert on N, before N copies are made
    constexpr auto once = hana::flatten(hana::make_tuple(entries(hana::type_c<Blocks>)...));
    return hana::flatten(hana::replicate<hana::tuple_tag>(once, hana::size_c<std::size_t(N)>));
}

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

template <class Input, class Conds, class... Entries>
struct sequence_description;

template <ShapeType In, ShapeType... CondShapes, class... Specs, int... Cond>
struct sequence_description<In, Conditions<CondShapes...>, sequence_entry<Specs, Cond>...> {
    static constexpr int n_cond = sizeof...(CondShapes);
    static constexpr int n_blocks = sizeof...(Specs);
    static constexpr int size = 2 + n_cond + n_blocks;

    static constexpr auto nodes = []<std::size_t... J, std::size_t... K>(
                                      std::index_sequence<J...>, std::index_sequence<K...>) {
        return hana::tuple_t<sequence_input<In>, sequence_condition<int(J), CondShapes>...,
                             sequence_block<int(K), Specs>..., sequence_output>;
    }(std::make_index_sequence<std::size_t(n_cond)>{},
      std::make_index_sequence<std::size_t(n_blocks)>{});

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
    static constexpr bool valid = [] {
        if constexpr (!conditions_exist)
            return false;
        else
            return hana::unpack(nodes, []<class... N>(hana::basic_type<N>...) {
                return diagnose<plan, N...>();
            });
    }();

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

/// The description of a chain on `In` with conditions `Conds` and the blocks `Args`.
template <class In, class Conds, class... Args>
using chain_description = typename decltype(hana::unpack(
    hana::concat(hana::tuple_t<In, Conds>,
                 hana::flatten(hana::make_tuple(entries(hana::type_c<Args>)...))),
    hana::template_<sequence_description>))::type;

template <class T> inline constexpr bool is_sequence_conditions = false;
template <class... C> inline constexpr bool is_sequence_conditions<Conditions<C...>> = true;

/// The chain, or an empty one where it cannot be made (so that a static_assert's message is
/// the only error).
template <bool Ok, class In, class Conds, class... Args>
struct chain_or_empty {
    using type = chain_description<In, Conds, Args...>;
};
template <class In, class Conds, class... Args>
struct chain_or_empty<false, In, Conds, Args...> {
    using type = chain_description<In, Conditions<>>;
};

/// The chain on `In` with conditions `Conds` and the blocks `Args`, none of which may be a
/// Conditions<...>.
template <class In, class Conds, class... Args>
struct checked_chain {
    static constexpr bool blocks_only = (!is_sequence_conditions<Args> && ...);
    static_assert(blocks_only, "inn: SequenceINN takes one Conditions<...>, right after the input "
                               "shape: SequenceINN<Shape<...>, Conditions<...>, blocks...>");
    using type = typename chain_or_empty<blocks_only, In, Conds, Args...>::type;
};

/// The description of `SequenceINN<In, Args...>`: optional Conditions<...> first, then blocks.
template <class In, class... Args>
struct sequence_of : checked_chain<In, Conditions<>, Args...> {};
template <class In, class... C, class... Args>
struct sequence_of<In, Conditions<C...>, Args...> : checked_chain<In, Conditions<C...>, Args...> {};

}  // namespace graph

/// A chain of blocks on `InputShape`, in float; `::with_scalar<double>` for double precision.
/// Optional `Conditions<Shapes...>` first, then blocks, `Repeat<n, blocks...>` and
/// `Conditioned<block, index>`.
template <ShapeType InputShape, class... Blocks>
using SequenceINN =
    graph::network<float,
                   graph::checked_t<typename graph::sequence_of<InputShape, Blocks...>::type>>;

}  // namespace inn
