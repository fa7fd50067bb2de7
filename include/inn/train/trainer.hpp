#pragma once
// One training step of a network: forward, loss, backward. The gradients land next to the
// parameters (tensor_ref::grad(), and `args.grad_of(p)` inside modules), where optimisers
// (train/optim.hpp) find them.
//
//   MoonsINN net{0};
//   inn::train::trainer t{net, {.memory = inn::train::recompute}};
//   inn::train::Adam opt{net, {.lr = 1e-3}};
//   for (...) {
//       const float loss = t.step(x, inn::train::max_likelihood);   // gradients zeroed first
//       opt.step();
//   }
//
// The trainer owns its buffers (graph/backprop.hpp): after the first step (or reserve()), a
// step allocates nothing. It uses the network's threads (net.set_threads). While a trainer
// exists, the network's parameters have gradient storage attached; the trainer detaches it
// when it goes. Either way the network remakes what it derives from its parameters (packed
// weights, the ReLU units' forms) at its next call.

#include <algorithm>
#include <array>
#include <string>
#include <tuple>
#include <vector>

#include "../core/batch_io.hpp"
#include "../core/errors.hpp"
#include "../graph/arguments.hpp"
#include "../graph/backprop.hpp"
#include "loss.hpp"

namespace inn::train {

struct trainer_options {
    /// Keep every module's input for backward (store), or recompute it through the inverse
    /// (recompute: memory flat in depth, one extra inverse per module).
    memory_mode memory = store;
};

template <class Net>
class trainer {
    using S = typename Net::scalar;
    using Desc = typename Net::description;
    using engine = graph::backprop<S, Desc>;
    static constexpr const auto& plan = Desc::plan;
    static_assert(!Net::reversed,
                  "inn: a trainer differentiates a network's forward map; train the forward "
                  "network, then make the sampler from it (inverse_t<Net>{net} copies its "
                  "parameters)");
    static_assert(engine::differentiable,
                  "inn: this network cannot be trained (the error above names the node)");

  public:
    using scalar = S;

    explicit trainer(Net& net, trainer_options o = {}) : net_(&net), engine_(o.memory) {
        attach();
    }
    trainer(const trainer&) = delete;
    trainer& operator=(const trainer&) = delete;
    ~trainer() { detach(); }

    /// Buffers for batches up to `max_batch` (the first step does this itself).
    void reserve(index_t max_batch) {
        engine_.reserve(max_batch, net_->threads(), params_);
        attach_pointers();
    }

    /// Forward, loss and backward for one batch: `x` (one tensor or inputs(...)), then the
    /// loss, then optionally conditions(...). The parameters' gradients are zeroed first, then
    /// hold dL/dθ; the loss's value is returned.
    template <class X, class Loss, class... Rest>
    S step(const X& x, const Loss& loss, const Rest&... rest) {
        zero_grad();
        const S value = accumulate(x, loss, rest...);
        return value;
    }

    /// Like step() without zeroing first: gradients of several batches add up.
    template <class X, class Loss, class... Rest>
    S accumulate(const X& x, const Loss& loss, const Rest&... rest) {
        static_assert(((inn::detail::is_conditions<Rest>) && ...),
                      "inn: after the loss, a training step takes conditions(...)");
        Net& net = *net_;
        if (net.moved_from()) throw usage_error("inn: the trainer's network was moved from");
        const index_t batch = load(inn::detail::input_tuple(x), inn::detail::condition_tuple(rest...));
        auto& exec = graph::executor_of(net);
        engine_.forward(exec, batch);
        // The loss reads z and log|det J| and writes their gradients.
        std::array<cview<S>, std::size_t(plan.n_outputs)> z;
        std::array<view<S>, std::size_t(plan.n_outputs)> gz;
        std::array<index_t, std::size_t(plan.n_outputs)> size;
        for (int i = 0; i < plan.n_outputs; ++i) {
            z[std::size_t(i)] = engine_.value(plan.output_edge[i]);
            gz[std::size_t(i)] = engine_.gradient(plan.output_edge[i]);
            size[std::size_t(i)] = plan.edge_shape[plan.output_edge[i]].size();
        }
        const S value = loss(loss_args<S>{batch, z, size, engine_.log_jac_det(), gz,
                                           engine_.log_jac_det_gradient()});
        engine_.backward(exec, batch);
        batch_ = batch;
        return value;
    }

    /// Sets every parameter gradient to zero.
    void zero_grad() {
        S* g = engine_.parameter_gradients();
        std::fill(g, g + params_, S(0));
    }

    /// dL/dx of input `i` (or dL/dc of condition `j`) of the last step, `batch` rows.
    row_matrix<S> input_gradient(int i = 0) {
        const int e = plan.input_edge[i];
        return engine_.gradient(e).matrix(batch_, plan.edge_shape[e].size());
    }
    row_matrix<S> condition_gradient(int j = 0) {
        const int e = plan.condition_edge[j];
        return engine_.gradient(e).matrix(batch_, plan.edge_shape[e].size());
    }
    /// z of the last step's forward pass.
    row_matrix<S> output(int i = 0) {
        const int e = plan.output_edge[i];
        return engine_.value(e).matrix(batch_, plan.edge_shape[e].size());
    }

