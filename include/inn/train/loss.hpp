#pragma once
// Losses of a normalising flow, as functions of the latent z and log|det J| that also give
// their gradients. FrEIA's quick start trains with the maximum likelihood loss of a standard
// normal latent:
//
//   loss = mean over the batch of (0.5 * |z|^2 - log|det J|) / dims
//
// (the negative log-likelihood per dimension, up to the constant 0.5 log 2π). Its conditional
// form is the same function of the conditional flow's z and log-det: conditions enter through
// the network, not through the loss, so there is no separate conditional loss.
//
// For held-out evaluation, nll(net, x, ...) and bits_per_dim(net, x, ...) run the network's
// ordinary forward pass (no trainer needed) and return the full negative log-likelihood per
// dimension, constant included.
//
// A loss is any object with `S operator()(const loss_args<S>&) const` that returns the value
// and writes dL/dz and dL/d(log|det J|).

#include <cmath>
#include <numbers>
#include <span>
#include <string>

#include "../core/errors.hpp"
#include "../core/tensor_view.hpp"

namespace inn::train {

/// What a loss sees: the network's outputs z (one or several tensors of `size[i]` values per
/// sample) and log|det J| for `batch` samples; it writes their gradients.
template <Scalar S>
struct loss_args {
    index_t batch = 0;
    std::span<const cview<S>> z;
    std::span<const index_t> size;
    const S* log_jac_det = nullptr;
    std::span<const view<S>> grad_z;
    S* grad_log_jac_det = nullptr;
};

/// FrEIA's maximum likelihood loss with a standard normal latent, per dimension and averaged
/// over the batch (dims = all values of all outputs of a sample).
struct max_likelihood_t {
    template <Scalar S>
    S operator()(const loss_args<S>& a) const {
        index_t dims = 0;
        for (index_t n : a.size) dims += n;
        const S w = S(1) / (S(a.batch) * S(dims));
        S total = 0;
        for (std::size_t i = 0; i < a.z.size(); ++i) {
            for (index_t b = 0; b < a.batch; ++b) {
                const S* z = a.z[i].row(b);
                S* g = a.grad_z[i].row(b);
                S sq = 0;
                for (index_t j = 0; j < a.size[i]; ++j) {
                    sq += z[j] * z[j];
                    g[j] = w * z[j];
                }
                total += S(0.5) * sq;
            }
        }
        for (index_t b = 0; b < a.batch; ++b) {
            total -= a.log_jac_det[b];
            a.grad_log_jac_det[b] = -w;
        }
        return total * w;
    }
};
inline constexpr max_likelihood_t max_likelihood{};

/// The negative log-likelihood of a batch under the flow with a standard normal latent, in nats
/// per dimension, averaged over the batch:
///
///   mean over samples of (0.5 |z|^2 + 0.5 D log 2π - log|det J|) / D,   D = values per sample
///
/// that is max_likelihood's value plus 0.5 log 2π. `x` and `rest...` as for net.forward
/// (inputs(...), conditions(...)); it runs the ordinary forward pass, so it needs no trainer and
/// leaves gradients alone. Accumulated in double. data_error for an empty batch.
template <class Net, class X, class... Rest>
double nll(Net& net, const X& x, const Rest&... rest) {
    static_assert(!Net::reversed,
                  "inn: nll evaluates the density through the forward network, not inverse_t");
    auto [z, log_jac_det] = net.forward(x, rest...);
    const index_t batch = log_jac_det.size();
    if (batch == 0) throw data_error("inn: nll: the batch is empty");
    double sq = 0, dims = 0;
    auto add = [&](const auto& m) {
        for (index_t b = 0; b < m.rows(); ++b)
            for (index_t j = 0; j < m.cols(); ++j) sq += double(m(b, j)) * double(m(b, j));
        dims += double(m.cols());
    };
    if constexpr (Net::n_outputs == 1)
        add(z);
    else
        for (const auto& m : z) add(m);
    double ljd = 0;
    for (index_t b = 0; b < batch; ++b) ljd += double(log_jac_det[b]);
    const double half_log_2pi = 0.5 * std::log(2 * std::numbers::pi);
    return (0.5 * sq - ljd) / (double(batch) * dims) + half_log_2pi;
}

/// nll in bits per dimension: nll / log 2. (For images dequantised from 256 levels and scaled
/// to [0, 1), the usual figure adds log2(256) = 8 to this.)
template <class Net, class X, class... Rest>
double bits_per_dim(Net& net, const X& x, const Rest&... rest) {
    return nll(net, x, rest...) / std::numbers::ln2;
}

}  // namespace inn::train
