#pragma once
// A planned network's public face: construction, forward/inverse in their owned and
// allocation-free forms, parameters by state_dict key, threads, summary. SequenceINN and
// GraphINN are both descriptions (`Desc`) turned into this one class, graph::network (users
// name it through those aliases); `inverse_t<Net>` is the same class with the directions
// swapped. The work happens in graph/executor.hpp.
//
// Desc provides
//   static constexpr auto nodes = hana::tuple_t<node types...>;  // names and module specs
//   static constexpr graph_plan<N> plan;                // graph/plan.hpp
//   static std::string_view node_name(int node);        // for summaries and messages
//   static std::string default_prefix(int module);      // FrEIA state_dict prefix of a module
//
// Every call checks all of its arguments (shapes, batch sizes, destinations) before anything
// runs, so a call that throws a data_error has changed nothing.

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>

#include <boost/hana/at.hpp>
#include <boost/hana/fold_left.hpp>

#include "../core/batch_io.hpp"
#include "../core/errors.hpp"
#include "../core/module.hpp"
#include "../core/parameters.hpp"
#include "arguments.hpp"
#include "call_guard.hpp"
#include "executor.hpp"
#include "module_ref.hpp"

namespace inn {

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

namespace graph {

/// An invertible network planned from `Desc`. With `Reversed`, forward and inverse swap roles
/// (`inverse_t<Net>`): a sampler that holds the same parameters and runs only the inverse code.
template <Scalar S, class Desc, bool Reversed = false>
class network {
    static constexpr const auto& plan = Desc::plan;
    using executor_type = executor<S, Desc>;
    template <Scalar S2, class D2, bool R2>
    friend executor<S2, D2>& executor_of(network<S2, D2, R2>&);
    template <Scalar S2, class D2, bool R2>
    friend const executor<S2, D2>& executor_of(const network<S2, D2, R2>&);
    template <Scalar S2, class D2, bool R2>
    friend class network; // inverse_t<Net>{net} keeps net's reserve()

  public:
    using scalar = S;
    using description = Desc;
    using inverse_type = network<S, Desc, !Reversed>;
    /// Whether this is the inverse of the network `Desc` describes (inverse_t<Net>).
    static constexpr bool reversed = Reversed;
    template <Scalar T>
    using with_scalar = network<T, Desc, Reversed>;

    static constexpr int n_inputs = Reversed ? plan.n_outputs : plan.n_inputs;
    static constexpr int n_outputs = Reversed ? plan.n_inputs : plan.n_outputs;
    static constexpr int n_conditions = plan.n_conditions;
    static constexpr int n_modules = plan.n_modules;

    /// Shape of input `i` / output `i` / condition `j` (per sample).
    static constexpr dims input_dims(int i = 0) { return plan.edge_shape[input_edge(i)]; }
    static constexpr dims output_dims(int i = 0) { return plan.edge_shape[output_edge(i)]; }
    static constexpr dims condition_dims(int j = 0) {
        return plan.edge_shape[plan.condition_edge[j]];
    }

    /// The shape of a node's output, as a `Shape<...>`:
    /// `static_assert(Net::output_shape<output2> == Shape<70>{})`. For an OutputNode, the shape it
    /// receives.
    template <class Node, int Slot = 0>
    static constexpr auto output_shape = typename node_output<Desc, Node, Slot>::shape{};

    /// Whether the whole network inverts exactly, iteratively or only approximately.
    static constexpr inverse_kind inversion = hana::fold_left(
        executor_type::module_types, inverse_kind::exact, [](inverse_kind r, auto t) {
            return combine(r, inversion_of<typename decltype(t)::type>());
        });

    /// Parameters initialised as FrEIA's modules and PyTorch's layers would, from `seed`.
    explicit network(std::uint64_t seed = 0) : network(generator(seed)) {}
    explicit network(generator g) : exec_(g) {
        for (int k = 0; k < n_modules; ++k) prefix_[std::size_t(k)] = Desc::default_prefix(k);
    }
    /// The same parameters seen from the other direction.
    explicit network(const inverse_type& other)
        : exec_(executor_of(other)), prefix_(other.prefixes()), reserved_(other.reserved_),
          moved_from_(other.moved_from()) {}

