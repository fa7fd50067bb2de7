#pragma once
// inn::cuda::network<Net>: a network type of inn run on the device.
//
//   MoonsINN host{0};
//   inn::load_safetensors(host, "moons.safetensors");
//   inn::cuda::network<MoonsINN> g(host);        // parameters uploaded; optionally a stream
//   g.reserve(4096);                             // every device buffer, once
//   g.forward_into(batch, x_dev, z_dev, ljd_dev);  // device pointers, asynchronous on the stream
//   auto [z, ljd] = g.forward(x_host);           // convenience: host matrices in and out
//
// It runs the host network's plan as is: the same execution order, the same buffer layout
// (graph/memory_plan.hpp: views and shared regions) in one device allocation, and per node the
// device twin of the module (`bind_in<Spec, S, Sig, cuda::device>`, i.e. a space_binding the
// backend provides in backends/cuda/modules/). A module without one is a compile error naming
// the node and the module. Parameters live on the host network; `upload(host)` copies them
// again after training or loading.
//
// Every argument is checked before anything is queued (the same errors as the host: batch,
// shapes, reserve), and a call queues its work on the stream without allocating once buffers
// are reserved.

#include <array>
#include <span>
#include <string>
#include <tuple>
#include <utility>

#include <boost/hana/at.hpp>
#include <boost/hana/fold_left.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/unpack.hpp>

#include "../../core/errors.hpp"
#include "../../core/module.hpp"
#include "../../graph/executor.hpp"
#include "../../graph/network.hpp"
#include "buffer.hpp"
#include "device.hpp"
#include "graph.hpp"
#include "launch.hpp"
#include "sample_chain.hpp"

