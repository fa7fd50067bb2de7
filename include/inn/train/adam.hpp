#pragma once
// Adam and AdamW, with torch.optim's update rules, defaults and checks (PyTorch 1.13's
// single-tensor algorithm; checked step by step against recorded torch.optim runs in
// tests/test_optim.cpp):
//
//   Adam:  g <- ∇θ (negated with maximize), + weight_decay * θ (L2, added to the gradient)
//   AdamW: θ <- θ * (1 - lr * weight_decay)        (decoupled weight decay, before the moments)
//   both:  t <- t + 1
//          m <- beta1 * m + (1 - beta1) * g
//          v <- beta2 * v + (1 - beta2) * g * g
//          v̂ <- max(v̂, v)                          (amsgrad only; then v̂ in place of v below)
//          θ <- θ - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
//   inn::train::trainer t{net};
//   inn::train::Adam opt{net, {.lr = 1e-3}};          // or AdamW opt{net} (weight_decay 1e-2)
//   for (...) {
//       t.step(x, inn::train::max_likelihood);
//       opt.step();
//   }
//
// The moments live in flat arrays in parameter visit order, allocated at construction: a step
// allocates nothing. A subnormal moment is stored as zero (internal::flush_subnormal).
// Hyper-parameters are doubles, as torch's Python floats; a float network rounds each coefficient
// to float where torch's kernels do.

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../nn/kernels/simd.hpp"
#include "optimizer.hpp"

namespace inn::train {

/// torch.optim.Adam's arguments and defaults.
struct adam_options {
    double lr = 1e-3;
    std::array<double, 2> betas{0.9, 0.999};
    double eps = 1e-8;
    double weight_decay = 0;  // L2 penalty, added to the gradient
    bool amsgrad = false;
    bool maximize = false;    // ascend instead of descend
};

/// torch.optim.AdamW's arguments and defaults (weight decay decoupled from the gradient).
struct adamw_options {
    double lr = 1e-3;
    std::array<double, 2> betas{0.9, 0.999};
    double eps = 1e-8;
    double weight_decay = 1e-2;
    bool amsgrad = false;
    bool maximize = false;
};

namespace internal {

/// Adam (Decoupled = false) and AdamW (true).
template <Scalar S, bool Decoupled>
class adam_family : public optimizer_core<S> {
  public:
    using options = std::conditional_t<Decoupled, adamw_options, adam_options>;
    /// The name checkpoints record.
    static constexpr std::string_view kind = Decoupled ? "AdamW" : "Adam";

    template <TrainableNetwork Net>
    adam_family(Net& net, options o) : optimizer_core<S>(net), o_(o) {
        check();
        const auto n = std::size_t(this->params_.scalars());
        exp_avg_.assign(n, S(0));
        exp_avg_sq_.assign(n, S(0));
        if (o_.amsgrad) max_exp_avg_sq_.assign(n, S(0));
    }

    /// One update of every trainable parameter from its gradient; then the network prepares
    /// its modules again before its next call. Throws usage_error, changing nothing, when a
    /// parameter has no gradient storage (no trainer attached).
    void step() {
        this->params_.require_gradients(kind);
        ++this->steps_;
        const double t = double(this->steps_);
        const double beta1 = o_.betas[0], beta2 = o_.betas[1];
        // Scalars as torch computes them in Python (double), then as its kernels take them.
        const double bias_correction1 = 1 - std::pow(beta1, t);
        const double bias_correction2 = 1 - std::pow(beta2, t);
        const double step_size = o_.lr / bias_correction1;
        const S b1 = S(beta1), one_minus_b1 = S(1 - beta1);
        const S b2 = S(beta2), one_minus_b2 = S(1 - beta2);
        const S bc2_sqrt = S(std::sqrt(bias_correction2));
        const S eps = S(o_.eps), wd = S(o_.weight_decay), neg_step = S(-step_size);
        const S decay = S(1 - o_.lr * o_.weight_decay);
        const bool l2 = !Decoupled && o_.weight_decay != 0;
        // The usual case - no amsgrad, maximize or L2 term - a SIMD vector at a time: the same
        // operations in the same order as the loop below, lane by lane, so the same results.
        // Subnormal moments are stored as zero (internal::flush_subnormal says why).
        const bool plain = !o_.amsgrad && !o_.maximize && !l2;
        for (const auto& e : this->params_.entries()) {
            S* p = e.value;
            const S* grad = e.grad();
            S* m = exp_avg_.data() + e.offset;
            S* v = exp_avg_sq_.data() + e.offset;
            S* vmax = o_.amsgrad ? max_exp_avg_sq_.data() + e.offset : nullptr;
            index_t i = 0;
            if (plain) {
                using V = nn::kernels::simd<S>;
                using vec = typename V::vec;
                const vec zero = V::broadcast(S(0));
                const vec tiny = V::broadcast(std::numeric_limits<S>::min());
                const auto flush = [&](vec x) {
                    return (x != zero) & (x < tiny) & (x > -tiny) ? zero : x;
                };
                for (; i + V::lanes <= e.size; i += V::lanes) {
                    vec pv = V::load(p + i);
                    if constexpr (Decoupled) pv = pv * decay;
                    const vec g = V::load(grad + i);
                    vec mv = V::load(m + i), vv = V::load(v + i);
                    mv = mv * b1;
                    mv = flush(mv + one_minus_b1 * g);
                    vv = vv * b2;
                    vv = flush(vv + one_minus_b2 * g * g);
                    const vec denom = V::sqrt(vv) / bc2_sqrt + eps;
                    pv = pv + neg_step * mv / denom;
                    V::store(m + i, mv);
                    V::store(v + i, vv);
                    V::store(p + i, pv);
                }
            }
            for (; i < e.size; ++i) {
                if constexpr (Decoupled) p[i] = p[i] * decay;
                S g = o_.maximize ? -grad[i] : grad[i];
                if (l2) g = g + wd * p[i];
                m[i] = m[i] * b1;
                m[i] = internal::flush_subnormal(m[i] + one_minus_b1 * g);
                v[i] = v[i] * b2;
                v[i] = internal::flush_subnormal(v[i] + one_minus_b2 * g * g);
                S second = v[i];
                if (vmax) second = vmax[i] = maximum(vmax[i], v[i]);
                const S denom = std::sqrt(second) / bc2_sqrt + eps;
                p[i] = p[i] + neg_step * m[i] / denom;
            }
        }
        this->params_.parameters_changed();
    }

