#pragma once
// The planner: from a description of nodes and connections to a complete execution plan, in
// ordinary constexpr code over arrays. It orders the graph forward and inverse, infers every
// shape through each module's shape rule, checks the invertibility wiring, and numbers the
// buffers (one per connection). Errors are recorded as data; graph/diagnostics.hpp turns them
// into static_asserts that name the nodes involved.

#include "node.hpp"

namespace inn::graph {

struct connection {
    int node = -1;  // index into the node list, -1 when the source is not in the graph
    int slot = 0;
};

/// What the planner needs to know of one node.
struct node_info {
    node_kind kind = node_kind::module;
    dims shape{};  // input and condition nodes
    int n_in = 0;
    connection in[max_ports]{};
    int n_cond = 0;
    connection cond[max_ports]{};
    shape_result (*rule)(const signature&) = nullptr;  // module and feed-forward nodes
};

enum class graph_error {
    none,
    too_many_ports,                // more than max_ports inputs, conditions or outputs
    source_not_in_graph,           // a connection names a node missing from the node list
    condition_node_as_input,       // a ConditionNode feeding a module's input
    output_node_as_source,         // an OutputNode feeding anything
    output_node_arity,             // an OutputNode with other than one input
    cycle,                         // no forward order exists
    slot_out_of_range,             // out<node, k> with k >= the node's number of outputs
    module_rejects_shapes,         // the module's shape rule said no (see `shape`)
    consumed_twice,                // an output feeds two inputs
    loose_end,                     // an output feeds nothing
    input_unused,                  // an InputNode feeds nothing
    condition_unused,              // a ConditionNode conditions nothing
    not_invertible,                // no inverse order exists (a node conditioned on its own input)
    no_output,                     // a graph without OutputNode
    feed_forward_as_input,         // a FeedForwardNode feeding an input (node_b: the FF node)
    feed_forward_unused,           // a FeedForwardNode conditions nothing
    feed_forward_needs_its_user,   // forward: its source comes after a node it conditions
    feed_forward_after_its_user,   // inverse: its source is only known after a node it conditions
};

/// Nodes that hold a module and run: Nodes and FeedForwardNodes (FrEIA's module_list).
constexpr bool runs(node_kind k) { return k == node_kind::module || k == node_kind::feed_forward; }

template <int N>
struct graph_plan {
    node_info node[N]{};
    signature sig[N]{};
    port_list outs[N]{};

    // Execution: indices of the nodes that run (module and feed-forward nodes), forward order
    // and inverse order.
    int n_modules = 0;
    int forward_order[N]{};
    int inverse_order[N]{};
    int module_index[N]{};  // node -> position in forward_order (FrEIA's module_list index)

    // Buffers: one per node output slot (inputs and conditions included).
    int edge[N][max_ports]{};
    int n_edges = 0;
    dims edge_shape[N * max_ports + 1]{};

    // Network ports, in declaration order (FrEIA orders its tensors so).
    int n_inputs = 0, n_outputs = 0, n_conditions = 0;
    int input_edge[N]{}, output_edge[N]{}, condition_edge[N]{};
    int input_node[N]{}, output_node[N]{}, condition_node[N]{};

    // The first error found, with the nodes it concerns.
    graph_error error = graph_error::none;
    int node_a = -1, node_b = -1, node_c = -1;
    int slot = 0, port = 0;
    shape_result shape{};

