#pragma once
// Fusion across modules: a chain of element-wise modules runs as one pass.
//
// PermuteRandom, ActNorm, LearnedElementwiseScaling and the i-RevNet reshuffles each move or
// scale every element on its own (core/affine_gather.hpp); a chain of them, say
// PermuteRandom -> IRevNetDownsampling, is one gather with one multiply-add per element.
// Run module by module, the chain reads and writes the whole batch once per module; fused, once.
//
//  1. The plan (compile time, `fusion_plan`): maximal runs of consecutive modules in the forward
//     order that are element-wise (or views of one input and one output: Flatten, Reshape),
//     each reading only the previous one's output, which nothing else reads, and that are
//     consecutive in the inverse order too. Views at either end are left out (they cost nothing
//     already), and a run needs two element-wise modules to be worth a pass of its own.
//  2. The maps (`fused_chain`, on prepare()): each direction's maps composed into one and cut
//     into runs that stream without an index per element; the modules' log-dets kept apart to
//     be added in their order (the unfused bits).
//  3. The pass (the executor): where the run's first module would run (in that direction), one
//     pass over the batch into the run's last output; the other modules are skipped. The
//     memory plan keeps the run's input and output apart (graph/memory_plan.hpp), which it
//     would not otherwise: unfused, their live ranges do not touch.
//
// The network's first call with data-initialised modules (ActNorm), and the training executor,
// run module by module. `nn::kernels::tuning().fuse_elementwise` turns fusion off for
// measuring it.

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/affine_gather.hpp"
#include "../core/tensor_view.hpp"
#include "plan.hpp"

