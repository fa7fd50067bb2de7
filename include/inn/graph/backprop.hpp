#pragma once
// The training executor: a forward pass that keeps what the backward pass needs, then the
// backward pass through every module, walking the plan's inverse order. It runs the network's
// own bound modules (graph/executor.hpp) in buffers of its own, so a network can train and
// infer side by side.
//
// What backward needs of each module is its input x and output y (core/module.hpp:
// backward_args). Two ways to have x at hand when the walk reaches the module:
//
//  * store: every buffer keeps its forward value (a memory plan without sharing, every edge
//    kept: a view applies only where it overwrites no kept value). Memory grows linearly with
//    depth.
//  * recompute: the forward pass runs in shared buffers like inference; walking back, each
//    module first recomputes its input from its output through its inverse, then runs its
//    backward — the idea of i-RevNet and memcnn. The walk is the inverse pass interleaved with
//    backward steps, so the inverse pass's memory plan holds the values, and memory stays flat
//    in depth. Modules whose inverse is not exact (IResNetLayer, InvAutoFC) keep their inputs
//    from the forward pass instead (the memory plan's `keep`).
//
// Gradients of the buffers live in a second set of regions laid out like the inverse pass's
// (a gradient is needed from the backward step of the buffer's consumer to that of its
// producer, which is exactly the inverse order's live range). A module that is a view in
// forward is a view of gradients too, and its backward step is skipped. Conditions collect the
// gradients of every module they condition; the plan's inverse order puts all of them before
// the module that produced the condition (graph/plan.hpp).
//
// Parameter gradients go into one arena per thread: thread t adds into copy t (the modules'
// `grad_of(p)` with `grad_shift = t * size`); afterwards the copies are added into copy 0 in
// thread order, so results do not depend on which thread finished first.

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <boost/hana/fold_left.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/unpack.hpp>

#include "../core/errors.hpp"
#include "../core/module.hpp"
#include "../core/workspace.hpp"
#include "executor.hpp"
#include "network.hpp"  // executor_of, for the trainer

namespace inn::train {

/// How the backward pass gets each module's input: kept from the forward pass, or recomputed
/// from its output through the inverse (memory flat in depth).
enum class memory_mode { store, recompute };
inline constexpr memory_mode store = memory_mode::store;
inline constexpr memory_mode recompute = memory_mode::recompute;

}  // namespace inn::train

namespace inn::error {

template <class Node, class ModuleSpec>
struct module_has_no_backward {
    static_assert(check_failed<Node, ModuleSpec>,
                  "inn: the module of the node named above has no `void backward(const "
                  "backward_args<S>&) const` member (inn::DifferentiableModule; note the const), "
                  "so a network that contains it cannot be trained");
};

}  // namespace inn::error

namespace inn::graph {

template <Scalar S, class Desc>
class backprop {
    using exec_t = executor<S, Desc>;
    static constexpr const auto& plan = Desc::plan;
    static constexpr int n_modules = plan.n_modules;
    static constexpr int max_edges = exec_t::memory.max_edges;

    // The inputs of modules whose inverse is not exact: kept through the forward pass.
    static constexpr std::array<bool, std::size_t(max_edges)> kept = [] {
        std::array<bool, std::size_t(max_edges)> keep{};
        hana::for_each(module_positions<Desc>, [&](auto k) {
            constexpr int node = plan.forward_order[decltype(k)::value];
            if constexpr (inversion_of<module_at<S, Desc, decltype(k)::value>>() !=
                          inverse_kind::exact)
                for (int i = 0; i < plan.node[node].n_in; ++i)
                    keep[std::size_t(plan.edge_of(plan.node[node].in[i]))] = true;
        });
        return keep;
    }();

    // Each module must be differentiable; a reporter names the node that is not.
    template <int K>
    static constexpr bool check_differentiable() {
        using B = module_at<S, Desc, K>;
        if constexpr (DifferentiableModule<B, S>) {
            return true;
        } else {
            (void)error::module_has_no_backward<node_at<Desc, K>, module_spec_at<Desc, K>>{};
            return false;
        }
    }

    // Store mode: every edge holds its forward value until the backward walk. The memory plan
    // must know it, else a view may lay an edge over one that is dead for inference but still
    // needed here (Split -> modules -> Concat put the last module's output over the first one's
    // input).
    static constexpr std::array<bool, std::size_t(max_edges)> all_kept = [] {
        std::array<bool, std::size_t(max_edges)> keep{};
        keep.fill(true);
        return keep;
    }();

