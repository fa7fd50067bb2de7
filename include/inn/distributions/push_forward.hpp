#pragma once
// PushForward<Net>: the distribution of data x whose latent code z = f(x) under a network f
// (SequenceINN or GraphINN, its forward direction) is standard normal: x = f^{-1}(z),
// z ~ N(0, I). The usual normalising-flow density.
//
//   Net net(seed);                                        // trained f: x -> z
//   PushForward flow(net);                                // keeps a reference to net
//   vector<double> lp = flow.log_prob(x);                 // log p(x), one per sample
//   vector<double> lpc = cflow.log_prob(x, conditions(c)); // a conditional network
//   auto xs = flow.sample(1000, g);                       // 1000 samples, from generator g
//   auto xc = cflow.sample(1000, g, conditions(c1));      // a one-row condition is repeated
//
// log p(x) = log N(f(x); 0, I) + log|det J_f(x)|, computed by ONE forward pass with jac = true.
// (FrEIA's PushForwardDistribution.log_prob passes jac=False, which gives a zero log-det for a
// GraphINN; not reproduced.) `sample` draws z from the generator (as
// torch.randn(n, *shape), output by output in the network's output order) and runs the inverse
// with jac = false: the same generator state gives the same samples. For a network whose modules
// invert iteratively (IResNetLayer), samples are as exact as that iteration.
//
// Several inputs and outputs: the base is standard normal over all outputs together, so
// log p(x_1, ..., x_m) = sum over outputs i of log N(z_i; 0, I) + log|det J_f|; x is passed as
// `inputs(x1, x2, ...)`, and `sample` returns a std::array with one matrix per network input
// (a single matrix for one input).
//
// Relation to FrEIA: this is FrEIA's PullBackDistribution(StandardNormalDistribution, f) (=
// PushForwardDistribution(base, Inverse(f))). FrEIA's PushForwardDistribution(base, f), the
// density of f(z), is `PushForward<inverse_t<Net>>` over the inverse network `inverse_t<Net>
// inv(net)` (a copy of the parameters).
//
// The network must outlive the distribution. Calls run the network, so they are not const and
// not thread-safe (one network, one caller at a time).

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "../core/batch_io.hpp"
#include "../core/random.hpp"
#include "../graph/network.hpp"
#include "standard_normal.hpp"

namespace inn {

template <class Net>
class PushForward {
public:
    using network_type = Net;
    using scalar = typename Net::scalar;
    /// The samples of `sample`: one matrix, or one per network input.
    using sample_type =
        std::conditional_t<Net::n_inputs == 1, row_matrix<scalar>,
                           std::array<row_matrix<scalar>, std::size_t(Net::n_inputs)>>;

    struct sample_result {
        sample_type x;
        vector<scalar> log_prob;  // log p(x) of each sample
    };

    explicit PushForward(Net& net) : net_(&net) {}

    Net& network() const { return *net_; }

    /// log p(x) per sample; `rest` is optionally `conditions(c...)`.
    template <class X, class... Rest>
    vector<scalar> log_prob(const X& x, const Rest&... rest) {
        check_rest<Rest...>();
        auto r = net_->forward(x, rest..., true);
        vector<scalar> lp = std::move(r.log_jac_det);
        if constexpr (Net::n_outputs == 1) {
            add_base(r.z, 0, lp);
        } else {
            for (int i = 0; i < Net::n_outputs; ++i) add_base(r.z[std::size_t(i)], i, lp);
        }
        return lp;
    }

    /// n samples x = f^{-1}(z), z drawn from `g`; `rest` is optionally `conditions(c...)`, each
    /// with n rows or one row (used for every sample). data_error for n < 0.
    template <class... Rest>
    sample_type sample(index_t n, generator& g, const Rest&... rest) {
        check_rest<Rest...>();
        const latents z = draw(n, g);
        return run_inverse(z, n, false, rest...).x;
    }