    network(const network&) = default;
    network& operator=(const network&) = default;
    /// A moved-from network holds no parameters; any call on it throws usage_error until a
    /// network is assigned to it.
    network(network&& o) noexcept
        : exec_(std::move(o.exec_)), prefix_(std::move(o.prefix_)), reserved_(o.reserved_),
          moved_from_(std::exchange(o.moved_from_, true)) {}
    network& operator=(network&& o) noexcept {
        if (this != &o) {
            exec_ = std::move(o.exec_);
            prefix_ = std::move(o.prefix_);
            reserved_ = o.reserved_;
            moved_from_ = std::exchange(o.moved_from_, true);
            ++epoch_.value;
        }
        return *this;
    }
    bool moved_from() const { return moved_from_; }
    /// Changes whenever another network's parameters are moved into this one (its parameter
    /// storage is then another): optimisers built before refuse to step.
    std::uint64_t storage_epoch() const { return epoch_.value; }

    /// Reserves buffers for batches up to `max_batch`; afterwards calls do not allocate (except
    /// the convenience overloads that return new matrices) and a larger batch is an error.
    /// Without it, the buffers grow to the largest batch seen.
    void reserve(index_t max_batch) {
        check_usable();
        if (max_batch < 0)
            throw usage_error("inn: reserve(" + std::to_string(max_batch) +
                              "): a batch size cannot be negative");
        exec_.reserve(max_batch);
        reserved_ = true;
    }
    index_t capacity() const { return exec_.capacity(); }
    /// Splits every large enough batch across `threads` threads (the caller's and threads - 1
    /// persistent workers, created here): each runs the network on its share of the samples in
    /// its own scratch area, so calls still neither allocate nor create threads. Default 1;
    /// `threads` < 1 means 1, more than max_threads is a usage_error. Should the system refuse
    /// a thread (or the memory for its scratch), the exception leaves the network running on
    /// one thread, its reserve() kept where the memory allows.
    static constexpr int max_threads = 1024;
    void set_threads(int threads) {
        check_usable();
        if (threads > max_threads)
            throw usage_error("inn: set_threads(" + std::to_string(threads) + "): at most " +
                              std::to_string(max_threads) + " threads");
        exec_.set_threads(threads);
    }
    /// Opt-in reduced-precision weight storage for memory-bound calls: products of up to six
    /// samples (Linear layers, AllInOneBlock's soft permutation) read a bfloat16 copy of their
    /// weights - half the bytes to stream - while the arithmetic and its sums stay in the
    /// network's scalar type; larger batches keep reading the full weights. The copies follow
    /// parameter changes (made at the next call) and cost half the weights' memory again.
    /// Accuracy against float32: docs/performance.md. Default off.
    void use_bf16_weights(bool on = true) {
        check_usable();
        exec_.use_bf16_weights(on);
    }
    bool bf16_weights() const { return exec_.bf16_weights(); }
    /// Products of three or more samples through Linear layers and soft permutations may read
    /// a packed copy of their weights (blocks of outputs laid out for the register tiles,
    /// nothing transposed per call; the measured pick of nn/kernels/gemm_pick.hpp decides, and
    /// the bits are the same either way). The copies follow parameter changes (made at the next
    /// call), cost the weights' memory again, and are not kept for weights with a trainer's
    /// gradient attached. Default on; off frees them.
    void use_packed_weights(bool on = true) {
        check_usable();
        exec_.use_packed_weights(on);
    }
    bool packed_weights() const { return exec_.packed_weights(); }
    /// False when a module must see whole batches (IResNetLayer): then every call runs on the
    /// calling thread whatever set_threads says.
    static constexpr bool batch_parallel = executor_type::batch_parallel;
    int threads() const { return exec_.threads(); }
    /// Bytes of the workspace for a batch of `batch` on one thread: the buffers between modules
    /// (shared where their lifetimes allow, see graph::memory_plan) and the scratch.
    static constexpr index_t workspace_bytes(index_t batch) {
        if (batch < 0)
            throw usage_error("inn: workspace_bytes(" + std::to_string(batch) +
                              "): a batch size cannot be negative");
        const index_t n = executor_type::memory.shared_size();
        return index_t(sizeof(S)) * (n * batch + executor_type::scratch_size(batch));
    }
    /// Bytes of all buffers between modules for `batch` if none shared memory (the naive sum of
    /// every intermediate tensor).
    static constexpr index_t unshared_buffer_bytes(index_t batch) {
        return index_t(sizeof(S)) * executor_type::memory.naive_size() * batch;
    }