  public:
    static constexpr memory_plan<plan> store_values{exec_t::views.data(), true, false, all_kept};
    static constexpr memory_plan<plan> recompute_values{exec_t::views.data(), true, true, kept};
    /// The gradients are laid out like the inverse pass (a function: nvcc rejects a static
    /// reference member here).
    static constexpr const memory_plan<plan>& gradients() { return exec_t::memory; }

    /// Whether every module can be differentiated; checked when a trainer is made.
    static constexpr bool differentiable = hana::unpack(module_positions<Desc>, [](auto... k) {
        return (check_differentiable<decltype(k)::value>() && ...);
    });

    explicit backprop(train::memory_mode mode) : mode_(mode) {}

    train::memory_mode mode() const { return mode_; }
    const memory_plan<plan>& values_layout() const {
        return mode_ == train::store ? store_values : recompute_values;
    }

    /// Sizes every buffer for `max_batch` samples on `threads` threads, and the parameter
    /// gradient arena for `n_params` scalars (one copy per thread).
    void reserve(index_t max_batch, int threads, index_t n_params) {
        if (max_batch <= capacity_ && threads == threads_ && n_params == params_) return;
        capacity_ = std::max(max_batch, capacity_);
        threads_ = threads;
        params_ = n_params;
        index_t total = 0;
        place(values_layout(), value_offset_, value_stride_, total);
        if (mode_ == train::store)  // and what modules keep from forward for their backward
            for (std::size_t k = 0; k < saved_width.size(); ++k) {
                saved_offset_[k] = total;
                total += round_up(capacity_ * saved_width[k]);
            }
        value_bytes_ = total;
        place(gradients(), grad_offset_, grad_stride_, total);
        ljd_offset_ = total;
        total += 2 * round_up(capacity_);  // log|det J| and its gradient per sample
        scratch_offset_ = total;
        const index_t rows = threads > 1 ? exec_t::slice_rows(capacity_, threads) : capacity_;
        dummy_offset_ = round_up(scratch_size(rows));  // then a log-det for recomputing inverses
        slice_scratch_ = dummy_offset_ + round_up(rows);
        total += slice_scratch_ * threads;
        buffer_.resize(total);
        arena_.resize(std::max<index_t>(1, n_params * threads));
    }
    index_t capacity() const { return capacity_; }
    /// Bytes of the value and gradient buffers, log-dets and scratch: what a training step
    /// needs beyond the parameters and their gradients.
    index_t workspace_bytes() const { return index_t(sizeof(S)) * buffer_.size(); }
    /// Bytes of the value buffers alone (what the memory mode decides).
    index_t value_bytes() const { return index_t(sizeof(S)) * value_bytes_; }

    /// Copy 0 of the parameter gradients (`params` scalars); the trainer attaches the
    /// parameters' gradient pointers to it.
    S* parameter_gradients() { return arena_.data(); }

    view<S> value(int e) {
        return {buffer_.data() + value_offset_[std::size_t(e)], value_stride_[std::size_t(e)]};
    }
    view<S> gradient(int e) {
        return {buffer_.data() + grad_offset_[std::size_t(e)], grad_stride_[std::size_t(e)]};
    }
    S* log_jac_det() { return buffer_.data() + ljd_offset_; }
    S* log_jac_det_gradient() { return buffer_.data() + ljd_offset_ + round_up(capacity_); }

    /// The forward pass on the values already copied into value(input edges) and
    /// value(condition edges); log_jac_det() gets the sum. Modules that initialise themselves
    /// from data do so here (whole batch, this thread; undone if the pass fails).
    void forward(exec_t& exec, index_t batch) {
        std::fill(log_jac_det(), log_jac_det() + batch, S(0));
        if (exec.pending_initialisation()) {
            std::vector<tensor_snapshot<S>> undo;
            try {
                for_steps([&](auto k) { forward_step<int(k), true>(exec, 0, batch, scratch(0), &undo); });
            } catch (...) {
                for (auto it = undo.rbegin(); it != undo.rend(); ++it) it->restore();
                throw;
            }
            exec.initialisation_done();
            return;
        }
        in_slices(exec, batch, [&](index_t b0, index_t n, int part) {
            for_steps([&](auto k) { forward_step<int(k), false>(exec, b0, n, scratch(part), nullptr); });
        });
    }

