#pragma once
// Where every buffer between modules lives, decided at compile time from the plan:
//
//  1. Views. A module that only moves data (Flatten, Reshape, and Split / Concat of column
//     blocks: view_kind in core/module.hpp) copies nothing: its outputs are laid out inside its
//     input (or its inputs inside its output), and the network skips it in both directions.
//     Edges so joined form a group with one root buffer; each edge is a block of columns of
//     its root's rows.
//  2. Sharing. Groups whose live ranges are disjoint in the forward order *and* in the inverse
//     order take turns in one region of memory (greedy colouring in order of first use).
//
// Soundness of a view: two edges of one group whose columns overlap must either be joined by a
// chain of views (then they carry the same values there) or never be live at the same time,
// forward or inverse. A view that would break this (the inputs of a Concat that a Split made,
// but in another order; a module that would read and write the same memory) is refused, and
// that module copies as before. Live ranges are closed intervals of steps, so a module never
// reads and writes the same memory.

#include <algorithm>
#include <array>
#include <type_traits>

#include "../core/module.hpp"
#include "fusion.hpp"
#include "plan.hpp"

namespace inn::graph {

template <const auto& plan> struct memory_plan {
    static constexpr int max_edges =
        int(std::extent_v<std::remove_cvref_t<decltype(plan.edge_shape)>>);
    static constexpr int max_nodes = int(std::extent_v<std::remove_cvref_t<decltype(plan.node)>>);

    // Per edge: live ranges in forward steps (f) and inverse steps (i); -1 and n_modules stand
    // for the copies in and out of the network.
    int first_f[max_edges]{}, last_f[max_edges]{}, first_i[max_edges]{}, last_i[max_edges]{};
    int consumer[max_edges]{}; // the module node reading the edge as an input, -1 if none
    // Views: edge e is columns [column[e], column[e] + size) of the rows of root[e].
    int root[max_edges]{};
    index_t column[max_edges]{};
    index_t extent[max_edges]{}; // per root: scalars per row of the group
    bool is_view[max_nodes]{};   // per node: runs as a view (the network skips it)
    // Sharing: groups (roots) coloured; edges of a colour use its width as their row stride.
    int colour[max_edges]{};
    index_t width[max_edges]{}; // per colour
    int n_colours = 0;

    /// `views[k]`: what module k (forward order) declares; `use_views` / `share` switch the
    /// two analyses off (to measure what each buys). `keep[e]`: edge e must hold its forward
    /// value until the inverse walk is done with it (training, graph/backprop.hpp: the inputs
    /// of modules whose inverse is not exact are kept, not recomputed).
    /// `fused`: chains that may run as one pass (graph/fusion.hpp), whose input and output
    /// must then not share memory. (A reference, not a pointer tested for null: GCC's UBSan
    /// build cannot compare a static member's address with null in a constant expression.)
    constexpr memory_plan(const view_kind* views, bool use_views, bool share,
                          const std::array<bool, std::size_t(max_edges)>& keep = {},
                          const fusion_plan<plan>& fused = {}) {
        live_ranges(keep);
        overlap_fused(fused);
        for (int e = 0; e < plan.n_edges; ++e) {
            root[e] = e;
            extent[e] = size(e);
        }
        if (use_views)
            for (int k = 0; k < plan.n_modules; ++k)
                if (views[k] != view_kind::none)
                    try_view(plan.forward_order[k], views[k]);
        colour_groups(share);
    }

    constexpr index_t size(int e) const { return plan.edge_shape[e].size(); }
    /// Scalars per row of the region that holds edge e, and where in the row e starts.
    constexpr index_t stride(int e) const { return width[colour[root[e]]]; }

    /// Scalars per sample of all regions; and of one buffer per edge (the naive sum).
    constexpr index_t shared_size() const {
        index_t t = 0;
        for (int c = 0; c < n_colours; ++c)
            t += width[c];
        return t;
    }
    constexpr index_t naive_size() const {
        index_t t = 0;
        for (int e = 0; e < plan.n_edges; ++e)
            t += size(e);
        return t;
    }
    constexpr int n_views() const {
        int n = 0;
        for (int i = 0; i < max_nodes; ++i)
            n += is_view[i] ? 1 : 0;
        return n;
    }

  private:
    constexpr void live_ranges(const std::array<bool, std::size_t(max_edges)>& keep) {
        const int n = plan.n_modules;
        for (int e = 0; e < plan.n_edges; ++e) {
            first_f[e] = first_i[e] = n + 1;
            last_f[e] = last_i[e] = -2;
            consumer[e] = -1;
        }
        auto touch = [&](int e, int kf, int ki) {
            first_f[e] = std::min(first_f[e], kf);
            last_f[e] = std::max(last_f[e], kf);
            first_i[e] = std::min(first_i[e], ki);
            last_i[e] = std::max(last_i[e], ki);
        };
        for (int kf = 0; kf < n; ++kf) {
            const int node = plan.forward_order[kf];
            int ki = 0;
            while (plan.inverse_order[ki] != node)
                ++ki;
            const node_info& nd = plan.node[node];
            for (int i = 0; i < nd.n_in; ++i) {
                touch(plan.edge_of(nd.in[i]), kf, ki);
                consumer[plan.edge_of(nd.in[i])] = node;
            }
            for (int s = 0; s < plan.outs[node].count; ++s)
                touch(plan.edge[node][s], kf, ki);
            for (int c = 0; c < nd.n_cond; ++c)
                touch(plan.edge_of(nd.cond[c]), kf, ki);
        }
        for (int i = 0; i < plan.n_inputs; ++i) { // copied in forward, out after the inverse
            first_f[plan.input_edge[i]] = -1;
            last_i[plan.input_edge[i]] = n;
        }
        for (int i = 0; i < plan.n_outputs; ++i) {
            last_f[plan.output_edge[i]] = n;
            first_i[plan.output_edge[i]] = -1;
        }
        for (int c = 0; c < plan.n_conditions; ++c) {
            const int e = plan.condition_edge[c];
            first_f[e] = first_i[e] = -1;
            last_f[e] = last_i[e] = n;
        }
        for (int e = 0; e < plan.n_edges; ++e)
            if (keep[std::size_t(e)]) { // live to the end of the forward walk and from the start of the inverse
                last_f[e] = n;
                first_i[e] = -1;
            }
    }

    // A fused chain writes its output where its first module runs forward, and its input where
    // its last module runs inverse (graph/fusion.hpp): each is then live in the step that reads
    // the other, so the two never share memory.
    constexpr void overlap_fused(const fusion_plan<plan>& f) {
        for (int g = 0; g < f.n_groups; ++g) {
            const int x = plan.edge_of(plan.node[f.first_node(g)].in[0]);
            const int z = plan.edge[f.last_node(g)][0];
            int inverse_leader = 0;
            while (plan.inverse_order[inverse_leader] != f.last_node(g)) ++inverse_leader;
            first_f[z] = std::min(first_f[z], f.first[g]);
            first_i[x] = std::min(first_i[x], inverse_leader);
        }
    }

    constexpr bool disjoint_in_time(int a, int b) const {
        return (last_f[a] < first_f[b] || last_f[b] < first_f[a]) &&
               (last_i[a] < first_i[b] || last_i[b] < first_i[a]);
    }

    // Whether the values of edge `a` reach edge `b` through views alone.
    constexpr bool reaches(int a, int b) const {
        int stack[max_edges]{};
        bool seen[max_edges]{};
        int top = 0;
        stack[top++] = a;
        seen[a] = true;
        while (top > 0) {
            const int e = stack[--top];
            if (e == b)
                return true;
            const int v = consumer[e];
            if (v < 0 || !is_view[v])
                continue;
            for (int s = 0; s < plan.outs[v].count; ++s)
                if (const int o = plan.edge[v][s]; !seen[o]) {
                    seen[o] = true;
                    stack[top++] = o;
                }
        }
        return false;
    }

    // Places the group of `child` so that child starts at column `at` of `parent`; false if the
    // groups disagree or one does not fit inside the other.
    constexpr bool place(int child, int parent, index_t at) {
        const int rc = root[child], rp = root[parent];
        const index_t pos = column[parent] + at - column[child]; // rc's start inside rp
        if (rc == rp)
            return pos == 0;
        int from = rc, into = rp;
        index_t shift = pos;
        if (pos < 0 || pos + extent[rc] > extent[rp]) { // then rp must fit inside rc
            from = rp;
            into = rc;
            shift = -pos;
            if (shift < 0 || shift + extent[rp] > extent[rc])
                return false;
        }
        for (int e = 0; e < plan.n_edges; ++e)
            if (root[e] == from) {
                root[e] = into;
                column[e] += shift;
            }
        return true;
    }

    constexpr bool consistent() const {
        for (int a = 0; a < plan.n_edges; ++a)
            for (int b = a + 1; b < plan.n_edges; ++b) {
                if (root[a] != root[b])
                    continue;
                if (column[a] + size(a) <= column[b] || column[b] + size(b) <= column[a])
                    continue;
                if (disjoint_in_time(a, b) || reaches(a, b) || reaches(b, a))
                    continue;
                return false;
            }
        return true;
    }

    constexpr void try_view(int node, view_kind kind) {
        int saved_root[max_edges]{};
        index_t saved_column[max_edges]{};
        for (int e = 0; e < plan.n_edges; ++e) {
            saved_root[e] = root[e];
            saved_column[e] = column[e];
        }
        const node_info& nd = plan.node[node];
        bool ok = true;
        index_t at = 0;
        if (kind == view_kind::outputs_in_input) {
            for (int s = 0; s < plan.outs[node].count && ok; ++s) {
                const int o = plan.edge[node][s];
                ok = place(o, plan.edge_of(nd.in[0]), at);
                at += size(o);
            }
        } else {
            for (int i = 0; i < nd.n_in && ok; ++i) {
                const int e = plan.edge_of(nd.in[i]);
                ok = place(e, plan.edge[node][0], at);
                at += size(e);
            }
        }
        is_view[node] = ok;
        if (ok && consistent())
            return;
        is_view[node] = false;
        for (int e = 0; e < plan.n_edges; ++e) {
            root[e] = saved_root[e];
            column[e] = saved_column[e];
        }
    }

    // Greedy colouring of the groups, in order of first use; a group is live from the first
    // step any of its edges is to the last.
    constexpr void colour_groups(bool share) {
        int gf[max_edges]{}, gl[max_edges]{}, gfi[max_edges]{}, gli[max_edges]{};
        for (int e = 0; e < plan.n_edges; ++e) {
            gf[e] = gfi[e] = plan.n_modules + 1;
            gl[e] = gli[e] = -2;
        }
        for (int e = 0; e < plan.n_edges; ++e) {
            const int r = root[e];
            gf[r] = std::min(gf[r], first_f[e]);
            gl[r] = std::max(gl[r], last_f[e]);
            gfi[r] = std::min(gfi[r], first_i[e]);
            gli[r] = std::max(gli[r], last_i[e]);
        }
        auto apart = [&](int a, int b) {
            return (gl[a] < gf[b] || gl[b] < gf[a]) && (gli[a] < gfi[b] || gli[b] < gfi[a]);
        };
        for (int r = 0; r < plan.n_edges; ++r) {
            if (root[r] != r)
                continue;
            int chosen = -1;
            for (int c = 0; share && c < n_colours && chosen < 0; ++c) {
                bool free = true;
                for (int o = 0; o < r && free; ++o)
                    if (root[o] == o && colour[o] == c)
                        free = apart(r, o);
                if (free)
                    chosen = c;
            }
            if (chosen < 0)
                chosen = n_colours++;
            colour[r] = chosen;
            width[chosen] = std::max(width[chosen], extent[r]);
        }
    }
};

} // namespace inn::graph