    // ---- running -------------------------------------------------------------------------------
    // x: one tensor or `inputs(x1, x2, ...)`; then optionally `conditions(c...)` and `jac`.
    // An empty batch gives empty results and runs no module (ActNorm waits for data).

    template <class X, class... Rest>
    auto forward(const X& x, const Rest&... rest) {
        return run_owned<!Reversed>(x, rest...);
    }
    template <class Z, class... Rest>
    auto inverse(const Z& z, const Rest&... rest) {
        return run_owned<Reversed>(z, rest...);
    }
    /// Allocation-free forms: write into `out` (one tensor or `outputs(...)`) and `log_jac_det`
    /// (a vector or span of `batch` values), each its own object.
    template <class X, class Out, class L, class... Rest>
    void forward_into(const X& x, Out&& out, L&& log_jac_det, const Rest&... rest) {
        run_into<!Reversed>(x, out, log_jac_det, rest...);
    }
    template <class Z, class Out, class L, class... Rest>
    void inverse_into(const Z& z, Out&& out, L&& log_jac_det, const Rest&... rest) {
        run_into<Reversed>(z, out, log_jac_det, rest...);
    }

    // ---- parameters ----------------------------------------------------------------------------

    /// Calls `visitor(key, tensor_ref)` for every state_dict entry, keys as FrEIA's. The visitor
    /// may write through the references: the modules are prepared again before the next call.
    template <class V>
    void visit(V&& visitor) {
        check_usable();
        exec_.for_each_module([&](auto k, auto& m) {
            visit_tensors(m, visitor, prefix_[std::size_t(k.value)] + ".");
        });
    }
    /// Read-only visit (saving, counting): the visitor must not write through the references.
    template <class V>
    void visit(V&& visitor) const {
        check_usable();
        exec_.for_each_module([&](auto k, const auto& m) {
            // Modules expose one visit for reading and writing; this one only reads.
            visit_tensors(const_cast<std::remove_cvref_t<decltype(m)>&>(m), visitor,
                          prefix_[std::size_t(k.value)] + ".");
        });
    }
    /// Runs every module's prepare() now if the parameters changed since it last ran (calls do
    /// this themselves); throws parameter_error naming the node and the key of a parameter the
    /// module cannot run with. Loading calls it and undoes the load when it throws.
    void prepare() {
        check_usable();
        exec_.prepare([this](int k) -> const std::string& { return prefix_[std::size_t(k)]; });
    }
    /// Tells the network that parameters were changed through a pointer kept from an earlier
    /// visit or module<K>() (visit and module<K>() themselves already count as changes).
    void parameters_changed() { exec_.parameters_changed(); }
    /// The same where only trainable tensors changed (what an optimiser step does): copies the
    /// network keeps of fixed weights, such as a soft permutation's packed matrix, are kept.
    void trainable_parameters_changed() { exec_.trainable_parameters_changed(); }

    /// The state_dict prefix of module `k` (forward order), default `module_list.<k>`. Graphs
    /// from FrEIA may need the explicit mapping the exporter records (FrEIA numbers parallel
    /// branches in an order that is not reproducible).
    const std::string& state_dict_prefix(int k) const { return prefix_.at(std::size_t(k)); }
    void set_state_dict_prefix(int k, std::string prefix) {
        prefix_.at(std::size_t(k)) = std::move(prefix);
    }
    const std::array<std::string, std::size_t(n_modules)>& prefixes() const { return prefix_; }
    /// Sets the prefix of the module of `Node` (a GraphINN node type).
    template <class Node>
    void set_state_dict_prefix(std::string prefix) {
        constexpr int i = index_in<Node, Desc>();
        static_assert(i >= 0 && runs(plan.node[i < 0 ? 0 : i].kind),
                      "inn: set_state_dict_prefix<Node>: Node is not a node of this network that "
                      "holds a module (a Node or a FeedForwardNode)");
        prefix_[std::size_t(plan.module_index[i])] = std::move(prefix);
    }
    /// The name of the node that holds module `k` (forward order).
    static std::string module_node_name(int k) {
        return std::string(Desc::node_name(plan.forward_order[k]));
    }

    /// Number of scalars in learned parameters (FrEIA: sum of p.numel() for requires_grad).
    std::int64_t parameter_count() const {
        std::int64_t n = 0;
        visit([&](const std::string&, const tensor_ref<S>& t) {
            if (t.trainable) n += t.shape.numel();
        });
        return n;
    }

