#pragma once
// A planned network: the bound modules of a plan, the buffers between them, and the public
// forward/inverse interface. SequenceINN and GraphINN are both descriptions (`Desc`) turned into
// this one class; `inverse_t<Net>` is the same class with the directions swapped.
//
// Desc provides
//   using nodes = std::tuple<node types...>;           // names and module specs
//   static constexpr graph_plan<N> plan;                // graph/plan.hpp
//   static std::string_view node_name(int node);        // for summaries and messages
//   static std::string default_prefix(int module);      // FrEIA state_dict prefix of a module

#include <algorithm>
#include <array>
#include <cstdint>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>

#include "../core/batch_io.hpp"
#include "../core/module.hpp"
#include "../core/parameters.hpp"
#include "../core/workspace.hpp"
#include "../nn/kernels.hpp"
#include "memory_plan.hpp"
#include "plan.hpp"
#include "thread_pool.hpp"

namespace inn {

/// Output tensors for `forward_into` / `inverse_into` of a network with several of them.
template <class... T>
struct outputs {
    std::tuple<T&...> items;
    constexpr explicit outputs(T&... t) : items(t...) {}
};
template <class... T>
outputs(T&...) -> outputs<T...>;

namespace detail {
template <class T>
inline constexpr bool is_inputs = false;
template <class... T>
inline constexpr bool is_inputs<inputs<T...>> = true;
template <class T>
inline constexpr bool is_conditions = false;
template <class... T>
inline constexpr bool is_conditions<conditions<T...>> = true;
template <class T>
inline constexpr bool is_outputs = false;
template <class... T>
inline constexpr bool is_outputs<outputs<T...>> = true;
}  // namespace detail

namespace graph {

template <class Desc, int K>
using module_spec_at =
    typename std::tuple_element_t<static_cast<std::size_t>(Desc::plan.forward_order[K]),
                                  typename Desc::nodes>::module;

template <Scalar S, class Desc, int K>
struct module_at_impl {
    // Named constant first: passing the array element straight as a class-type template
    // argument crashes GCC 12.
    static constexpr signature sig = Desc::plan.sig[Desc::plan.forward_order[K]];
    using type = typename module_spec_at<Desc, K>::template bind<S, sig>;
};
template <Scalar S, class Desc, int K>
using module_at = typename module_at_impl<S, Desc, K>::type;

template <Scalar S, class Desc, class Seq>
struct module_tuple;
template <Scalar S, class Desc, std::size_t... K>
struct module_tuple<S, Desc, std::index_sequence<K...>> {
    using type = std::tuple<module_at<S, Desc, static_cast<int>(K)>...>;
    static type make(generator& g) {
        // Braced initialisation evaluates left to right: modules draw from `g` in FrEIA's order.
        return type{module_at<S, Desc, static_cast<int>(K)>(g)...};
    }
};

template <class T, class Tuple>
struct index_in_impl;
template <class T, class... All>
struct index_in_impl<T, std::tuple<All...>> {
    static constexpr int value = [] {
        int i = 0, found = -1;
        ((std::is_same_v<T, All> ? (found = found < 0 ? i : found, ++i) : ++i), ...);
        return found;
    }();
};
/// Position of type T in a std::tuple of node types, -1 if absent.
template <class T, class Tuple>
constexpr int index_in() {
    return index_in_impl<T, Tuple>::value;
}

/// The shape of output `Slot` of `Node` (for an OutputNode: the shape it receives).
template <class Desc, class Node, int Slot>
struct node_output {
    static constexpr int i = index_in<Node, typename Desc::nodes>();
    static_assert(i >= 0, "inn: output_shape of a node that is not in this network");
    static constexpr dims value = Desc::plan.node[i].kind == node_kind::output
                                      ? Desc::plan.edge_shape[Desc::plan.edge_of(Desc::plan.node[i].in[0])]
                                      : Desc::plan.outs[i][Slot];
    using shape = shape_of<value>;
};

/// The bound modules and their buffers; runs the plan in either direction.
template <Scalar S, class Desc>
class executor {
public:
    static constexpr const auto& plan = Desc::plan;
    static constexpr int n_modules = plan.n_modules;
    using modules_type =
        typename module_tuple<S, Desc, std::make_index_sequence<std::size_t(n_modules)>>::type;