    constexpr bool ok() const { return error == graph_error::none; }
    constexpr int edge_of(connection c) const { return edge[c.node][c.slot]; }
    constexpr void fail(graph_error e, int a = -1, int s = 0, int b = -1, int c = -1) {
        error = e;
        node_a = a;
        slot = s;
        node_b = b;
        node_c = c;
    }
};

namespace detail {

/// Dependencies of each node on others (in the inverse order a module waits for every reader
/// of its outputs, so there is no smaller bound than N).
template <int N>
struct dependencies {
    int count[N]{};
    int on[N][N]{};
    constexpr void add(int i, int j) {
        for (int k = 0; k < count[i]; ++k)
            if (on[i][k] == j) return;
        on[i][count[i]++] = j;
    }
};

/// Kahn's algorithm with a fixed rule (earliest declared ready node first), so module numbering
/// and log-det summation order are deterministic — unlike FrEIA's set iteration.
/// Returns the number of nodes ordered; `stuck` marks the included nodes it could not place.
template <int N>
constexpr int topological_order(const bool (&include)[N], const dependencies<N>& deps,
                                int (&order)[N], bool (&stuck)[N]) {
    int waiting[N]{};
    int users_count[N]{};
    int users[N][N]{};
    int wanted = 0;
    for (int i = 0; i < N; ++i) {
        if (!include[i]) continue;
        ++wanted;
        for (int k = 0; k < deps.count[i]; ++k) {
            int j = deps.on[i][k];
            if (j == i) {
                waiting[i] += 1 << 20;  // depends on itself: never ready
            } else if (include[j]) {
                ++waiting[i];
                users[j][users_count[j]++] = i;
            }
        }
    }
    bool placed[N]{};
    int count = 0;
    for (bool progress = true; progress && count < wanted;) {
        progress = false;
        for (int i = 0; i < N; ++i)
            if (include[i] && !placed[i] && waiting[i] == 0) {
                placed[i] = true;
                order[count++] = i;
                for (int u = 0; u < users_count[i]; ++u) --waiting[users[i][u]];
                progress = true;
                break;
            }
    }
    for (int i = 0; i < N; ++i) stuck[i] = include[i] && !placed[i];
    return count;
}

/// Whom to name when no order exists: `node` (one that waits for itself, else the first one
/// stuck); or, when a FeedForwardNode is on a cycle, that node and the node that waits for it
/// there (preferably one it conditions).
struct stuck_report {
    int node = -1;
    int feed_forward = -1;
    int user = -1;
};

template <int N>
constexpr stuck_report explain_stuck(const node_info (&nodes)[N], const bool (&stuck)[N],
                                     const dependencies<N>& deps) {
    stuck_report r;
    for (int i = 0; i < N && r.node < 0; ++i)
        if (stuck[i])
            for (int k = 0; k < deps.count[i]; ++k)
                if (deps.on[i][k] == i) r.node = i;
    for (int i = 0; i < N && r.node < 0; ++i)
        if (stuck[i]) r.node = i;
    // Every stuck node waits for a stuck node, so N steps along such waits end on a cycle.
    auto next = [&](int i) {
        for (int k = 0; k < deps.count[i]; ++k)
            if (stuck[deps.on[i][k]]) return deps.on[i][k];
        return i;
    };
    int on_cycle = r.node;
    for (int step = 0; step < N; ++step) on_cycle = next(on_cycle);
    auto conditions = [&](int user, int ff) {
        for (int k = 0; k < nodes[user].n_cond; ++k)
            if (nodes[user].cond[k].node == ff) return true;
        return false;
    };
    int i = on_cycle;
    do {
        const int j = next(i);  // i waits for j
        if (nodes[j].kind == node_kind::feed_forward &&
            (r.feed_forward < 0 || (!conditions(r.user, r.feed_forward) && conditions(i, j)))) {
            r.feed_forward = j;
            r.user = i;
        }
        i = j;
    } while (i != on_cycle);
    return r;
}

}  // namespace detail

template <int N>
constexpr graph_plan<N> make_plan(const node_info (&nodes)[N]) {
    graph_plan<N> p;
    for (int i = 0; i < N; ++i) p.node[i] = nodes[i];

    // 1. Connections: sources exist and are of a kind that can feed them.
    for (int i = 0; i < N; ++i) {
        const node_info& n = p.node[i];
        if (n.n_in > max_ports || n.n_cond > max_ports) {
            p.fail(graph_error::too_many_ports, i);
            return p;
        }
        if (n.kind == node_kind::output && n.n_in != 1) {
            p.fail(graph_error::output_node_arity, i);
            return p;
        }
        for (int k = 0; k < n.n_in + n.n_cond; ++k) {
            bool is_input = k < n.n_in;
            connection c = is_input ? n.in[k] : n.cond[k - n.n_in];
            p.port = is_input ? k : k - n.n_in;
            if (c.node < 0) {
                p.fail(graph_error::source_not_in_graph, i, is_input ? 0 : 1);
                return p;
            }
            node_kind src = p.node[c.node].kind;
            if (src == node_kind::output) {
                p.fail(graph_error::output_node_as_source, i, 0, c.node);
                return p;
            }
            if (is_input && src == node_kind::condition) {
                p.fail(graph_error::condition_node_as_input, i, 0, c.node);
                return p;
            }
            if (is_input && src == node_kind::feed_forward) {
                p.fail(graph_error::feed_forward_as_input, i, 0, c.node);
                return p;
            }
        }
    }

    // 2. Forward order over all nodes: a node waits for the sources of its inputs and conditions.
    detail::dependencies<N> feeds;
    for (int i = 0; i < N; ++i) {
        for (int k = 0; k < p.node[i].n_in; ++k) feeds.add(i, p.node[i].in[k].node);
        for (int k = 0; k < p.node[i].n_cond; ++k) feeds.add(i, p.node[i].cond[k].node);
    }
    bool all[N]{};
    for (int i = 0; i < N; ++i) all[i] = true;
    int order[N]{};
    bool stuck[N]{};
    if (detail::topological_order<N>(all, feeds, order, stuck) < N) {
        const detail::stuck_report r = detail::explain_stuck(p.node, stuck, feeds);
        if (r.feed_forward >= 0)
            p.fail(graph_error::feed_forward_needs_its_user, r.feed_forward, 0, r.user);
        else
            p.fail(graph_error::cycle, r.node);
        return p;
    }

    // 3. Shapes, in forward order, through each module's rule.
    for (int oi = 0; oi < N; ++oi) {
        int i = order[oi];
        node_info& n = p.node[i];
        if (n.kind == node_kind::input || n.kind == node_kind::condition) {
            p.outs[i].push(n.shape);
            continue;
        }
        signature s;
        for (int k = 0; k < n.n_in + n.n_cond; ++k) {
            bool is_input = k < n.n_in;
            connection c = is_input ? n.in[k] : n.cond[k - n.n_in];
            if (c.slot < 0 || c.slot >= p.outs[c.node].count) {
                p.port = is_input ? k : k - n.n_in;
                p.fail(graph_error::slot_out_of_range, i, c.slot, c.node);
                return p;
            }
            (is_input ? s.inputs : s.conditions).push(p.outs[c.node][c.slot]);
        }
        p.sig[i] = s;
        if (n.kind == node_kind::output) continue;
        shape_result r = n.rule(s);
        if (!r.ok()) {
            p.shape = r;
            p.fail(graph_error::module_rejects_shapes, i);
            return p;
        }
        if (r.outputs.count > max_ports) {
            p.fail(graph_error::too_many_ports, i);
            return p;
        }
        p.outs[i] = r.outputs;
    }

    // 4. Every output slot is consumed exactly once; every condition node is used.
    int consumer[N][max_ports]{};
    int cond_uses[N]{};
    for (int i = 0; i < N; ++i)
        for (int s = 0; s < max_ports; ++s) consumer[i][s] = -1;
    for (int j = 0; j < N; ++j) {
        for (int k = 0; k < p.node[j].n_in; ++k) {
            connection c = p.node[j].in[k];
            if (consumer[c.node][c.slot] >= 0) {
                p.fail(graph_error::consumed_twice, c.node, c.slot, consumer[c.node][c.slot], j);
                return p;
            }
            consumer[c.node][c.slot] = j;
        }
        for (int k = 0; k < p.node[j].n_cond; ++k) ++cond_uses[p.node[j].cond[k].node];
    }
    for (int i = 0; i < N; ++i) {
        if (p.node[i].kind == node_kind::output) continue;
        if (p.node[i].kind == node_kind::condition || p.node[i].kind == node_kind::feed_forward) {
            if (cond_uses[i] == 0) {
                p.fail(p.node[i].kind == node_kind::condition ? graph_error::condition_unused
                                                              : graph_error::feed_forward_unused,
                       i);
                return p;
            }
            continue;
        }
        for (int s = 0; s < p.outs[i].count; ++s)
            if (consumer[i][s] < 0) {
                p.fail(p.node[i].kind == node_kind::input ? graph_error::input_unused
                                                          : graph_error::loose_end,
                       i, s);
                return p;
            }
    }

    // 5. Buffers and network ports.
    for (int i = 0; i < N; ++i)
        for (int s = 0; s < p.outs[i].count; ++s) {
            p.edge[i][s] = p.n_edges;
            p.edge_shape[p.n_edges++] = p.outs[i][s];
        }
    for (int i = 0; i < N; ++i) {
        switch (p.node[i].kind) {
            case node_kind::input:
                p.input_node[p.n_inputs] = i;
                p.input_edge[p.n_inputs++] = p.edge[i][0];
                break;
            case node_kind::condition:
                p.condition_node[p.n_conditions] = i;
                p.condition_edge[p.n_conditions++] = p.edge[i][0];
                break;
            case node_kind::output:
                p.output_node[p.n_outputs] = i;
                p.output_edge[p.n_outputs++] = p.edge_of(p.node[i].in[0]);
                break;
            default:
                break;
        }
    }
    if (p.n_outputs == 0) {
        p.fail(graph_error::no_output);
        return p;
    }
    for (int oi = 0; oi < N; ++oi)
        if (int i = order[oi]; runs(p.node[i].kind)) {
            p.module_index[i] = p.n_modules;
            p.forward_order[p.n_modules++] = i;
        }

    // 6. Inverse order. Inverting node i produces its input buffers from its output buffers, so
    // it waits for the consumers of its outputs; a condition read from a non-condition node is
    // the buffer that the *consumer* of that output produces when inverted (FrEIA's reverse
    // condition routing). A FeedForwardNode computes its output in the inverse as in the forward
    // pass: it waits for its sources like a reader of conditions, and its readers wait for it.
    detail::dependencies<N> waits;
    for (int i = 0; i < N; ++i) {
        if (!runs(p.node[i].kind)) continue;
        for (int s = 0; s < p.outs[i].count; ++s)
            if (int j = consumer[i][s]; j >= 0 && p.node[j].kind == node_kind::module)
                waits.add(i, j);
        for (int k = 0; k < p.node[i].n_cond; ++k) {
            connection c = p.node[i].cond[k];
            const node_kind src = p.node[c.node].kind;
            if (src == node_kind::condition) continue;
            if (src == node_kind::feed_forward) {
                waits.add(i, c.node);
                continue;
            }
            if (int j = consumer[c.node][c.slot]; p.node[j].kind == node_kind::module) waits.add(i, j);
            // The module that produced that buffer is inverted after every node that reads it
            // as a condition: its buffer is then no longer needed, and walking this order back
            // (training) adds every condition's gradient into the buffer before its producer
            // reads it.
            if (src == node_kind::module) waits.add(c.node, i);
        }
    }
    bool running[N]{};
    for (int i = 0; i < N; ++i) running[i] = runs(p.node[i].kind);
    int inv[N]{};
    if (detail::topological_order<N>(running, waits, inv, stuck) < p.n_modules) {
        const detail::stuck_report r = detail::explain_stuck(p.node, stuck, waits);
        if (r.feed_forward >= 0)
            p.fail(graph_error::feed_forward_after_its_user, r.feed_forward, 0, r.user);
        else
            p.fail(graph_error::not_invertible, r.node);
        return p;
    }
    for (int k = 0; k < p.n_modules; ++k) p.inverse_order[k] = inv[k];
    return p;
}

}  // namespace inn::graph