    /// FrEIA's verbose print: nodes in execution order with shapes and parameter counts; and
    /// how they run: modules fused into one pass (graph/fusion.hpp), views that copy nothing.
    std::string summary() const {
        check_usable();
        std::ostringstream os;
        os << (Reversed ? "inverse of " : "") << "network: " << n_inputs << " input(s), "
           << n_outputs << " output(s), " << n_conditions << " condition(s), " << n_modules
           << " module(s)\n";
        std::array<std::int64_t, std::size_t(n_modules) + 1> counts{};
        exec_.for_each_module([&](auto k, const auto& m) {
            visit_tensors(const_cast<std::remove_cvref_t<decltype(m)>&>(m),
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
            if (plan.node[node].kind == node_kind::feed_forward)  // the same in both directions
                os << "feed-forward " << list(sig.conditions) << " -> " << list(plan.outs[node]);
            else
                os << (Reversed ? list(plan.outs[node]) : list(sig.inputs)) << " -> "
                   << (Reversed ? list(sig.inputs) : list(plan.outs[node]));
            if (sig.conditions.count && plan.node[node].kind != node_kind::feed_forward)
                os << " | conditions " << list(sig.conditions);
            os << "  params " << counts[std::size_t(k)];
            constexpr const auto& fusion = executor_type::fusion;
            if (const int g = fusion.group[k]; g >= 0 && exec_.fusing())
                os << "  | fused pass " << g + 1 << " (" << k - fusion.first[g] + 1 << "/"
                   << fusion.length[g] << ")";
            else if (exec_.layout().is_view[node])
                os << "  | view, no pass";
            os << "\n";
        }
        std::int64_t total = 0;
        for (auto c : counts) total += c;
        os << "  total trainable parameters: " << total << "\n";
        if (exec_.fusing() && executor_type::fusion.n_groups > 0)
            os << "  fused passes: " << executor_type::fusion.n_groups
               << " (chains of element-wise modules, each one pass over the batch)\n";
        return os.str();
    }

    /// A tool, not needed for ordinary use (custom initialisation, tests, inspecting a
    /// module): the bound module at forward position K, through a reference that names its
    /// node. Counts as a change of the parameters.
    template <int K>
    auto module() {
        static_assert(K >= 0 && K < n_modules, "inn: module<K>(): K is not a module position");
        using node = node_at<Desc, K>;
        auto& m = hana::at_c<std::size_t(K)>(exec_.modules());
        return module_ref<node, typename node::module, std::remove_reference_t<decltype(m)>>(m);
    }
    template <int K>
    auto module() const {
        static_assert(K >= 0 && K < n_modules, "inn: module<K>(): K is not a module position");
        using node = node_at<Desc, K>;
        const auto& m = hana::at_c<std::size_t(K)>(exec_.modules());
        return module_ref<node, typename node::module, const std::remove_reference_t<decltype(m)>>(m);
    }

  private:
    static constexpr int input_edge(int i) {
        return Reversed ? plan.output_edge[i] : plan.input_edge[i];
    }
    static constexpr int output_edge(int i) {
        return Reversed ? plan.input_edge[i] : plan.output_edge[i];
    }

    void check_usable() const {
        if (moved_from_)
            throw usage_error("inn: this network was moved from and holds no parameters; assign "
                              "a network to it before using it");
    }

    // The tensors this call reads: inputs (or outputs, inverted) and conditions, checked.
    template <bool Forward, std::size_t NX, std::size_t NC>
    struct sources {
        std::array<batch_source<S>, NX> x;
        std::array<batch_source<S>, NC> c;
        index_t batch = 0;
    };

    // Reads and checks the inputs and conditions (no side effects); returns them and the batch.
    template <bool Forward, class XT, class CT>
    auto read_sources(const XT& xs, const CT& cs) const {
        static_assert(std::tuple_size_v<XT> == std::size_t(Forward ? plan.n_inputs : plan.n_outputs),
                      "inn: wrong number of input tensors for this network (use inputs(...))");
        static_assert(std::tuple_size_v<CT> == std::size_t(n_conditions),
                      "inn: wrong number of condition tensors for this network (use "
                      "conditions(...))");
        sources<Forward, std::tuple_size_v<XT>, std::tuple_size_v<CT>> src;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((src.x[I] = source_of<S>(std::get<I>(xs), plan.edge_shape[reading_edge<Forward>(int(I))],
                                      "input", reading_name<Forward>(int(I)))),
             ...);
        }(std::make_index_sequence<std::tuple_size_v<XT>>{});
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((src.c[I] = source_of<S>(std::get<I>(cs), plan.edge_shape[plan.condition_edge[I]],
                                      "condition", Desc::node_name(plan.condition_node[I]))),
             ...);
        }(std::make_index_sequence<std::tuple_size_v<CT>>{});
        // Messages are only built on failure: no string work on the hot path.
        index_t batch = -1;
        auto check = [&](const batch_source<S>& s, const char* what, std::string_view name) {
            if (batch < 0) batch = s.batch;
            if (s.batch != batch)
                throw data_error("inn: " + std::string(what) + " '" + std::string(name) +
                                 "' has batch " + std::to_string(s.batch) +
                                 ", the first input has " + std::to_string(batch));
            // After reserve(), a larger batch is an error rather than a hidden allocation.
            if (reserved_ && batch > capacity())
                throw data_error("inn: " + std::string(what) + " '" + std::string(name) +
                                 "' has batch " + std::to_string(batch) + ", more than the " +
                                 std::to_string(capacity()) + " reserved (call reserve())");
        };
        // int counters: nvcc warns about `j < size()` with an unsigned size that is 0.
        for (int i = 0; i < int(src.x.size()); ++i)
            check(src.x[std::size_t(i)], "input", reading_name<Forward>(i));
        for (int j = 0; j < int(src.c.size()); ++j)
            check(src.c[std::size_t(j)], "condition", Desc::node_name(plan.condition_node[j]));
        src.batch = std::max<index_t>(batch, 0);
        return src;
    }