    explicit executor(generator& g)
        : modules_(module_tuple<S, Desc, std::make_index_sequence<std::size_t(n_modules)>>::make(g)) {}

    modules_type& modules() { return modules_; }
    const modules_type& modules() const { return modules_; }

    /// Sizes every buffer for `max_batch` samples: the only allocation of a network's life after
    /// construction (and set_threads).
    void reserve(index_t max_batch) {
        if (max_batch <= capacity_) return;
        // Every buffer starts on a 64-byte boundary, so results do not depend on where the
        // buffers happen to land (Eigen's kernels take different paths for aligned data).
        // The layout the switches ask for (all on unless a benchmark measures one off).
        const auto& t = nn::kernels::tuning();
        memory_ = &layouts[t.views ? 1 : 0][t.share_buffers ? 1 : 0];
        std::array<index_t, std::size_t(memory.max_edges)> region{};
        index_t total = 0;
        for (int c = 0; c < memory_->n_colours; ++c) {
            region[std::size_t(c)] = total;
            total += round_up(max_batch * memory_->width[c]);
        }
        for (int e = 0; e < plan.n_edges; ++e) {
            offset_[std::size_t(e)] =
                region[std::size_t(memory_->colour[memory_->root[e]])] + memory_->column[e];
            stride_[std::size_t(e)] = memory_->stride(e);
        }
        scratch_offset_ = total;
        // One scratch area per thread, each for the largest slice it can be given.
        const int parts = pool_.get().size();
        slice_scratch_ =
            round_up(scratch_size(parts > 1 ? slice_rows(max_batch, parts) : max_batch));
        total += slice_scratch_ * parts;
        buffer_.resize(total);
        capacity_ = max_batch;
    }
    index_t capacity() const { return capacity_; }

    /// Threads that split each batch between them (1: run on the calling thread only). The
    /// workers are created here and live as long as the network; a call creates no thread.
    void set_threads(int threads) {
        threads = std::max(1, threads);
        if (threads == pool_.get().size()) return;
        pool_.get().resize(threads);
        const index_t cap = capacity_;
        capacity_ = 0;
        if (cap > 0) reserve(cap);  // scratch for every thread
    }
    int threads() const { return pool_.get().size(); }

    static constexpr index_t scratch_size(index_t batch) {
        return [&]<std::size_t... K>(std::index_sequence<K...>) {
            index_t m = 0;
            ((m = std::max(m, scratch_size_of<module_at<S, Desc, int(K)>>(batch))), ...);
            return m;
        }(std::make_index_sequence<std::size_t(n_modules)>{});
    }

    view<S> edge(int e) {
        return {buffer_.data() + offset_[std::size_t(e)], stride_[std::size_t(e)]};
    }

    /// Whether threads may split a batch: no module declares `batch_parallel = false`.
    static constexpr bool batch_parallel = []<std::size_t... K>(std::index_sequence<K...>) {
        return (batch_parallel_of<module_at<S, Desc, int(K)>>() && ...);
    }(std::make_index_sequence<std::size_t(n_modules)>{});

    /// What each module declares of itself as a view, in forward order.
    static constexpr std::array<view_kind, std::size_t(n_modules)> views =
        []<std::size_t... K>(std::index_sequence<K...>) {
            return std::array<view_kind, std::size_t(n_modules)>{
                view_of<module_at<S, Desc, int(K)>>()...};
        }(std::make_index_sequence<std::size_t(n_modules)>{});
    /// Where the buffers between modules live (graph/memory_plan.hpp), computed at compile
    /// time; `layouts[views][sharing]` with either analysis off, for measuring them.
    static constexpr memory_plan<plan> memory{views.data(), true, true};
    static constexpr memory_plan<plan> layouts[2][2] = {
        {{views.data(), false, false}, {views.data(), false, true}},
        {{views.data(), true, false}, memory}};