    /// The backward pass, after forward(): the caller has written dL/dz into gradient(output
    /// edges) and dL/d(log|det J|) into log_jac_det_gradient(). Afterwards gradient(input and
    /// condition edges) hold dL/dx and dL/dc, and copy 0 of the arena holds dL/dθ (added to what
    /// was there: the trainer zeroes it first).
    void backward(exec_t& exec, index_t batch) {
        for (int j = 0; j < plan.n_conditions; ++j) zero_rows(gradient(plan.condition_edge[j]), batch, plan.condition_edge[j]);
        zero_internal_condition_gradients(batch);
        for (int t = 1; t < threads_; ++t)
            std::fill(arena_.data() + t * params_, arena_.data() + (t + 1) * params_, S(0));
        in_slices(exec, batch, [&](index_t b0, index_t n, int part) {
            for_steps([&](auto k) { backward_step<int(k)>(exec, b0, n, scratch(part), part * params_); });
        });
        // Thread copies added into copy 0 in thread order: deterministic.
        for (int t = 1; t < threads_; ++t) {
            const S* src = arena_.data() + t * params_;
            S* dst = arena_.data();
            for (index_t i = 0; i < params_; ++i) dst[i] += src[i];
        }
    }

  private:
    static constexpr index_t round_up(index_t n) {
        constexpr index_t align = 64 / index_t(sizeof(S));
        return (n + align - 1) / align * align;
    }

    // Offsets and strides of every edge in one layout, appended at `total`.
    void place(const memory_plan<plan>& m, std::array<index_t, std::size_t(max_edges) + 1>& offset,
               std::array<index_t, std::size_t(max_edges) + 1>& stride, index_t& total) const {
        std::array<index_t, std::size_t(max_edges)> region{};
        for (int c = 0; c < m.n_colours; ++c) {
            region[std::size_t(c)] = total;
            total += round_up(capacity_ * m.width[c]);
        }
        for (int e = 0; e < plan.n_edges; ++e) {
            offset[std::size_t(e)] = region[std::size_t(m.colour[m.root[e]])] + m.column[e];
            stride[std::size_t(e)] = m.stride(e);
        }
    }

    static constexpr index_t scratch_size(index_t batch) {
        return hana::fold_left(exec_t::module_types, index_t(0), [&](index_t m, auto t) {
            using B = typename decltype(t)::type;
            return std::max({m, scratch_size_of<B>(pass::forward, batch),
                             scratch_size_of<B>(pass::inverse, batch),
                             scratch_size_of<B>(pass::backward, batch)});
        });
    }

    S* scratch(int part) { return buffer_.data() + scratch_offset_ + part * slice_scratch_; }

    // Store mode: the scalars per sample each module keeps from its forward for its backward
    // (run_args::saved), by module index; where module `k` keeps those of sample b0.
    static constexpr auto saved_width = hana::unpack(module_positions<Desc>, [](auto... k) {
        return std::array<index_t, sizeof...(k)>{
            saved_per_sample_of<module_at<S, Desc, decltype(k)::value>>()...};
    });
    S* saved_rows(int k, index_t b0) {
        const index_t w = saved_width[std::size_t(k)];
        if (mode_ != train::store || w == 0) return nullptr;
        return buffer_.data() + saved_offset_[std::size_t(k)] + b0 * w;
    }

    template <class F>
    static void for_steps(F&& f) {
        hana::for_each(module_positions<Desc>, f);
    }

    // Runs f(first sample, samples, part) on one slice per thread (or the whole batch).
    template <class F>
    void in_slices(exec_t& exec, index_t batch, F&& f) {
        thread_pool* pool = exec.pool();
        if (threads_ == 1 || !pool || pool->size() != threads_ || !exec_t::splittable(batch)) {
            f(0, batch, 0);
            return;
        }
        struct context {
            F* f;
            index_t batch, rows;
        } ctx{&f, batch, exec_t::slice_rows(batch, threads_)};
        pool->run(
            [](void* p, int part) {
                auto& c = *static_cast<context*>(p);
                const index_t b0 = std::min(c.batch, part * c.rows);
                const index_t n = std::min(c.batch - b0, c.rows);
                if (n > 0) (*c.f)(b0, n, part);
            },
            &ctx);
    }