    /// Samples together with their log-density, log p(x) = log N(z) - log|det J_{f^-1}(z)|, from
    /// the same inverse pass (jac = true).
    template <class... Rest>
    sample_result sample_with_log_prob(index_t n, generator& g, const Rest&... rest) {
        check_rest<Rest...>();
        const latents z = draw(n, g);
        auto r = run_inverse(z, n, true, rest...);
        vector<scalar> lp = -r.log_jac_det;
        for (int i = 0; i < Net::n_outputs; ++i) add_base(z[std::size_t(i)], i, lp);
        return {std::move(r.x), std::move(lp)};
    }

private:
    using latents = std::array<row_matrix<scalar>, std::size_t(Net::n_outputs)>;

    template <class... Rest>
    static constexpr void check_rest() {
        static_assert(sizeof...(Rest) <= 1 && (detail::is_conditions<Rest> && ...),
                      "inn: PushForward takes the data (or n and a generator), then optionally "
                      "conditions(c...)");
    }

    static void add_base(const row_matrix<scalar>& z, int i, vector<scalar>& lp) {
        const dims d = Net::output_dims(i);
        const batch_source<scalar> src =
            source_of<scalar>(z, d, "latent", "PushForward output " + std::to_string(i));
        detail::add_standard_normal_log_prob(src, d.size(), lp.data());
    }

    static latents draw(index_t n, generator& g) {
        if (n < 0)
            throw data_error("inn: PushForward: negative sample count " + std::to_string(n));
        latents z;
        for (int i = 0; i < Net::n_outputs; ++i) {
            row_matrix<scalar>& m = z[std::size_t(i)];
            m.resize(n, Net::output_dims(i).size());
            g.fill_normal<scalar>(m.data(), std::size_t(m.size()), scalar(0), scalar(1));
        }
        return z;
    }

    // Condition j as an n-row matrix (a one-row condition repeated).
    template <class C>
    static row_matrix<scalar> condition_rows(const C& c, int j, index_t n) {
        const dims d = Net::condition_dims(j);
        const batch_source<scalar> src =
            source_of<scalar>(c, d, "condition", "PushForward condition " + std::to_string(j));
        if (src.batch != n && src.batch != 1)
            throw data_error("inn: PushForward::sample: condition " + std::to_string(j) + " has " +
                             std::to_string(src.batch) + " rows for " + std::to_string(n) +
                             " samples (give n rows or one)");
        row_matrix<scalar> m(n, d.size());
        for (index_t b = 0; b < n; ++b) {
            index_t k = 0;
            src.for_each(src.batch == 1 ? 0 : b, [&](const scalar& v) { m(b, k++) = v; });
        }
        return m;
    }

    template <class... Rest>
    auto run_inverse(const latents& z, index_t n, bool jac, const Rest&... rest) {
        auto with_conditions = [&](const auto&... c) {
            return [&]<std::size_t... I>(std::index_sequence<I...>) {
                if constexpr (Net::n_outputs == 1)
                    return net_->inverse(z[0], c..., jac);
                else
                    return net_->inverse(inputs(z[I]...), c..., jac);
            }(std::make_index_sequence<std::size_t(Net::n_outputs)>{});
        };
        if constexpr (sizeof...(Rest) == 0) {
            return with_conditions();
        } else {
            const auto& cond = std::get<0>(std::forward_as_tuple(rest...));
            auto rows = [&]<std::size_t... J>(std::index_sequence<J...>) {
                return std::array<row_matrix<scalar>, sizeof...(J)>{
                    condition_rows(std::get<J>(cond.items), int(J), n)...};
            }(std::make_index_sequence<std::tuple_size_v<decltype(cond.items)>>{});
            return [&]<std::size_t... J>(std::index_sequence<J...>) {
                return with_conditions(conditions(rows[J]...));
            }(std::make_index_sequence<std::tuple_size_v<decltype(cond.items)>>{});
        }
    }

    Net* net_;
};

template <class Net>
PushForward(Net&) -> PushForward<Net>;

}  // namespace inn