    /// Runs every module; `ljd` (batch entries) must be zeroed by the caller. With threads, the
    /// batch is cut into one slice of rows per thread and each thread runs the whole plan on
    /// its slice, in its own scratch area (modules see a smaller batch; rows are independent).
    template <bool Forward>
    void run(index_t batch, bool jac, S* ljd) {
        const int parts = pool_.get().size();
        if (parts == 1 || !splittable(batch)) {
            run_rows<Forward>(0, batch, jac, ljd, scratch(0));
            return;
        }
        // Per-call state a module caches from its parameters is refreshed here, on this thread,
        // so that the slices only read it.
        for_each_module([](auto, auto& m) {
            if constexpr (requires { m.prepare(); }) m.prepare();
        });
        struct context {
            executor* self;
            index_t batch, rows;
            bool jac;
            S* ljd;
        } ctx{this, batch, slice_rows(batch, parts), jac, ljd};
        pool_.get().run(
            [](void* p, int part) {
                auto& c = *static_cast<context*>(p);
                const index_t b0 = std::min(c.batch, part * c.rows);
                const index_t n = std::min(c.batch - b0, c.rows);
                if (n > 0)
                    c.self->template run_rows<Forward>(b0, n, c.jac, c.ljd + b0,
                                                       c.self->scratch(part));
            },
            &ctx);
    }

    /// Applies `f(prefix_index, module)` to every module in forward order.
    template <class F>
    void for_each_module(F&& f) {
        [&]<std::size_t... K>(std::index_sequence<K...>) {
            (f(std::integral_constant<int, int(K)>{}, std::get<K>(modules_)), ...);
        }(std::make_index_sequence<std::size_t(n_modules)>{});
    }
    template <class F>
    void for_each_module(F&& f) const {
        [&]<std::size_t... K>(std::index_sequence<K...>) {
            (f(std::integral_constant<int, int(K)>{}, std::get<K>(modules_)), ...);
        }(std::make_index_sequence<std::size_t(n_modules)>{});
    }

private:
    static constexpr index_t round_up(index_t n) {
        constexpr index_t align = 64 / index_t(sizeof(S));
        return (n + align - 1) / align * align;
    }
    // Rows per slice: an equal share, in multiples of 16 rows (whole SIMD groups of the
    // sample-vectorised kernels) once the batch is large enough for that.
    static constexpr index_t slice_rows(index_t batch, int parts) {
        const index_t share = (batch + parts - 1) / parts;
        return batch >= 32 ? (share + 15) / 16 * 16 : share;
    }
    // Whether a batch is worth splitting and may be split: small samples need enough rows to
    // pay for the hand-off; modules that initialise themselves from the first batch (ActNorm)
    // must see it whole; a module may opt out with `batch_parallel = false`.
    bool splittable(index_t batch) {
        if constexpr (!batch_parallel) {
            return false;
        } else {
            constexpr index_t sample =
                plan.edge_shape[plan.n_inputs > 0 ? plan.input_edge[0] : 0].size();
            if (batch < 2 || (batch < 32 && sample < 256)) return false;
            bool waiting = false;
            for_each_module([&](auto, const auto& m) { waiting = waiting || awaits_data_init(m); });
            return !waiting;
        }
    }

    S* scratch(int part) { return buffer_.data() + scratch_offset_ + part * slice_scratch_; }
    /// Rows [b0, b0 + n) of edge e.
    view<S> edge_rows(int e, index_t b0) {
        const index_t stride = stride_[std::size_t(e)];
        return {buffer_.data() + offset_[std::size_t(e)] + b0 * stride, stride};
    }

    template <bool Forward>
    void run_rows(index_t b0, index_t batch, bool jac, S* ljd, S* scratch) {
        [&]<std::size_t... K>(std::index_sequence<K...>) {
            (step<Forward, int(K)>(b0, batch, jac, ljd, scratch), ...);
        }(std::make_index_sequence<std::size_t(n_modules)>{});
    }