    double lr() const { return o_.lr; }
    /// Sets the learning rate (what schedules call); data_error if negative or not finite.
    void set_lr(double lr) {
        require_option(std::isfinite(lr) && lr >= 0, kind,
                       "the learning rate must be finite and >= 0", lr);
        o_.lr = lr;
    }
    const options& hyper_parameters() const { return o_; }

    /// torch's checks of the hyper-parameters, and that each is finite (torch takes an
    /// infinite learning rate); data_error naming the one that fails.
    void check() const {
        require_option(std::isfinite(o_.lr) && o_.lr >= 0, kind,
                       "the learning rate must be finite and >= 0", o_.lr);
        require_option(std::isfinite(o_.eps) && o_.eps >= 0, kind, "eps must be finite and >= 0",
                       o_.eps);
        require_option(o_.betas[0] >= 0 && o_.betas[0] < 1, kind, "betas[0] must be in [0, 1)",
                       o_.betas[0]);
        require_option(o_.betas[1] >= 0 && o_.betas[1] < 1, kind, "betas[1] must be in [0, 1)",
                       o_.betas[1]);
        require_option(std::isfinite(o_.weight_decay) && o_.weight_decay >= 0, kind,
                       "weight_decay must be finite and >= 0", o_.weight_decay);
    }

    /// State and hyper-parameters for checkpoints (protocol: train/parameter_list.hpp).
    template <class V>
    void visit_state(V&& v) {
        v.count("step", this->steps_);
        v.real("lr", o_.lr);
        v.real("beta1", o_.betas[0]);
        v.real("beta2", o_.betas[1]);
        v.real("eps", o_.eps);
        v.real("weight_decay", o_.weight_decay);
        v.flag("amsgrad", o_.amsgrad);
        v.flag("maximize", o_.maximize);
        v.per_parameter("exp_avg", exp_avg_);
        v.per_parameter("exp_avg_sq", exp_avg_sq_);
        if (o_.amsgrad) v.per_parameter("max_exp_avg_sq", max_exp_avg_sq_);
    }

  private:
    // torch.maximum: a NaN in either wins.
    static S maximum(S a, S b) { return (std::isnan(a) || a > b) ? a : b; }

    options o_;
    std::vector<S> exp_avg_, exp_avg_sq_, max_exp_avg_sq_;
};

}  // namespace internal

/// torch.optim.Adam: `inn::train::Adam opt{net, {.lr = 1e-3}};` then `opt.step()` after each
/// trainer step. The network must outlive the optimiser and stay where it is.
template <Scalar S>
class Adam : public internal::adam_family<S, false> {
  public:
    template <TrainableNetwork Net>
        requires std::same_as<typename Net::scalar, S>
    explicit Adam(Net& net, adam_options o = {}) : internal::adam_family<S, false>(net, o) {}
};
template <TrainableNetwork Net>
Adam(Net&, adam_options = {}) -> Adam<typename Net::scalar>;

/// torch.optim.AdamW (decoupled weight decay, default 1e-2): `inn::train::AdamW opt{net};`.
template <Scalar S>
class AdamW : public internal::adam_family<S, true> {
  public:
    template <TrainableNetwork Net>
        requires std::same_as<typename Net::scalar, S>
    explicit AdamW(Net& net, adamw_options o = {}) : internal::adam_family<S, true>(net, o) {}
};
template <TrainableNetwork Net>
AdamW(Net&, adamw_options = {}) -> AdamW<typename Net::scalar>;

}  // namespace inn::train