    template <bool Forward>
    static constexpr int reading_edge(int i) {
        return Forward ? plan.input_edge[i] : plan.output_edge[i];
    }
    template <bool Forward>
    static std::string_view reading_name(int i) {
        return Desc::node_name(Forward ? plan.input_node[i] : plan.output_node[i]);
    }
    template <bool Forward>
    static constexpr int writing_edge(int i) {
        return Forward ? plan.output_edge[i] : plan.input_edge[i];
    }
    template <bool Forward>
    static std::string_view writing_name(int i) {
        return Desc::node_name(Forward ? plan.output_node[i] : plan.input_node[i]);
    }

    // Everything checked: buffers for the batch, modules prepared, data copied in.
    template <bool Forward, class Src>
    void begin(const Src& src) {
        if (src.batch > capacity()) exec_.reserve(src.batch);
        prepare();
        for (int i = 0; i < int(src.x.size()); ++i) {
            const int e = reading_edge<Forward>(i);
            copy_in(src.x[std::size_t(i)], plan.edge_shape[e].size(), exec_.edge(e));
        }
        for (int j = 0; j < int(src.c.size()); ++j) {
            const int e = plan.condition_edge[j];
            copy_in(src.c[std::size_t(j)], plan.edge_shape[e].size(), exec_.edge(e));
        }
    }