    template <bool Forward, int Step>
    void step(index_t b0, index_t batch, bool jac, S* ljd, S* scratch) {
        constexpr int node = Forward ? plan.forward_order[Step] : plan.inverse_order[Step];
        constexpr int k = plan.module_index[node];
        constexpr const graph::node_info& n = plan.node[node];
        if (memory_->is_view[node]) return;  // its outputs are its inputs' memory
        constexpr int n_out = plan.outs[node].count;
        // The buffers this direction reads and writes: forward x -> z, inverse z -> x.
        constexpr int n_read = Forward ? n.n_in : n_out;
        constexpr int n_write = Forward ? n_out : n.n_in;
        std::array<cview<S>, std::size_t(n_read)> in;
        std::array<view<S>, std::size_t(n_write)> out;
        std::array<cview<S>, std::size_t(n.n_cond)> cond;
        for (int i = 0; i < n.n_in; ++i) {
            view<S> v = edge_rows(plan.edge_of(n.in[i]), b0);
            if constexpr (Forward)
                in[std::size_t(i)] = v;
            else
                out[std::size_t(i)] = v;
        }
        for (int s = 0; s < n_out; ++s) {
            view<S> v = edge_rows(plan.edge[node][s], b0);
            if constexpr (Forward)
                out[std::size_t(s)] = v;
            else
                in[std::size_t(s)] = v;
        }
        for (int c = 0; c < n.n_cond; ++c)
            cond[std::size_t(c)] = edge_rows(plan.edge_of(n.cond[c]), b0);
        run_args<S> args{batch, in, out, cond, ljd, jac, scratch};
        if constexpr (Forward)
            std::get<k>(modules_).forward(args);
        else
            std::get<k>(modules_).inverse(args);
    }

    // The pool is not copied with a network: a copy gets its own workers, as many.
    struct pool_holder {
        std::unique_ptr<thread_pool> p = std::make_unique<thread_pool>();
        pool_holder() = default;
        pool_holder(const pool_holder& o) : p(std::make_unique<thread_pool>(o.p->size())) {}
        pool_holder(pool_holder&&) noexcept = default;
        pool_holder& operator=(const pool_holder& o) {
            if (this != &o) p->resize(o.p->size());
            return *this;
        }
        pool_holder& operator=(pool_holder&&) noexcept = default;
        thread_pool& get() const { return *p; }
    };

    modules_type modules_;
    aligned_buffer<S> buffer_;
    std::array<index_t, std::size_t(plan.n_edges) + 1> offset_{};
    std::array<index_t, std::size_t(plan.n_edges) + 1> stride_{};
    const memory_plan<plan>* memory_ = &memory;
    index_t scratch_offset_ = 0;
    index_t slice_scratch_ = 0;
    index_t capacity_ = 0;
    pool_holder pool_;
};

}  // namespace graph

/// The result of `forward`: the outputs (one matrix, or an array for several) and log|det J|.
template <class Z, Scalar S>
struct forward_result {
    Z z;
    vector<S> log_jac_det;
};
/// The result of `inverse`: the reconstructed inputs and the inverse's log|det| (= -forward's).
template <class X, Scalar S>
struct inverse_result {
    X x;
    vector<S> log_jac_det;
};

/// An invertible network planned from `Desc`. With `Reversed`, forward and inverse swap roles
/// (`inverse_t<Net>`): a sampler that holds the same parameters and runs only the inverse code.
template <Scalar S, class Desc, bool Reversed = false>
class network {
    static constexpr const auto& plan = Desc::plan;

public:
    using scalar = S;
    using description = Desc;
    using inverse_type = network<S, Desc, !Reversed>;
    template <Scalar T>
    using with_scalar = network<T, Desc, Reversed>;

    static constexpr int n_inputs = Reversed ? plan.n_outputs : plan.n_inputs;
    static constexpr int n_outputs = Reversed ? plan.n_inputs : plan.n_outputs;
    static constexpr int n_conditions = plan.n_conditions;
    static constexpr int n_modules = plan.n_modules;

    /// Shape of input `i` / output `i` / condition `j` (per sample).
    static constexpr dims input_dims(int i = 0) { return plan.edge_shape[input_edge(i)]; }
    static constexpr dims output_dims(int i = 0) { return plan.edge_shape[output_edge(i)]; }
    static constexpr dims condition_dims(int j = 0) { return plan.edge_shape[plan.condition_edge[j]]; }

