#pragma once
// Stochastic gradient descent with torch.optim.SGD's update rule, arguments and checks
// (PyTorch 1.13's single-tensor algorithm; checked against recorded torch runs in
// tests/test_optim.cpp):
//
//   g <- ∇θ (negated with maximize), + weight_decay * θ
//   with momentum μ != 0:
//       b <- g                                   on the first step
//       b <- μ * b + (1 - dampening) * g         afterwards
//       g <- g + μ * b   (nesterov)   or   g <- b
//   θ <- θ - lr * g
//
//   inn::train::SGD opt{net, {.lr = 0.1, .momentum = 0.9, .nesterov = true}};
//
// torch 1.13 requires lr; it defaults to 1e-3 here, as in later PyTorch versions. The momentum
// buffer is allocated at construction (a step allocates nothing); before the first step it is
// unused (torch: absent). A subnormal momentum is stored as zero (internal::flush_subnormal).

#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include "optimizer.hpp"

namespace inn::train {

/// torch.optim.SGD's arguments.
struct sgd_options {
    double lr = 1e-3;
    double momentum = 0;
    double dampening = 0;
    double weight_decay = 0;
    bool nesterov = false;  // needs momentum > 0 and dampening 0
    bool maximize = false;
};

/// torch.optim.SGD: `inn::train::SGD opt{net, {.lr = 0.1}};`, then `opt.step()` after each
/// trainer step. The network must outlive the optimiser and stay where it is.
template <Scalar S>
class SGD : public internal::optimizer_core<S> {
  public:
    using options = sgd_options;
    /// The name checkpoints record.
    static constexpr std::string_view kind = "SGD";

    template <TrainableNetwork Net>
        requires std::same_as<typename Net::scalar, S>
    explicit SGD(Net& net, sgd_options o = {}) : internal::optimizer_core<S>(net), o_(o) {
        check();
        if (o_.momentum != 0) momentum_buffer_.assign(std::size_t(this->params_.scalars()), S(0));
    }

    /// One update of every trainable parameter from its gradient; then the network prepares
    /// its modules again before its next call. Throws usage_error, changing nothing, when a
    /// parameter has no gradient storage (no trainer attached).
    void step() {
        this->params_.require_gradients(kind);
        const bool first = this->steps_ == 0;
        ++this->steps_;
        const S wd = S(o_.weight_decay), mu = S(o_.momentum);
        const S one_minus_dampening = S(1 - o_.dampening), neg_lr = S(-o_.lr);
        const bool decay = o_.weight_decay != 0, momentum = o_.momentum != 0;
        for (const auto& e : this->params_.entries()) {
            S* p = e.value;
            const S* grad = e.grad();
            S* buf = momentum ? momentum_buffer_.data() + e.offset : nullptr;
            for (index_t i = 0; i < e.size; ++i) {
                S d = o_.maximize ? -grad[i] : grad[i];
                if (decay) d = d + wd * p[i];
                if (momentum) {
                    if (first) {
                        buf[i] = d;
                    } else {
                        buf[i] = buf[i] * mu;
                        buf[i] = internal::flush_subnormal(buf[i] + one_minus_dampening * d);
                    }
                    d = o_.nesterov ? d + mu * buf[i] : buf[i];
                }
                p[i] = p[i] + neg_lr * d;
            }
        }
        this->params_.parameters_changed();
    }

    double lr() const { return o_.lr; }
    /// Sets the learning rate (what schedules call); data_error if negative or not finite.
    void set_lr(double lr) {
        internal::require_option(std::isfinite(lr) && lr >= 0, kind,
                                 "the learning rate must be finite and >= 0", lr);
        o_.lr = lr;
    }
    const sgd_options& hyper_parameters() const { return o_; }

    /// torch's checks of the hyper-parameters, and that each is finite (torch takes an
    /// infinite learning rate); data_error naming the one that fails.
    void check() const {
        internal::require_option(std::isfinite(o_.lr) && o_.lr >= 0, kind,
                                 "the learning rate must be finite and >= 0", o_.lr);
        internal::require_option(std::isfinite(o_.momentum) && o_.momentum >= 0, kind,
                                 "momentum must be finite and >= 0", o_.momentum);
        internal::require_option(std::isfinite(o_.dampening), kind, "dampening must be finite",
                                 o_.dampening);
        internal::require_option(std::isfinite(o_.weight_decay) && o_.weight_decay >= 0, kind,
                                 "weight_decay must be finite and >= 0", o_.weight_decay);
        if (o_.nesterov) {
            internal::require_option(o_.momentum > 0, kind,
                                   "Nesterov momentum requires a momentum > 0", o_.momentum);
            internal::require_option(o_.dampening == 0, kind,
                                   "Nesterov momentum requires zero dampening", o_.dampening);
        }
    }

    /// State and hyper-parameters for checkpoints (protocol: train/parameter_list.hpp).
    template <class V>
    void visit_state(V&& v) {
        v.count("step", this->steps_);
        v.real("lr", o_.lr);
        v.real("momentum", o_.momentum);
        v.real("dampening", o_.dampening);
        v.real("weight_decay", o_.weight_decay);
        v.flag("nesterov", o_.nesterov);
        v.flag("maximize", o_.maximize);
        if (o_.momentum != 0) v.per_parameter("momentum_buffer", momentum_buffer_);
    }

  private:
    sgd_options o_;
    std::vector<S> momentum_buffer_;
};
template <TrainableNetwork Net>
SGD(Net&, sgd_options = {}) -> SGD<typename Net::scalar>;

}  // namespace inn::train
