#pragma once
// Losses of a normalising flow, as functions of the latent z and log|det J| that also give
// their gradients. FrEIA's quick start trains with the maximum likelihood loss of a standard
// normal latent:
//
//   loss = mean over the batch of (0.5 * |z|^2 - log|det J|) / dims
//
// (the negative log-likelihood per dimension, up to the constant 0.5 log 2π). Its conditional
// form is the same function of the conditional flow's z and log-det: conditions enter through
// the network, not through the loss.
//
// A loss is any object with `S operator()(const loss_args<S>&) const` that returns the value
// and writes dL/dz and dL/d(log|det J|).

#include <span>

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

}  // namespace inn::train