    /// The shape of a node's output, as a `Shape<...>`:
    /// `static_assert(Net::output_shape<output2> == Shape<70>{})`. For an OutputNode, the shape it
    /// receives.
    template <class Node, int Slot = 0>
    static constexpr auto output_shape = typename graph::node_output<Desc, Node, Slot>::shape{};

    /// Whether the whole network inverts exactly, iteratively or only approximately.
    static constexpr inverse_kind inversion = []<std::size_t... K>(std::index_sequence<K...>) {
        inverse_kind r = inverse_kind::exact;
        ((r = combine(r, inversion_of<graph::module_at<S, Desc, int(K)>>())), ...);
        return r;
    }(std::make_index_sequence<std::size_t(n_modules)>{});

    /// Parameters initialised as FrEIA's modules and PyTorch's layers would, from `seed`.
    explicit network(std::uint64_t seed = 0) : network(generator(seed)) {}
    explicit network(generator g) : exec_(g) {
        for (int k = 0; k < n_modules; ++k) prefix_[std::size_t(k)] = Desc::default_prefix(k);
    }
    /// The same parameters seen from the other direction.
    explicit network(const inverse_type& other) : exec_(other.executor()), prefix_(other.prefixes()) {}

    /// Reserves buffers for batches up to `max_batch`; afterwards calls do not allocate (except
    /// the convenience overloads that return new matrices) and a larger batch is an error.
    /// Without it, the buffers grow to the largest batch seen.
    void reserve(index_t max_batch) {
        exec_.reserve(max_batch);
        reserved_ = true;
    }
    index_t capacity() const { return exec_.capacity(); }
    /// Splits every large enough batch across `threads` threads (the caller's and threads - 1
    /// persistent workers, created here): each runs the network on its share of the rows in
    /// its own scratch area, so calls still neither allocate nor create threads. Default 1.
    void set_threads(int threads) { exec_.set_threads(threads); }
    /// False when a module must see whole batches (IResNetLayer): then every call runs on the
    /// calling thread whatever set_threads says.
    static constexpr bool batch_parallel = graph::executor<S, Desc>::batch_parallel;
    int threads() const { return exec_.threads(); }
    /// Bytes of the workspace for a batch of `batch` on one thread: the buffers between modules
    /// (shared where their lifetimes allow, see graph::memory_plan) and the scratch.
    static constexpr index_t workspace_bytes(index_t batch) {
        const index_t n = graph::executor<S, Desc>::memory.shared_size();
        return index_t(sizeof(S)) * (n * batch + graph::executor<S, Desc>::scratch_size(batch));
    }
    /// Bytes of all buffers between modules for `batch` if none shared memory (the naive sum of
    /// every intermediate tensor).
    static constexpr index_t unshared_buffer_bytes(index_t batch) {
        return index_t(sizeof(S)) * graph::executor<S, Desc>::memory.naive_size() * batch;
    }

    // ---- running -------------------------------------------------------------------------------
    // x: one tensor or `inputs(x1, x2, ...)`; then optionally `conditions(c...)` and `jac`.

    template <class X, class... Rest>
    auto forward(const X& x, const Rest&... rest) {
        return run_owned<!Reversed>(x, rest...);
    }
    template <class Z, class... Rest>
    auto inverse(const Z& z, const Rest&... rest) {
        return run_owned<Reversed>(z, rest...);
    }
    /// Allocation-free forms: write into `out` (one tensor or `outputs(...)`) and `log_jac_det`
    /// (a vector or span of `batch` values).
    template <class X, class Out, class L, class... Rest>
    void forward_into(const X& x, Out&& out, L&& log_jac_det, const Rest&... rest) {
        run_into<!Reversed>(x, out, log_jac_det, rest...);
    }
    template <class Z, class Out, class L, class... Rest>
    void inverse_into(const Z& z, Out&& out, L&& log_jac_det, const Rest&... rest) {
        run_into<Reversed>(z, out, log_jac_det, rest...);
    }

    // ---- parameters ----------------------------------------------------------------------------

