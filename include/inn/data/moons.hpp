#pragma once
// The "two moons" toy data set of FrEIA's quick start: scikit-learn's make_moons.
//
//   inn::generator g{0};
//   inn::row_matrix<float> x = inn::data::make_moons(1000, 0.05, g);   // 1000 x 2
//
// As sklearn.datasets.make_moons (scikit-learn 1.2) with random_state=np.random.RandomState(s)
// when `g` is inn::generator{s} and nothing else has drawn from its NumPy state:
//   * of n points, the first n / 2 (rounded down) lie on the outer moon
//     (cos t, sin t), t = linspace(0, π, n / 2), the other n - n / 2 on the inner moon
//     (1 - cos t, 1 - sin t - 0.5), t = linspace(0, π, n - n / 2);
//   * with `shuffle` (default, as scikit-learn) the rows are permuted (NumPy's legacy shuffle);
//   * then, for noise > 0, N(0, noise²) is added to every value, row by row (NumPy's legacy
//     normal). noise = 0 draws nothing (scikit-learn's noise=None).
// Draws come from the generator's NumPy state (g.numpy()), as FrEIA users' scikit-learn calls
// draw from NumPy. Computed in double, rounded to S at the end (as torch.Tensor(x) would).

#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "../core/errors.hpp"
#include "../core/random.hpp"
#include "../core/tensor_view.hpp"

namespace inn::data {

/// Points and which moon each came from (0: outer, 1: inner), as make_moons's (X, y).
template <Scalar S>
struct labelled_points {
    row_matrix<S> x;
    std::vector<int> label;
};

namespace detail {

/// np.linspace(0, π, m): i * (π / (m - 1)), the last exactly π; [0] for m = 1.
inline double linspace_pi(index_t i, index_t m) {
    if (m > 1 && i == m - 1) return std::numbers::pi;
    return m > 1 ? double(i) * (std::numbers::pi / double(m - 1)) : 0.0;
}

}  // namespace detail

/// make_moons with the labels. data_error for n < 0 (or beyond int), noise < 0 or not finite.
template <Scalar S = float>
labelled_points<S> make_moons_labelled(index_t n, double noise, generator& g, bool shuffle = true) {
    if (n < 0 || n > std::numeric_limits<int>::max())
        throw data_error("inn: make_moons: the number of points must be in [0, 2^31), got " +
                         std::to_string(n));
    if (!(noise >= 0) || !std::isfinite(noise))
        throw data_error("inn: make_moons: noise must be finite and >= 0, got " +
                         std::to_string(noise));
    const index_t n_out = n / 2, n_in = n - n_out;
    row_matrix<double> x(n, 2);
    std::vector<int> label(std::size_t(n), 0);
    for (index_t i = 0; i < n_out; ++i) {
        const double t = detail::linspace_pi(i, n_out);
        x(i, 0) = std::cos(t);
        x(i, 1) = std::sin(t);
    }
    for (index_t i = 0; i < n_in; ++i) {
        const double t = detail::linspace_pi(i, n_in);
        x(n_out + i, 0) = 1 - std::cos(t);
        x(n_out + i, 1) = 1 - std::sin(t) - 0.5;
        label[std::size_t(n_out + i)] = 1;
    }
    auto& np = g.numpy();
    if (shuffle) {
        const std::vector<int> order = np.permutation(int(n));
        row_matrix<double> shuffled(n, 2);
        std::vector<int> shuffled_label(label.size());
        for (index_t i = 0; i < n; ++i) {
            shuffled.row(i) = x.row(order[std::size_t(i)]);
            shuffled_label[std::size_t(i)] = label[std::size_t(order[std::size_t(i)])];
        }
        x.swap(shuffled);
        label.swap(shuffled_label);
    }
    if (noise > 0)
        for (index_t i = 0; i < n; ++i)
            for (index_t j = 0; j < 2; ++j) x(i, j) += noise * np.standard_normal();
    return {x.template cast<S>(), std::move(label)};
}

/// make_moons: an n x 2 row-major matrix of points (see above).
template <Scalar S = float>
row_matrix<S> make_moons(index_t n, double noise, generator& g, bool shuffle = true) {
    return make_moons_labelled<S>(n, noise, g, shuffle).x;
}

}  // namespace inn::data