namespace inn::cuda {

namespace hana = boost::hana;

template <Scalar S> struct fill_value {
    S* p;
    S v;
    INN_HD void operator()(index_t i) const { p[i] = v; }
};

/// Whether a device module can be a step of a fused per-sample chain (sample_chain.hpp).
template <class M> constexpr bool per_sample_module = requires { requires M::per_sample; };

/// Whether every module of `Net` has a device twin (a network of it can be built).
template <class Net>
constexpr bool runs_on_device =
    hana::unpack(graph::module_positions<typename Net::description>, [](auto... k) {
        using D = typename Net::description;
        return (!std::is_void_v<
                    bind_in<graph::module_spec_at<D, decltype(k)::value>, typename Net::scalar,
                            D::plan.sig[D::plan.forward_order[decltype(k)::value]], device>> &&
                ...);
    });

template <class Net> class network {
  public:
    using host_type = Net;
    using scalar = typename Net::scalar;
    using S = scalar;

  private:
    using Desc = typename Net::description;
    static constexpr bool reversed = Net::reversed;
    static constexpr const auto& plan = Desc::plan;
    using exec = graph::executor<S, Desc, device>;
    using modules_type = typename exec::modules_type;

  public:
    static constexpr int n_inputs = Net::n_inputs;
    static constexpr int n_outputs = Net::n_outputs;
    static constexpr int n_conditions = Net::n_conditions;

    /// The host network's parameters on the device; calls go to `stream` (default: a
    /// non-blocking stream of the network's own, see context).
    explicit network(const Net& host, stream_t stream = {})
        : ctx_(stream), modules_(build(ctx_, prepared(host))) {
        ctx_.synchronize(); // the uploads read the prepared copy, which goes out of scope
    }

    network(const network&) = delete;
    network& operator=(const network&) = delete;

    /// Copies the parameters of `host` (same type) to the device again, e.g. after training.
    void upload(const Net& host) {
        const Net h = prepared(host);
        graphs_.clear(); // some parameters are kernel arguments of the recordings
        hana::for_each(graph::module_positions<Desc>, [&](auto k) {
            hana::at(modules_, k).upload(ctx_, hana::at(graph::executor_of(h).modules(), k));
        });
        ctx_.synchronize();
    }

    const context& device_context() const { return ctx_; }
    /// Later calls are queued on `stream`.
    void set_stream(stream_t stream) { ctx_.set_stream(stream); }
    /// Whether calls are recorded as CUDA graphs and replayed (default on; the first call of
    /// each direction and batch size runs directly and records the graph for the next).
    void use_graphs(bool on) {
        graphs_enabled_ = on;
        if (!on)
            graphs_.clear();
    }

    /// Whether a network that is one chain of small per-sample blocks runs as one kernel
    /// (sample_chain.hpp; default on); off, module by module. Results agree to rounding.
    void use_fusion(bool on) {
        fusion_enabled_ = on;
        graphs_.clear();
    }
    /// Whether dense layers add bias and ReLU in cuBLASLt's epilogue (context::use_epilogues;
    /// default off until checked on a GPU).
    void use_epilogues(bool on) {
        ctx_.use_epilogues(on);
        graphs_.clear();
    }
    /// Whether calls run as one fused kernel (this network is such a chain and fusion is on).
    bool fused() const { return fusion_enabled_ && chain_fusable; }

    /// Waits for every call queued so far.
    void synchronize() const { ctx_.synchronize(); }

    /// Device memory for batches up to `max_batch`: the only allocation after construction.
    /// Afterwards a larger batch is an error; without it, buffers grow to the largest batch.
    void reserve(index_t max_batch) {
        grow(max_batch);
        reserved_ = true;
    }
    index_t capacity() const { return capacity_; }

    /// Shape of input `i` / output `i` / condition `j` (per sample), as the host network's.
    static constexpr dims input_dims(int i = 0) { return Net::input_dims(i); }
    static constexpr dims output_dims(int i = 0) { return Net::output_dims(i); }
    static constexpr dims condition_dims(int j = 0) { return Net::condition_dims(j); }

    // ---- calls on device memory (asynchronous on the stream) -----------------------------------

    /// z = f(x) for `batch` samples: every input, output and condition a device batch (pointer
    /// and row stride); log_jac_det `batch` device scalars, or null to skip the log-determinant.
    void forward_into(index_t batch, std::span<const dcview<S>> x, std::span<const dview<S>> z,
                      S* log_jac_det, std::span<const dcview<S>> c = {}) {
        run<!reversed>(batch, x, z, log_jac_det, c);
    }
    /// x = f⁻¹(z), as forward_into.
    void inverse_into(index_t batch, std::span<const dcview<S>> z, std::span<const dview<S>> x,
                      S* log_jac_det, std::span<const dcview<S>> c = {}) {
        run<reversed>(batch, z, x, log_jac_det, c);
    }
    /// One input and one output with contiguous rows (and optionally one condition).
    void forward_into(index_t batch, const S* x, S* z, S* log_jac_det,
                      const S* c = nullptr) requires(n_inputs == 1 && n_outputs == 1 &&
                                                     n_conditions <= 1) {
        single<!reversed>(batch, x, z, log_jac_det, c);
    }
    void inverse_into(index_t batch, const S* z, S* x, S* log_jac_det,
                      const S* c = nullptr) requires(n_inputs == 1 && n_outputs == 1 &&
                                                     n_conditions <= 1) {
        single<reversed>(batch, z, x, log_jac_det, c);
    }

    // ---- convenience: host matrices in and out (allocates and waits) ---------------------------

    /// `auto [z, log_jac_det] = g.forward(x)` or `g.forward(x, c)` for one input, one output.
    forward_result<row_matrix<S>, S>
    forward(const row_matrix<S>& x, const row_matrix<S>& c = {}) requires(n_inputs == 1 &&
                                                                          n_outputs == 1 &&
                                                                          n_conditions <= 1) {
        auto [out, ljd] = round_trip<!reversed>(x, c, input_dims().size(), output_dims().size());
        return {std::move(out), std::move(ljd)};
    }
    inverse_result<row_matrix<S>, S>
    inverse(const row_matrix<S>& z, const row_matrix<S>& c = {}) requires(n_inputs == 1 &&
                                                                          n_outputs == 1 &&
                                                                          n_conditions <= 1) {
        auto [out, ljd] = round_trip<reversed>(z, c, output_dims().size(), input_dims().size());
        return {std::move(out), std::move(ljd)};
    }

  private:
    // A copy of the host network with every module prepared (caches such as AllInOneBlock's
    // global scale are what the device modules upload).
    static Net prepared(const Net& host) {
        if (host.moved_from())
            throw usage_error("inn::cuda::network: the host network was moved from");
        Net h = host;
        h.prepare();
        graph::executor_of(h).for_each_module([&](auto k, const auto& m) {
            if (awaits_data_init(m))
                throw usage_error(
                    "inn::cuda::network: node '" +
                    std::string(Desc::node_name(plan.forward_order[decltype(k)::value])) +
                    "' initialises itself from the first batch (ActNorm): run the host network "
                    "on data once, then build the device network from it");
        });
        return h;
    }

    static modules_type build(const context& ctx, const Net& h) {
        const auto& host_modules = graph::executor_of(h).modules();
        return hana::unpack(graph::module_positions<Desc>, [&](auto... k) {
            return modules_type{typename decltype(+hana::at(exec::module_types, k))::type(
                ctx, hana::at(host_modules, k))...};
        });
    }

    static constexpr index_t round_up(index_t n) {
        constexpr index_t align = 256 / index_t(sizeof(S)); // cudaMalloc's alignment
        return (n + align - 1) / align * align;
    }

    static constexpr index_t scratch_size(index_t batch) {
        return hana::fold_left(exec::module_types, index_t(0), [&](index_t m, auto t) {
            using B = typename decltype(t)::type;
            return std::max({m, scratch_size_of<B>(pass::forward, batch),
                             scratch_size_of<B>(pass::inverse, batch)});
        });
    }

    void grow(index_t max_batch) {
        if (max_batch <= capacity_)
            return;
        constexpr const auto& memory = exec::memory;
        std::array<index_t, std::size_t(memory.max_edges)> region{};
        index_t total = 0;
        for (int c = 0; c < memory.n_colours; ++c) {
            region[std::size_t(c)] = total;
            total += round_up(max_batch * memory.width[c]);
        }
        for (int e = 0; e < plan.n_edges; ++e) {
            offset_[std::size_t(e)] =
                region[std::size_t(memory.colour[memory.root[e]])] + memory.column[e];
            stride_[std::size_t(e)] = memory.stride(e);
        }
        scratch_offset_ = total;
        total += round_up(scratch_size(max_batch));
        ljd_offset_ = total;
        total += round_up(max_batch);
        graphs_.clear(); // recordings point into the old buffers
        buffer_.resize(total);
        capacity_ = max_batch;
    }

    dview<S> edge(int e) {
        return {buffer_.data() + offset_[std::size_t(e)], stride_[std::size_t(e)]};
    }

    template <bool Forward> static constexpr int reading_edge(int i) {
        return Forward ? plan.input_edge[i] : plan.output_edge[i];
    }
    template <bool Forward> static constexpr int writing_edge(int i) {
        return Forward ? plan.output_edge[i] : plan.input_edge[i];
    }
    template <bool Forward> static std::string reading_name(int i) {
        return std::string(Desc::node_name(Forward ? plan.input_node[i] : plan.output_node[i]));
    }
    template <bool Forward> static std::string writing_name(int i) {
        return std::string(Desc::node_name(Forward ? plan.output_node[i] : plan.input_node[i]));
    }

    // `name()` gives the node's name; called only to build a message, so a call that passes
    // does no string work.
    template <class V, class Name>
    static void check_tensor(const V& v, index_t batch, index_t size, const char* what,
                             Name&& name) {
        if (batch > 0 && !v.data)
            throw data_error("inn::cuda: " + std::string(what) + " '" + name() +
                             "' is a null pointer");
        if (batch > 1 && v.stride < size)
            throw data_error("inn::cuda: " + std::string(what) + " '" + name() +
                             "' has row stride " + std::to_string(v.stride) + ", less than its " +
                             std::to_string(size) + " scalars per sample");
    }

    // Checks everything, then queues: inputs copied into the plan's buffers, modules in plan
    // order, outputs copied out.
    template <bool Forward>
    void run(index_t batch, std::span<const dcview<S>> x, std::span<const dview<S>> out, S* ljd,
             std::span<const dcview<S>> c) {
        constexpr int n_read = Forward ? plan.n_inputs : plan.n_outputs;
        constexpr int n_write = Forward ? plan.n_outputs : plan.n_inputs;
        if (x.size() != std::size_t(n_read) || out.size() != std::size_t(n_write) ||
            c.size() != std::size_t(n_conditions))
            throw data_error("inn::cuda: this network takes " + std::to_string(n_read) +
                             " input(s), " + std::to_string(n_write) + " output(s) and " +
                             std::to_string(n_conditions) + " condition(s) per call");
        if (batch < 0)
            throw data_error("inn::cuda: negative batch size");
        if (reserved_ && batch > capacity_)
            throw data_error("inn::cuda: batch " + std::to_string(batch) + " is more than the " +
                             std::to_string(capacity_) + " reserved (call reserve())");
        for (int i = 0; i < n_read; ++i)
            check_tensor(x[std::size_t(i)], batch, plan.edge_shape[reading_edge<Forward>(i)].size(),
                         "input", [&] { return reading_name<Forward>(i); });
        for (int i = 0; i < n_write; ++i)
            check_tensor(out[std::size_t(i)], batch,
                         plan.edge_shape[writing_edge<Forward>(i)].size(), "output",
                         [&] { return writing_name<Forward>(i); });
        for (int j = 0; j < n_conditions; ++j)
            check_tensor(c[std::size_t(j)], batch, plan.edge_shape[plan.condition_edge[j]].size(),
                         "condition",
                         [&] { return std::string(Desc::node_name(plan.condition_node[j])); });
        if (batch == 0)
            return;
        grow(batch);

        const bool jac = ljd != nullptr;
        // A recorded CUDA graph from the second call of a kind on (graph.hpp).
        graph_key key{};
        std::size_t at = 0;
        key[at++] = std::intptr_t(batch);
        key[at++] = std::intptr_t(Forward);
        key[at++] = std::intptr_t(ljd);
        auto note = [&](const auto& v) {
            key[at++] = std::intptr_t(v.data);
            key[at++] = std::intptr_t(v.stride);
        };
        for (const auto& v : x)
            note(v);
        for (const auto& v : out)
            note(v);
        for (const auto& v : c)
            note(v);
        auto call = [&] {
            if constexpr (chain_fusable)
                if (fusion_enabled_)
                    return run_chain<Forward>(batch, x[0], out[0], ljd, c);
            copy_in<Forward>(batch, x, c);
            run_modules<Forward>(batch, jac);
            copy_out<Forward>(batch, out, ljd);
        };
        if (!graphs_enabled_ || !graphs_.replay(ctx_, key)) {
            call();
            if (graphs_enabled_)
                graphs_.record(ctx_, key, call);
        }
    }

    template <bool Forward>
    void copy_in(index_t batch, std::span<const dcview<S>> x, std::span<const dcview<S>> c) {
        for (std::size_t i = 0; i < x.size(); ++i) {
            const int e = reading_edge<Forward>(int(i));
            const dview<S> d = edge(e);
            copy_rows(ctx_, copy_kind::device_to_device, x[i].data, x[i].stride, d.data, d.stride,
                      batch, plan.edge_shape[e].size());
        }
        for (std::size_t j = 0; j < c.size(); ++j) {
            const int e = plan.condition_edge[j];
            const dview<S> d = edge(e);
            copy_rows(ctx_, copy_kind::device_to_device, c[j].data, c[j].stride, d.data, d.stride,
                      batch, plan.edge_shape[e].size());
        }
    }

    template <bool Forward> void copy_out(index_t batch, std::span<const dview<S>> out, S* ljd) {
        if (ljd)
            copy_rows(ctx_, copy_kind::device_to_device,
                      static_cast<const S*>(buffer_.data() + ljd_offset_), batch, ljd, batch, 1,
                      batch);
        for (std::size_t i = 0; i < out.size(); ++i) {
            const int e = writing_edge<Forward>(int(i));
            const dview<S> d = edge(e);
            copy_rows(ctx_, copy_kind::device_to_device, static_cast<const S*>(d.data), d.stride,
                      out[i].data, out[i].stride, batch, plan.edge_shape[e].size());
        }
    }

    // Every module in plan order on the plan's buffers; the log-determinant goes to the
    // network's own ljd buffer (the caller's is filled from it, so a recording holds no
    // caller pointer).
    template <bool Forward> void run_modules(index_t batch, bool jac) {
        S* const l = buffer_.data() + ljd_offset_;
        for_each_index(ctx_, batch, fill_value<S>{l, S(0)});
        S* const scratch = buffer_.data() + scratch_offset_;
        hana::for_each(graph::module_positions<Desc>, [&](auto k) {
            constexpr int step = decltype(k)::value;
            constexpr int node = Forward ? plan.forward_order[step] : plan.inverse_order[step];
            if (exec::memory.is_view[node])
                return; // its outputs are its inputs' memory
            constexpr bool computes =
                Forward || plan.node[node].kind == graph::node_kind::feed_forward;
            const auto t =
                exec::template node_tensors<node, computes>([&](int e) { return edge(e); });
            const run_args<S, device> a{batch, t.in, t.out, t.cond, l, jac, scratch, 0, &ctx_};
            const auto& m = hana::at_c<std::size_t(plan.module_index[node])>(modules_);
            if constexpr (computes)
                m.forward(a);
            else
                m.inverse(a);
        });
    }

    // ---- the network as one per-sample chain (sample_chain.hpp) ----

    // One input, one output, and every module in turn reading exactly what the one before
    // wrote (so each sample's values can stay in registers from start to end).
    static constexpr bool is_chain = [] {
        if (plan.n_inputs != 1 || plan.n_outputs != 1)
            return false;
        int e = plan.input_edge[0];
        for (int step = 0; step < plan.n_modules; ++step) {
            const int node = plan.forward_order[step];
            const graph::node_info& n = plan.node[node];
            if (n.kind != graph::node_kind::module || n.n_in != 1 || plan.outs[node].count != 1 ||
                plan.edge_of(n.in[0]) != e)
                return false;
            e = plan.edge[node][0];
        }
        return e == plan.output_edge[0];
    }();
    template <class M> static constexpr std::size_t step_bytes() {
        if constexpr (per_sample_module<M>)
            return sizeof(decltype(std::declval<const M&>().sample_step(
                std::declval<const run_args<S, device>&>(), true)));
        else
            return 0;
    }
    static constexpr bool all_per_sample =
        hana::fold_left(exec::module_types, true, [](bool all, auto t) {
            return all && per_sample_module<typename decltype(t)::type>;
        });
    // (A chain's steps are one kernel's arguments: a longer one runs module by module.)
    static constexpr std::size_t chain_bytes =
        hana::fold_left(exec::module_types, std::size_t(0), [](std::size_t n, auto t) {
            return n + step_bytes<typename decltype(t)::type>();
        });
    static constexpr bool chain_fusable =
        is_chain && all_per_sample && chain_bytes <= max_chain_bytes;

    // The step of the module at `Step` of the direction's order, reading conditions through
    // `edge`.
    template <bool Forward, int Step, class Edge> auto chain_step(index_t batch, Edge& edge) const {
        constexpr int node = Forward ? plan.forward_order[Step] : plan.inverse_order[Step];
        const auto t = exec::template node_tensors<node, Forward>(edge);
        const run_args<S, device> a{batch, t.in, t.out, t.cond, nullptr, false, nullptr, 0, &ctx_};
        return hana::at_c<std::size_t(plan.module_index[node])>(modules_).sample_step(a, Forward);
    }

    // The whole call as one kernel from the caller's x to the caller's out and ljd, conditions
    // read where the caller has them.
    template <bool Forward>
    void run_chain(index_t batch, dcview<S> x, dview<S> out, S* ljd, std::span<const dcview<S>> c) {
        auto edge_or_condition = [&](int e) -> dview<S> {
            for (int j = 0; j < n_conditions; ++j)
                if (e == plan.condition_edge[j]) // only read: const_cast to share the view type
                    return {const_cast<S*>(c[std::size_t(j)].data), c[std::size_t(j)].stride};
            return edge(e);
        };
        constexpr int C = int(plan.edge_shape[plan.input_edge[0]].size());
        hana::unpack(graph::module_positions<Desc>, [&](auto... k) {
            for_each_sample_warp(
                ctx_, batch,
                make_sample_chain<S, C>(
                    x.data, x.stride, out.data, out.stride, ljd, false,
                    chain_step<Forward, decltype(k)::value>(batch, edge_or_condition)...));
        });
    }

    template <bool Forward> void single(index_t batch, const S* x, S* out, S* ljd, const S* c) {
        const dcview<S> in[1] = {{x, plan.edge_shape[reading_edge<Forward>(0)].size()}};
        const dview<S> o[1] = {{out, plan.edge_shape[writing_edge<Forward>(0)].size()}};
        if constexpr (n_conditions == 1) {
            const dcview<S> cv[1] = {{c, plan.edge_shape[plan.condition_edge[0]].size()}};
            run<Forward>(batch, in, o, ljd, cv);
        } else {
            if (c)
                throw data_error("inn::cuda: this network takes no condition");
            run<Forward>(batch, in, o, ljd, {});
        }
    }

    template <bool Forward>
    std::pair<row_matrix<S>, vector<S>> round_trip(const row_matrix<S>& x, const row_matrix<S>& c,
                                                   index_t n_in, index_t n_out) {
        const index_t batch = x.rows();
        if (x.cols() != n_in)
            throw data_error("inn::cuda: input '" + reading_name<Forward>(0) + "' has " +
                             std::to_string(x.cols()) + " columns, the network takes " +
                             std::to_string(n_in));
        if constexpr (n_conditions == 1) {
            const index_t nc = plan.edge_shape[plan.condition_edge[0]].size();
            if (c.rows() != batch || c.cols() != nc)
                throw data_error("inn::cuda: condition '" +
                                 std::string(Desc::node_name(plan.condition_node[0])) +
                                 "' must be " + std::to_string(batch) + " x " + std::to_string(nc));
        } else if (c.size() != 0) {
            throw data_error("inn::cuda: this network takes no condition");
        }
        device_buffer<S> dx = cuda::upload(ctx_, x.data(), x.size());
        device_buffer<S> dc = cuda::upload(ctx_, c.data(), c.size());
        device_buffer<S> dz(batch * n_out), dl(batch);
        single<Forward>(batch, dx.data(), dz.data(), dl.data(), c.size() ? dc.data() : nullptr);
        row_matrix<S> z(batch, n_out);
        vector<S> l(batch);
        copy_to_host(ctx_, static_cast<const S*>(dz.data()), z.data(), z.size());
        copy_to_host(ctx_, static_cast<const S*>(dl.data()), l.data(), l.size());
        ctx_.synchronize();
        return {std::move(z), std::move(l)};
    }

    // A recording's key: batch, direction, ljd pointer, then pointer and stride of every tensor.
    static constexpr std::size_t key_size =
        3 + 2 * std::size_t(plan.n_inputs + plan.n_outputs + plan.n_conditions);
    using graph_key = typename graph_cache<key_size>::key_type;

    context ctx_;
    modules_type modules_;
    graph_cache<key_size> graphs_;
    bool graphs_enabled_ = true;
    bool fusion_enabled_ = true;
    device_buffer<S> buffer_;
    std::array<index_t, std::size_t(plan.n_edges) + 1> offset_{};
    std::array<index_t, std::size_t(plan.n_edges) + 1> stride_{};
    index_t scratch_offset_ = 0, ljd_offset_ = 0, capacity_ = 0;
    bool reserved_ = false;
};

} // namespace inn::cuda