    template <bool Forward, class X, class... Rest>
    auto run_owned(const X& x, const Rest&... rest) {
        static_assert(inn::detail::valid_trailing_arguments<Rest...>,
                      "inn: after the inputs, a call takes conditions(...) and/or a bool (jac)");
        check_usable();
        inn::detail::call_guard::scope busy(guard_);
        const auto src = read_sources<Forward>(inn::detail::input_tuple(x),
                                               inn::detail::condition_tuple(rest...));
        const index_t batch = src.batch;
        vector<S> ljd = vector<S>::Zero(batch);
        if (batch > 0) {  // an empty batch runs nothing (the buffers may not exist yet)
            begin<Forward>(src);
            exec_.template run<Forward>(batch, inn::detail::jac_flag(rest...), ljd.data());
        }
        constexpr int n_written = Forward ? plan.n_outputs : plan.n_inputs;
        auto fetch = [&](int i) {
            const int e = writing_edge<Forward>(i);
            if (batch == 0) return row_matrix<S>(0, plan.edge_shape[e].size());
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
        static_assert(inn::detail::valid_trailing_arguments<Rest...>,
                      "inn: after the inputs, a call takes conditions(...) and/or a bool (jac)");
        check_usable();
        inn::detail::call_guard::scope busy(guard_);
        const auto src = read_sources<Forward>(inn::detail::input_tuple(x),
                                               inn::detail::condition_tuple(rest...));
        const index_t batch = src.batch;
        auto outs = inn::detail::output_tuple(out);
        constexpr int n_written = Forward ? plan.n_outputs : plan.n_inputs;
        static_assert(std::tuple_size_v<decltype(outs)> == std::size_t(n_written),
                      "inn: wrong number of output tensors (use outputs(...))");
        // Every destination is checked before anything is loaded, resized, run or written: a
        // refused call leaves the network and all its arguments as they were.
        std::array<sink_plan<S>, std::size_t(n_written)> plans;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((plans[I] = plan_sink<S>(std::get<I>(outs), batch,
                                      plan.edge_shape[writing_edge<Forward>(int(I))], "output",
                                      writing_name<Forward>(int(I)))),
             ...);
        }(std::make_index_sequence<std::size_t(n_written)>{});
        const sink_plan<S> ljd_plan = plan_log_jac_det<S>(log_jac_det, batch);
        // One resizable container given for two destinations: the second resize would free
        // what the first was bound to.
        check_distinct_destinations<Forward>(outs, log_jac_det);
        if (batch > 0) begin<Forward>(src);
        std::array<batch_sink<S>, std::size_t(n_written)> sinks;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((sinks[I] = bind_sink<S>(std::get<I>(outs), plans[I], batch,
                                      plan.edge_shape[writing_edge<Forward>(int(I))])),
             ...);
        }(std::make_index_sequence<std::size_t(n_written)>{});
        S* ljd = bind_log_jac_det<S>(log_jac_det, ljd_plan, batch);
        if (batch == 0) return;  // the destinations sized to no rows; nothing runs
        std::fill(ljd, ljd + batch, S(0));
        exec_.template run<Forward>(batch, inn::detail::jac_flag(rest...), ljd);
        for (int i = 0; i < n_written; ++i) {
            const int e = writing_edge<Forward>(i);
            copy_out(cview<S>(exec_.edge(e)), batch, plan.edge_shape[e].size(),
                     sinks[std::size_t(i)]);
        }
    }

    // One object given for two destinations (outputs(z, z), or one vector as an output and
    // as log_jac_det): resizing it for the second would free the memory bound to the first,
    // and the two would overwrite each other anyway. Views of one matrix are distinct objects
    // and may share its memory (side by side columns, in place).
    template <bool Forward, class Outs, class L>
    static void check_distinct_destinations(const Outs& outs, const L& log_jac_det) {
        constexpr std::size_t n = std::tuple_size_v<Outs>;
        std::array<const void*, n + 1> at{};
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((at[I] = static_cast<const void*>(std::addressof(std::get<I>(outs)))), ...);
        }(std::make_index_sequence<n>{});
        at[n] = static_cast<const void*>(std::addressof(log_jac_det));
        auto what = [](std::size_t i) {
            return i == n ? std::string("log_jac_det")
                          : "output '" + std::string(writing_name<Forward>(int(i))) + "'";
        };
        for (std::size_t j = 1; j <= n; ++j)
            for (std::size_t i = 0; i < j; ++i)
                if (at[i] == at[j])
                    throw data_error("inn: " + what(i) + " and " + what(j) +
                                     " are the same object; give each destination its own");
    }

    executor_type exec_;
    std::array<std::string, std::size_t(n_modules)> prefix_;
    bool reserved_ = false;
    bool moved_from_ = false;
    // Counts the times another network's parameters were moved into this object: their
    // storage then is the other's, so what pointed into the old storage (an optimiser's
    // parameter list) must be made again. A copy assigns values into the storage in place and
    // keeps the count.
    struct storage_epoch {
        std::uint64_t value = 0;
        storage_epoch() = default;
        storage_epoch(const storage_epoch&) {}
        storage_epoch& operator=(const storage_epoch&) { return *this; }
    } epoch_;
    inn::detail::call_guard guard_;
};

/// The executor of a network (buffers, bound modules, threads): for tools such as the trainer
/// and for tests. Not a member of the network, so that it stays out of the network's API.
template <Scalar S, class Desc, bool R>
executor<S, Desc>& executor_of(network<S, Desc, R>& net) {
    return net.exec_;
}
template <Scalar S, class Desc, bool R>
const executor<S, Desc>& executor_of(const network<S, Desc, R>& net) {
    return net.exec_;
}

}  // namespace graph

/// The inverse of a network as a network of its own: `using Sampler = inverse_t<Net>;`.
template <class Net>
using inverse_t = typename Net::inverse_type;

}  // namespace inn