    /// Calls `visitor(key, tensor_ref)` for every state_dict entry, keys as FrEIA's.
    template <class V>
    void visit(V&& visitor) {
        exec_.for_each_module([&](auto k, auto& m) {
            visit_tensors(m, visitor, prefix_[std::size_t(k.value)] + ".");
        });
    }
    /// The state_dict prefix of module `k` (forward order), default `module_list.<k>`. Graphs
    /// from FrEIA may need the explicit mapping the exporter records (spec §8.10).
    const std::string& state_dict_prefix(int k) const { return prefix_.at(std::size_t(k)); }
    void set_state_dict_prefix(int k, std::string prefix) { prefix_.at(std::size_t(k)) = std::move(prefix); }
    const std::array<std::string, std::size_t(n_modules)>& prefixes() const { return prefix_; }
    /// Sets the prefix of the module of `Node` (a GraphINN node type).
    template <class Node>
    void set_state_dict_prefix(std::string prefix) {
        constexpr int i = graph::index_in<Node, typename Desc::nodes>();
        static_assert(i >= 0 && plan.node[i < 0 ? 0 : i].kind == node_kind::module,
                      "inn: set_state_dict_prefix<Node>: Node is not a module node of this network");
        prefix_[std::size_t(plan.module_index[i])] = std::move(prefix);
    }
    /// The name of the node that holds module `k` (forward order).
    static std::string module_node_name(int k) {
        return std::string(Desc::node_name(plan.forward_order[k]));
    }

    /// Number of scalars in learned parameters (FrEIA: sum of p.numel() for requires_grad).
    std::int64_t parameter_count() {
        std::int64_t n = 0;
        visit([&](const std::string&, const tensor_ref<S>& t) {
            if (t.trainable) n += t.shape.numel();
        });
        return n;
    }

    /// FrEIA's verbose print: nodes in execution order with shapes and parameter counts.
    std::string summary() {
        std::ostringstream os;
        os << (Reversed ? "inverse of " : "") << "network: " << n_inputs << " input(s), "
           << n_outputs << " output(s), " << n_conditions << " condition(s), " << n_modules
           << " module(s)\n";
        std::array<std::int64_t, std::size_t(n_modules) + 1> counts{};
        exec_.for_each_module([&](auto k, auto& m) {
            visit_tensors(m,
                          [&](const std::string&, const tensor_ref<S>& t) {
                              if (t.trainable) counts[std::size_t(k.value)] += t.shape.numel();
                          },
                          std::string());
        });
        for (int step = 0; step < n_modules; ++step) {
            int node = Reversed ? plan.inverse_order[step] : plan.forward_order[step];
            int k = plan.module_index[node];
            os << "  " << prefix_[std::size_t(k)] << "  " << Desc::node_name(node) << ": ";
            const signature& sig = plan.sig[node];
            auto list = [&](const port_list& p) {
                std::string s = "[";
                for (int i = 0; i < p.count; ++i) s += (i ? ", " : "") + to_string(p[i]);
                return s + "]";
            };
            os << (Reversed ? list(plan.outs[node]) : list(sig.inputs)) << " -> "
               << (Reversed ? list(sig.inputs) : list(plan.outs[node]));
            if (sig.conditions.count) os << " | conditions " << list(sig.conditions);
            os << "  params " << counts[std::size_t(k)] << "\n";
        }
        std::int64_t total = 0;
        for (auto c : counts) total += c;
        os << "  total trainable parameters: " << total << "\n";
        return os.str();
    }

    graph::executor<S, Desc>& executor() { return exec_; }
    const graph::executor<S, Desc>& executor() const { return exec_; }
    /// The bound module at forward position k.
    template <int K>
    auto& module() {
        return std::get<K>(exec_.modules());
    }

private:
    static constexpr int input_edge(int i) {
        return Reversed ? plan.output_edge[i] : plan.input_edge[i];
    }
    static constexpr int output_edge(int i) {
        return Reversed ? plan.input_edge[i] : plan.output_edge[i];
    }
    template <class X>
    static auto as_tuple(const X& x) {
        if constexpr (detail::is_inputs<X>)
            return x.items;
        else
            return std::tuple<const X&>(x);
    }