namespace inn::graph {

template <const auto& plan> struct fusion_plan {
    static constexpr int max_nodes = int(std::extent_v<std::remove_cvref_t<decltype(plan.node)>>);

    int n_groups = 0;
    int first[max_nodes]{};       // per group: forward step of its first module
    int length[max_nodes]{};      // per group: its modules, views inside it included
    int elementwise[max_nodes]{}; // per group: its element-wise modules (not views)
    int group[max_nodes]{};       // per forward step: its group, -1 for none
    int member[max_nodes]{};      // per forward step in a group: which element-wise module it is

    /// No chains.
    constexpr fusion_plan() {
        for (int k = 0; k < max_nodes; ++k)
            group[k] = -1;
    }
    /// `affine[k]`, `identity[k]`: module k (forward order) describes itself as an affine gather,
    /// or is a view that leaves the elements where they are (one input, one output).
    constexpr fusion_plan(const bool* affine, const bool* identity) {
        const int n = plan.n_modules;
        for (int k = 0; k < n; ++k)
            group[k] = -1;
        auto fusable = [&](int k) { return affine[k] || identity[k]; };
        for (int k = 0; k < n;) {
            if (!fusable(k) || !single(plan.forward_order[k])) {
                ++k;
                continue;
            }
            int end = k + 1; // one past the run's last step
            while (end < n && fusable(end) &&
                   linked(plan.forward_order[end - 1], plan.forward_order[end]))
                ++end;
            int a = k, b = end; // views at the ends stay views
            while (a < b && !affine[a])
                ++a;
            while (b > a && !affine[b - 1])
                --b;
            int count = 0;
            for (int i = a; i < b; ++i)
                count += affine[i] ? 1 : 0;
            if (count >= 2) {
                first[n_groups] = a;
                length[n_groups] = b - a;
                elementwise[n_groups] = count;
                for (int i = a, m = 0; i < b; ++i) {
                    group[i] = n_groups;
                    member[i] = affine[i] ? m++ : -1;
                }
                ++n_groups;
            }
            k = end;
        }
    }

    /// The forward step that runs a group's pass in a direction: its first module forward, its
    /// last one inverse (the first to run there).
    constexpr int leader(int g, bool forward) const {
        return forward ? first[g] : first[g] + length[g] - 1;
    }
    /// The nodes at the ends of a group.
    constexpr int first_node(int g) const { return plan.forward_order[first[g]]; }
    constexpr int last_node(int g) const { return plan.forward_order[first[g] + length[g] - 1]; }
    /// Scalars per sample a group's pass moves.
    constexpr index_t size(int g) const {
        return plan.edge_shape[plan.edge[last_node(g)][0]].size();
    }

  private:
    // A module of one input, one output and no condition.
    static constexpr bool single(int node) {
        const node_info& nd = plan.node[node];
        return nd.kind == node_kind::module && nd.n_in == 1 && nd.n_cond == 0 &&
               plan.outs[node].count == 1;
    }
    static constexpr int inverse_step(int node) {
        for (int i = 0; i < plan.n_modules; ++i)
            if (plan.inverse_order[i] == node)
                return i;
        return -1;
    }
    // Node b reads node a's only output, nothing else reads it, both keep their sizes, and the
    // inverse runs b just before a.
    static constexpr bool linked(int a, int b) {
        if (!single(b))
            return false;
        const node_info& nb = plan.node[b];
        if (nb.in[0].node != a || nb.in[0].slot != 0)
            return false;
        for (int i = 0; i < max_nodes; ++i) {
            if (i == b)
                continue;
            const node_info& ni = plan.node[i];
            for (int p = 0; p < ni.n_in; ++p)
                if (ni.in[p].node == a)
                    return false;
            for (int p = 0; p < ni.n_cond; ++p)
                if (ni.cond[p].node == a)
                    return false;
        }
        const index_t in = plan.edge_shape[plan.edge_of(plan.node[a].in[0])].size();
        if (plan.edge_shape[plan.edge[a][0]].size() != in ||
            plan.edge_shape[plan.edge[b][0]].size() != in)
            return false;
        return inverse_step(b) + 1 == inverse_step(a);
    }
};

/// One group's composed maps, both directions, rebuilt by the executor's prepare().
template <Scalar S> struct fused_chain {
    affine_gather<S> map[2];    // [0] inverse, [1] forward
    std::vector<S> log_dets[2]; // the modules' terms, in the order they run
    bool gather_only[2] = {false, false};

    /// Starts both directions from the identity on n elements with `count` modules.
    void begin(index_t n, int count) {
        for (auto& m : map)
            m.set_identity(n);
        for (auto& l : log_dets)
            l.assign(std::size_t(count), S(0));
        work_.set_identity(n);
    }
    /// Adds element-wise module `member` (forward order) given its forward and inverse forms.
    /// Forward: its map after those before it. Inverse: the chain's inverse runs the last
    /// module first, so the member's inverse map goes on the inside of those composed so far.
    void add(int member, const affine_gather<S>& forward, const affine_gather<S>& inverse) {
        compose(forward, map[1], work_);
        std::swap(map[1], work_);
        compose(map[0], inverse, work_);
        std::swap(map[0], work_);
        const std::size_t count = log_dets[1].size();
        log_dets[1][std::size_t(member)] = forward.log_det;
        log_dets[0][count - 1 - std::size_t(member)] = inverse.log_det;
    }
    /// Ready to run: each direction's map cut into runs the pass can stream (below).
    void end() {
        for (int d = 0; d < 2; ++d) {
            gather_only[d] = map[d].only_moves();
            cut(map[d].source, segments_[d]);
        }
    }

    /// The pass over `batch` samples in one direction; `in` and `out` do not overlap.
    void run(bool forward, index_t batch, cview<S> in, view<S> out, S* ljd, bool jac) const {
        const int d = forward ? 1 : 0;
        for (index_t b = 0; b < batch; ++b) {
            if (gather_only[d])
                pass<false>(in.row(b), out.row(b), segments_[d], map[d]);
            else
                pass<true>(in.row(b), out.row(b), segments_[d], map[d]);
        }
        if (!jac)
            return;
        for (const S term : log_dets[d])
            for (index_t b = 0; b < batch; ++b)
                ljd[b] += term;
    }

  private:
    // The composed map's sources, cut into runs that the pass reads without an index per
    // element (single-element gathers are slower than the passes they would replace, on Zen 5
    // at least): `copy`, consecutive sources (a permuted channel, ActNorm, scaling); `stride2`,
    // every other one (i-RevNet downsampling: a row of one 2x2-patch plane); `zip`, two
    // consecutive runs interleaved (i-RevNet upsampling: a high-resolution row from two
    // planes); `single`, one element. Outputs are always consecutive. Runs of one shape whose
    // sources advance by a constant pitch join as rows of one segment (a whole plane).
    enum class run_kind : std::uint8_t { copy, stride2, zip, single };
    struct segment {
        index_t out, from, from2, length; // zip: outputs 2t <- from + t, 2t + 1 <- from2 + t
        index_t rows, pitch;              // row r reads from (and from2) + r * pitch
        run_kind kind;

        index_t outputs() const { return (kind == run_kind::zip ? 2 : 1) * length; }
    };

    static void cut(const std::vector<index_t>& src, std::vector<segment>& segs) {
        segs.clear();
        const index_t n = index_t(src.size());
        auto at = [&](index_t j) { return src[std::size_t(j)]; };
        for (index_t j = 0; j < n;) {
            index_t len = 1;
            if (j + 3 < n && at(j + 1) != at(j) + 1 && at(j + 2) == at(j) + 1 &&
                at(j + 3) == at(j + 1) + 1) {
                while (j + 2 * len + 1 < n && at(j + 2 * len) == at(j) + len &&
                       at(j + 2 * len + 1) == at(j + 1) + len)
                    ++len;
                add_row(segs, {j, at(j), at(j + 1), len, 1, 0, run_kind::zip});
                j += 2 * len;
                continue;
            }
            const index_t step = j + 1 < n ? at(j + 1) - at(j) : 0;
            const run_kind kind = step == 1   ? run_kind::copy
                                  : step == 2 ? run_kind::stride2
                                              : run_kind::single;
            if (kind != run_kind::single)
                while (j + len < n && at(j + len) == at(j) + step * len)
                    ++len;
            add_row(segs, {j, at(j), 0, len, 1, 0, kind});
            j += len;
        }
    }
    // A run that continues the last segment's rows becomes its next row.
    static void add_row(std::vector<segment>& segs, const segment& r) {
        if (!segs.empty()) {
            segment& g = segs.back();
            const index_t pitch = r.from - g.from;
            const bool next = g.kind == r.kind && g.length == r.length &&
                              g.out + g.rows * g.outputs() == r.out &&
                              (g.rows == 1 || pitch == g.rows * g.pitch) &&
                              r.from2 - g.from2 == pitch * (g.kind == run_kind::zip);
            if (next) {
                if (g.rows == 1)
                    g.pitch = pitch;
                ++g.rows;
                return;
            }
        }
        segs.push_back(r);
    }

    // One sample, segment by segment.
    template <bool Affine>
    static void pass(const S* x, S* y, const std::vector<segment>& segs,
                     const affine_gather<S>& m) {
        for (const segment& g : segs) {
            const S* a = m.scale.data() + g.out;
            const S* c = m.shift.data() + g.out;
            switch (g.kind) {
            case run_kind::copy:
                rows<Affine, 1>(x + g.from, y + g.out, a, c, g);
                break;
            case run_kind::stride2:
                rows<Affine, 2>(x + g.from, y + g.out, a, c, g);
                break;
            case run_kind::zip:
                zip<Affine>(x + g.from, x + g.from2, y + g.out, a, c, g);
                break;
            case run_kind::single:
                for (index_t r = 0; r < g.rows; ++r)
                    y[g.out + r] =
                        Affine ? a[r] * x[g.from + r * g.pitch] + c[r] : x[g.from + r * g.pitch];
                break;
            }
        }
    }
    // The loops of one segment, apart and without aliasing, so that they vectorise (the
    // stride-2 reads and the interleaving as shuffles).
    template <bool Affine, int Stride>
    static void rows(const S* __restrict u, S* __restrict w, const S* __restrict a,
                     const S* __restrict c, const segment& g) {
        const index_t len = g.length, pitch = g.pitch;
        for (index_t r = 0; r < g.rows; ++r, u += pitch, w += len, a += len, c += len)
            for (index_t t = 0; t < len; ++t)
                w[t] = Affine ? a[t] * u[Stride * t] + c[t] : u[Stride * t];
    }
    template <bool Affine>
    static void zip(const S* __restrict u, const S* __restrict v, S* __restrict w,
                    const S* __restrict a, const S* __restrict c, const segment& g) {
        const index_t len = g.length, pitch = g.pitch;
        for (index_t r = 0; r < g.rows;
             ++r, u += pitch, v += pitch, w += 2 * len, a += 2 * len, c += 2 * len)
            for (index_t t = 0; t < len; ++t) {
                w[2 * t] = Affine ? a[2 * t] * u[t] + c[2 * t] : u[t];
                w[2 * t + 1] = Affine ? a[2 * t + 1] * v[t] + c[2 * t + 1] : v[t];
            }
    }

    affine_gather<S> work_; // the composition's other buffer (same size: swaps allocate nothing)
    std::vector<segment> segments_[2];
};

} // namespace inn::graph