    view<S> value_rows(int e, index_t b0) {
        const view<S> v = value(e);
        return {v.data + b0 * v.stride, v.stride};
    }
    view<S> gradient_rows(int e, index_t b0) {
        const view<S> v = gradient(e);
        return {v.data + b0 * v.stride, v.stride};
    }
    void zero_rows(view<S> v, index_t batch, int e) {
        const index_t n = plan.edge_shape[e].size();
        for (index_t b = 0; b < batch; ++b) std::fill(v.row(b), v.row(b) + n, S(0));
    }
    // Buffers produced by a module and read as conditions collect gradients by addition too:
    // zeroed before the walk (their consumer as an input writes, the condition readers add).
    void zero_internal_condition_gradients(index_t batch) {
        for (int e = 0; e < plan.n_edges; ++e)
            if (internal_condition[std::size_t(e)]) zero_rows(gradient(e), batch, e);
    }
    static constexpr std::array<bool, std::size_t(max_edges)> internal_condition = [] {
        std::array<bool, std::size_t(max_edges)> r{};
        for (int i = 0; i < int(std::size(plan.node)); ++i) {
            const node_info& n = plan.node[i];
            if (n.kind != node_kind::module) continue;
            for (int c = 0; c < n.n_cond; ++c)
                if (plan.node[n.cond[c].node].kind != node_kind::condition)
                    r[std::size_t(plan.edge_of(n.cond[c]))] = true;
        }
        return r;
    }();

    template <int Step, bool Initialising>
    void forward_step(exec_t& exec, index_t b0, index_t batch, S* scratch,
                      std::vector<tensor_snapshot<S>>* undo) {
        constexpr int node = plan.forward_order[Step];
        if (values_layout().is_view[node]) return;
        const auto t = exec_t::template node_tensors<node, true>([&](int e) { return value_rows(e, b0); });
        run_args<S> r{batch, t.in, t.out, t.cond, log_jac_det() + b0, true, scratch, b0};
        r.saved = saved_rows(plan.module_index[node], b0);
        exec.template call<node, true, Initialising>(r, undo);
    }

    // Step K of the walk back: recompute the module's inputs (recompute mode, exact modules),
    // then its backward.
    template <int Step>
    void backward_step(exec_t& exec, index_t b0, index_t batch, S* scratch, index_t grad_shift) {
        constexpr int node = plan.inverse_order[Step];
        constexpr int k = plan.module_index[node];
        using B = module_at<S, Desc, k>;
        const memory_plan<plan>& values = values_layout();
        if (mode_ == train::recompute && !values.is_view[node] &&
            inversion_of<B>() == inverse_kind::exact) {
            const auto t = exec_t::template node_tensors<node, false>([&](int e) { return value_rows(e, b0); });
            S* dummy_ljd = scratch + dummy_offset_;
            std::fill(dummy_ljd, dummy_ljd + batch, S(0));
            exec.template call<node, false>({batch, t.in, t.out, t.cond, dummy_ljd, false, scratch, b0});
        }
        if (gradients().is_view[node]) return;  // its gradients are its neighbours' memory
        const auto v = exec_t::template node_tensors<node, true>([&](int e) { return value_rows(e, b0); });
        const auto g = exec_t::template node_tensors<node, true>([&](int e) { return gradient_rows(e, b0); });
        // Range-for: an index loop over a module's zero conditions compares with zero (nvcc #186).
        std::array<view<S>, v.in.size()> grad_in;
        for (std::size_t i = 0; view<S>& d : grad_in) {
            d = {const_cast<S*>(g.in[i].data), g.in[i].stride};
            ++i;
        }
        std::array<view<S>, v.cond.size()> grad_cond;
        for (std::size_t i = 0; view<S>& d : grad_cond) {
            d = {const_cast<S*>(g.cond[i].data), g.cond[i].stride};
            ++i;
        }
        std::array<cview<S>, v.out.size()> y, grad_out;
        for (std::size_t i = 0; i < y.size(); ++i) {
            y[i] = v.out[i];
            grad_out[i] = g.out[i];
        }
        backward_args<S> a;
        a.batch = batch;
        a.in = v.in;
        a.out = y;
        a.cond = v.cond;
        a.grad_out = grad_out;
        a.grad_ljd = log_jac_det_gradient() + b0;
        a.grad_in = grad_in;
        a.grad_cond = grad_cond;
        a.scratch = scratch;
        a.saved = saved_rows(k, b0);
        a.grad_shift = grad_shift;
        a.first_sample = b0;
        exec.template module_of<node>().backward(a);
    }

    train::memory_mode mode_;
    aligned_buffer<S> buffer_;
    std::vector<S> arena_;
    std::array<index_t, std::size_t(max_edges) + 1> value_offset_{}, value_stride_{};
    std::array<index_t, std::size_t(max_edges) + 1> grad_offset_{}, grad_stride_{};
    index_t value_bytes_ = 0, ljd_offset_ = 0, scratch_offset_ = 0, slice_scratch_ = 0;
    index_t dummy_offset_ = 0;
    std::array<index_t, saved_width.size()> saved_offset_{};
    index_t capacity_ = 0, params_ = 0;
    int threads_ = 0;
};

}  // namespace inn::graph
