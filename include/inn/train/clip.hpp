#pragma once
// Gradient clipping as torch.nn.utils.clip_grad_norm_ and clip_grad_value_ (FrEIA's tips
// recommend clipping for stable training). Call between the trainer's step and the optimiser's:
//
//   t.step(x, inn::train::max_likelihood);
//   const float norm = inn::train::clip_grad_norm(opt.parameters(), 10.0);
//   opt.step();
//
// Given an optimiser's parameter_list (opt.parameters()) they allocate nothing; given a
// network they build the list first (a visit, which allocates). Parameters without gradient
// storage (no trainer attached) are a usage_error.

#include <algorithm>
#include <cmath>
#include <limits>

#include "../core/errors.hpp"
#include "optimizer.hpp"
#include "parameter_list.hpp"

namespace inn::train {

/// torch.nn.utils.clip_grad_norm_: the norm of order `norm_type` (> 0, or infinity) of all
/// gradients together, as if concatenated into one vector; when it exceeds `max_norm`, every
/// gradient is scaled by max_norm / (norm + 1e-6). Returns the norm before clipping.
/// As torch: the norm of the per-tensor norms, each rounded to S; the coefficient is computed
/// and applied in S (and applied even when it clamps to 1); a non-finite norm makes the
/// gradients non-finite unless `error_if_nonfinite`, which throws data_error instead.
/// Unlike torch, float gradients' sums run in double: where torch's float sum overflows to
/// infinity (gradients of 1e20) or underflows to zero (1e-30), this norm is the true one.
/// data_error for a negative or NaN max_norm (torch would flip or poison every gradient).
template <Scalar S>
S clip_grad_norm(const parameter_list<S>& params, double max_norm, double norm_type = 2.0,
                 bool error_if_nonfinite = false) {
    internal::require_option(norm_type > 0, "clip_grad_norm",
                           "norm_type must be > 0 (or infinity)", norm_type);
    internal::require_option(max_norm >= 0, "clip_grad_norm", "max_norm must be >= 0", max_norm);
    params.require_gradients("clip_grad_norm");
    if (params.entries().empty()) return S(0);
    const bool inf = std::isinf(norm_type);
    // Per-tensor norms accumulated in double (torch accumulates in at least S), rounded to S.
    auto tensor_norm = [&](const S* g, index_t n) {
        double acc = 0;
        for (index_t i = 0; i < n; ++i) {
            const double a = std::abs(double(g[i]));
            if (inf)
                acc = (std::isnan(a) || a > acc) ? a : acc;
            else if (norm_type == 2)
                acc += a * a;
            else
                acc += std::pow(a, norm_type);
        }
        if (inf) return S(acc);
        return S(norm_type == 2 ? std::sqrt(acc) : std::pow(acc, 1 / norm_type));
    };
    double acc = 0;
    for (const auto& e : params.entries()) {
        const double a = double(tensor_norm(e.grad(), e.size));
        if (inf)
            acc = (std::isnan(a) || a > acc) ? a : acc;
        else if (norm_type == 2)
            acc += a * a;
        else
            acc += std::pow(a, norm_type);
    }
    const S total = inf ? S(acc)
                        : S(norm_type == 2 ? std::sqrt(acc) : std::pow(acc, 1 / norm_type));
    if (error_if_nonfinite && !std::isfinite(total))
        throw data_error("inn: clip_grad_norm: the total norm of the gradients is not finite, so "
                         "they cannot be clipped");
    // torch divides a number by a tensor as Tensor.__rdiv__ does, reciprocal() * max_norm,
    // which rounds differently from one division (a last bit in a quarter of float cases).
    const S coef = S(1) / (total + S(1e-6)) * S(max_norm);
    const S clamped = (std::isnan(coef) || coef < S(1)) ? coef : S(1);  // torch.clamp(max=1)
    for (const auto& e : params.entries()) {
        S* g = e.grad();
        for (index_t i = 0; i < e.size; ++i) g[i] = g[i] * clamped;
    }
    return total;
}

/// The same for all trainable parameters of a network.
template <TrainableNetwork Net>
typename Net::scalar clip_grad_norm(Net& net, double max_norm, double norm_type = 2.0,
                                    bool error_if_nonfinite = false) {
    return clip_grad_norm(parameter_list<typename Net::scalar>(net), max_norm, norm_type,
                          error_if_nonfinite);
}

/// torch.nn.utils.clip_grad_value_: every gradient value clamped to [-clip_value, clip_value]
/// (NaN stays NaN). data_error for a negative clip_value.
template <Scalar S>
void clip_grad_value(const parameter_list<S>& params, double clip_value) {
    internal::require_option(clip_value >= 0, "clip_grad_value", "clip_value must be >= 0",
                           clip_value);
    params.require_gradients("clip_grad_value");
    const S hi = S(clip_value), lo = -hi;
    for (const auto& e : params.entries()) {
        S* g = e.grad();
        for (index_t i = 0; i < e.size; ++i) g[i] = g[i] < lo ? lo : (g[i] > hi ? hi : g[i]);
    }
}

template <TrainableNetwork Net>
void clip_grad_value(Net& net, double clip_value) {
    clip_grad_value(parameter_list<typename Net::scalar>(net), clip_value);
}

}  // namespace inn::train