    // Reads the optional trailing arguments: conditions(...) and a jac flag.
    static std::tuple<> conditions_of() { return {}; }
    template <class R, class... Rs>
    static auto conditions_of(const R& r, const Rs&... rs) {
        if constexpr (detail::is_conditions<R>)
            return r.items;
        else
            return conditions_of(rs...);
    }
    template <class... Rest>
    static bool jac_of(const Rest&... rest) {
        bool jac = true;
        ((std::is_same_v<Rest, bool> ? (void)(jac = bool_value(rest)) : (void)0), ...);
        return jac;
    }
    template <class R>
    static bool bool_value(const R& r) {
        if constexpr (std::is_same_v<R, bool>)
            return r;
        else
            return true;
    }

    // Checks the inputs' and conditions' sizes, then `check_destinations(batch)`, and only then
    // (nothing has been touched if one throws) copies them in; returns the batch size.
    template <bool Forward, class XT, class CT, class Check>
    index_t load(const XT& xs, const CT& cs, Check&& check_destinations) {
        static_assert(std::tuple_size_v<XT> == std::size_t(Forward ? plan.n_inputs : plan.n_outputs),
                      "inn: wrong number of input tensors for this network (use inputs(...))");
        static_assert(std::tuple_size_v<CT> == std::size_t(n_conditions),
                      "inn: wrong number of condition tensors for this network (use conditions(...))");
        index_t batch = -1;
        std::array<batch_source<S>, std::tuple_size_v<XT>> xsrc;
        std::array<batch_source<S>, std::tuple_size_v<CT>> csrc;
        auto reading = [&](int i) {  // in this call's direction: buffer and node name
            int e = Forward ? plan.input_edge[i] : plan.output_edge[i];
            return std::pair{e, Desc::node_name(Forward ? plan.input_node[i] : plan.output_node[i])};
        };
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((xsrc[I] = [&] {
                 auto [e, name] = reading(int(I));
                 return source_of<S>(std::get<I>(xs), plan.edge_shape[e], "input", name);
             }()),
             ...);
        }(std::make_index_sequence<std::tuple_size_v<XT>>{});
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((csrc[I] = source_of<S>(std::get<I>(cs), plan.edge_shape[plan.condition_edge[I]],
                                     "condition", Desc::node_name(plan.condition_node[I]))),
             ...);
        }(std::make_index_sequence<std::tuple_size_v<CT>>{});
        // Messages are only built on failure: no string work on the hot path.
        auto check = [&](const batch_source<S>& s, const char* what, std::string_view name) {
            if (batch < 0) batch = s.batch;
            auto fail = [&](const std::string& problem) {
                throw data_error("inn: " + std::string(what) + " '" + std::string(name) + "' " +
                                 problem);
            };
            if (s.batch != batch)
                fail("has batch " + std::to_string(s.batch) + ", the first input has " +
                     std::to_string(batch));
            if (reserved_ && batch > capacity())
                fail("has batch " + std::to_string(batch) + ", more than the " +
                     std::to_string(capacity()) + " reserved (call reserve())");
        };
        for (std::size_t i = 0; i < xsrc.size(); ++i) check(xsrc[i], "input", reading(int(i)).second);
        for (std::size_t j = 0; j < csrc.size(); ++j)
            check(csrc[j], "condition", Desc::node_name(plan.condition_node[j]));
        check_destinations(batch);
        // Without an explicit reserve() the buffers follow the largest batch seen; after one, a
        // larger batch is an error (above) rather than a hidden allocation.
        if (batch > capacity()) exec_.reserve(batch);
        for (std::size_t i = 0; i < xsrc.size(); ++i) {
            int e = reading(int(i)).first;
            copy_in(xsrc[i], plan.edge_shape[e].size(), exec_.edge(e));
        }
        for (std::size_t j = 0; j < csrc.size(); ++j) {
            int e = plan.condition_edge[j];
            copy_in(csrc[j], plan.edge_shape[e].size(), exec_.edge(e));
        }
        return batch;
    }

    template <bool Forward, class X, class... Rest>
    auto run_owned(const X& x, const Rest&... rest) {
        auto cs = conditions_of(rest...);
        index_t batch = load<Forward>(as_tuple(x), cs, [](index_t) {});
        constexpr int n_written = Forward ? plan.n_outputs : plan.n_inputs;
        vector<S> ljd = vector<S>::Zero(batch);
        exec_.template run<Forward>(batch, jac_of(rest...), ljd.data());
        auto fetch = [&](int i) {
            int e = Forward ? plan.output_edge[i] : plan.input_edge[i];
            return row_matrix<S>(exec_.edge(e).matrix(batch, plan.edge_shape[e].size()));
        };
        if constexpr (n_written == 1) {
            if constexpr (Forward == !Reversed)
                return forward_result<row_matrix<S>, S>{fetch(0), std::move(ljd)};
            else
                return inverse_result<row_matrix<S>, S>{fetch(0), std::move(ljd)};
        } else {
            std::array<row_matrix<S>, std::size_t(n_written)> outs;
            for (int i = 0; i < n_written; ++i) outs[std::size_t(i)] = fetch(i);
            if constexpr (Forward == !Reversed)
                return forward_result<decltype(outs), S>{std::move(outs), std::move(ljd)};
            else
                return inverse_result<decltype(outs), S>{std::move(outs), std::move(ljd)};
        }
    }

    template <bool Forward, class X, class Out, class L, class... Rest>
    void run_into(const X& x, Out& out, L& log_jac_det, const Rest&... rest) {
        auto cs = conditions_of(rest...);
        constexpr int n_written = Forward ? plan.n_outputs : plan.n_inputs;
        auto outs = [&] {
            if constexpr (detail::is_outputs<Out>)
                return out.items;
            else
                return std::tuple<Out&>(out);
        }();
        static_assert(std::tuple_size_v<decltype(outs)> == std::size_t(n_written),
                      "inn: wrong number of output tensors (use outputs(...))");
        auto written = [](int i) {  // in this call's direction: buffer, shape and node name
            int e = Forward ? plan.output_edge[i] : plan.input_edge[i];
            return std::tuple{e, plan.edge_shape[e],
                              Desc::node_name(Forward ? plan.output_node[i] : plan.input_node[i])};
        };
        // Every destination is checked before anything is loaded, resized, run or written: a
        // refused call leaves the network and all its arguments as they were.
        std::array<sink_plan<S>, std::size_t(n_written)> plans;
        sink_plan<S> ljd_plan;
        const index_t batch = load<Forward>(as_tuple(x), cs, [&](index_t b) {
            [&]<std::size_t... I>(std::index_sequence<I...>) {
                ((plans[I] = [&] {
                     auto [e, d, name] = written(int(I));
                     return plan_sink<S>(std::get<I>(outs), b, d, "output", name);
                 }()),
                 ...);
            }(std::make_index_sequence<std::size_t(n_written)>{});
            ljd_plan = plan_log_jac_det<S>(log_jac_det, b);
        });
        std::array<batch_sink<S>, std::size_t(n_written)> sinks;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((sinks[I] = bind_sink<S>(std::get<I>(outs), plans[I], batch,
                                      std::get<1>(written(int(I))))),
             ...);
        }(std::make_index_sequence<std::size_t(n_written)>{});
        S* ljd = bind_log_jac_det<S>(log_jac_det, ljd_plan, batch);
        std::fill(ljd, ljd + batch, S(0));
        exec_.template run<Forward>(batch, jac_of(rest...), ljd);
        for (int i = 0; i < n_written; ++i) {
            const int e = std::get<0>(written(i));
            copy_out(cview<S>(exec_.edge(e)), batch, plan.edge_shape[e].size(),
                     sinks[std::size_t(i)]);
        }
    }

    graph::executor<S, Desc> exec_;
    std::array<std::string, std::size_t(n_modules)> prefix_;
    bool reserved_ = false;
};

/// The inverse of a network as a network of its own: `using Sampler = inverse_t<Net>;`.
template <class Net>
using inverse_t = typename Net::inverse_type;

}  // namespace inn