    memory_mode memory() const { return engine_.mode(); }
    /// Bytes of the trainer's buffers beyond the parameters and their gradients.
    index_t workspace_bytes() const { return engine_.workspace_bytes(); }
    index_t value_bytes() const { return engine_.value_bytes(); }
    /// Scalars of trainable parameters (and of their gradients).
    index_t parameter_scalars() const { return params_; }

  private:
    // Gradient storage for every trainable parameter: its slot points into the engine's arena.
    void attach() {
        params_ = 0;
        std::as_const(*net_).visit([&](const std::string&, const tensor_ref<S>& t) {
            if (t.real && t.trainable && t.grad_slot) params_ += index_t(t.shape.numel());
        });
        reserve(1);
        forms_changed();
    }
    // Forms made from the parameters differ with and without gradients attached (packed
    // weights, the small MLPs' ReLU units): the next call remakes them.
    void forms_changed() {
        if constexpr (requires(Net & n) { n.trainable_parameters_changed(); })
            net_->trainable_parameters_changed();
    }
    void attach_pointers() {
        S* g = engine_.parameter_gradients();
        index_t offset = 0;
        std::as_const(*net_).visit([&](const std::string&, const tensor_ref<S>& t) {
            if (t.real && t.trainable && t.grad_slot) {
                *t.grad_slot = g + offset;
                offset += index_t(t.shape.numel());
            }
        });
    }
    void detach() {
        if (net_->moved_from()) return;
        std::as_const(*net_).visit([&](const std::string&, const tensor_ref<S>& t) {
            if (t.grad_slot) *t.grad_slot = nullptr;
        });
        forms_changed();
    }

    // Checks and copies the inputs and conditions into the engine's buffers; returns the batch.
    template <class XT, class CT>
    index_t load(const XT& xs, const CT& cs) {
        static_assert(std::tuple_size_v<XT> == std::size_t(plan.n_inputs),
                      "inn: wrong number of input tensors for this network (use inputs(...))");
        static_assert(std::tuple_size_v<CT> == std::size_t(plan.n_conditions),
                      "inn: wrong number of condition tensors for this network (use "
                      "conditions(...))");
        std::array<batch_source<S>, std::tuple_size_v<XT>> xsrc;
        std::array<batch_source<S>, std::tuple_size_v<CT>> csrc;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((xsrc[I] = source_of<S>(std::get<I>(xs), plan.edge_shape[plan.input_edge[I]], "input",
                                     Desc::node_name(plan.input_node[I]))),
             ...);
        }(std::make_index_sequence<std::tuple_size_v<XT>>{});
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((csrc[I] = source_of<S>(std::get<I>(cs), plan.edge_shape[plan.condition_edge[I]],
                                     "condition", Desc::node_name(plan.condition_node[I]))),
             ...);
        }(std::make_index_sequence<std::tuple_size_v<CT>>{});
        index_t batch = -1;
        auto check = [&](const batch_source<S>& s, const char* what, std::string_view name) {
            if (batch < 0) batch = s.batch;
            if (s.batch != batch)
                throw data_error("inn: " + std::string(what) + " '" + std::string(name) +
                                 "' has batch " + std::to_string(s.batch) +
                                 ", the first input has " + std::to_string(batch));
        };
        for (std::size_t i = 0; i < xsrc.size(); ++i)
            check(xsrc[i], "input", Desc::node_name(plan.input_node[i]));
        // Range-for: with no conditions `j < csrc.size()` compares with zero (nvcc's #186).
        for (std::size_t j = 0; const batch_source<S>& c : csrc)
            check(c, "condition", Desc::node_name(plan.condition_node[j++]));
        batch = std::max<index_t>(batch, 0);
        // torch's mean over no samples is NaN, and its optimiser would still move the
        // parameters by their momentum: refused instead, as train::nll refuses it.
        if (batch == 0)
            throw data_error("inn: a training step needs at least one sample; the batch is empty");
        // Everything checked: buffers, parameters prepared, data in.
        if (batch > engine_.capacity() || net_->threads() != threads_) {
            threads_ = net_->threads();
            reserve(std::max(batch, engine_.capacity()));
        }
        net_->prepare();
        for (std::size_t i = 0; i < xsrc.size(); ++i) {
            const int e = plan.input_edge[i];
            copy_in(xsrc[i], plan.edge_shape[e].size(), engine_.value(e));
        }
        for (std::size_t j = 0; const batch_source<S>& c : csrc) {
            const int e = plan.condition_edge[j++];
            copy_in(c, plan.edge_shape[e].size(), engine_.value(e));
        }
        return batch;
    }

    Net* net_;
    engine engine_;
    index_t params_ = 0;
    index_t batch_ = 0;
    int threads_ = 0;
};

}  // namespace inn::train
