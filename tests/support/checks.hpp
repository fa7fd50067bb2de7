#pragma once
// Shared test helpers: independent truths to compare a network against.
//  * log|det J| from a central finite-difference Jacobian (double precision, small sizes);
//  * round trips forward -> inverse.

#include <catch2/catch.hpp>

#include <Eigen/Dense>
#include <inn/inn.hpp>

namespace inn::test {

/// Max |a - b| / (1 + |b|) over all entries.
template <class A, class B>
double max_rel_error(const A& a, const B& b) {
    REQUIRE(a.rows() == b.rows());
    REQUIRE(a.cols() == b.cols());
    double m = 0;
    for (Eigen::Index i = 0; i < a.rows(); ++i)
        for (Eigen::Index j = 0; j < a.cols(); ++j)
            m = std::max(m, std::abs(double(a(i, j)) - double(b(i, j))) / (1.0 + std::abs(double(b(i, j)))));
    return m;
}

/// Forward of `xs`, with any condition matrices replaced by row `b` repeated.
template <class Net>
row_matrix<double> forward_rows(Net& net, const row_matrix<double>& xs, Eigen::Index) {
    return net.forward(xs).z;
}
template <class Net, class... C>
row_matrix<double> forward_rows(Net& net, const row_matrix<double>& xs, Eigen::Index b,
                                const conditions<C...>& c) {
    auto rep = [&](const auto& m) {
        row_matrix<double> r(xs.rows(), m.cols());
        for (Eigen::Index i = 0; i < xs.rows(); ++i) r.row(i) = m.row(b);
        return r;
    };
    return std::apply(
        [&](const auto&... m) {
            auto reps = std::make_tuple(rep(m)...);
            return std::apply([&](const auto&... r) { return net.forward(xs, conditions(r...)).z; }, reps);
        },
        c.items);
}

/// log|det dz/dx| of a single-input, single-output network at each row of `x`, by central
/// differences of the forward pass (the network must be in double). `rest...` are forwarded
/// (e.g. `conditions(c)`); condition rows are taken from the same batch row.
template <class Net, class... Rest>
Eigen::VectorXd numerical_log_det(Net& net, const row_matrix<double>& x, const Rest&... rest) {
    const Eigen::Index n = x.cols();
    Eigen::VectorXd out(x.rows());
    const double h = 1e-6;
    net.reserve(std::max<index_t>(2 * n, x.rows()));
    for (Eigen::Index b = 0; b < x.rows(); ++b) {
        // All 2n perturbed copies of sample b in one batch.
        row_matrix<double> xs(2 * n, n);
        for (Eigen::Index k = 0; k < n; ++k) {
            xs.row(2 * k) = x.row(b);
            xs.row(2 * k + 1) = x.row(b);
            xs(2 * k, k) += h;
            xs(2 * k + 1, k) -= h;
        }
        auto z = forward_rows(net, xs, b, rest...);
        Eigen::MatrixXd J(z.cols(), n);
        for (Eigen::Index k = 0; k < n; ++k) J.col(k) = (z.row(2 * k) - z.row(2 * k + 1)).transpose() / (2 * h);
        out(b) = std::log(std::abs(J.determinant()));
    }
    return out;
}

/// An input gradient `gx` against central differences (step `h`) of `loss(x)` at every scalar
/// of `x`: max |gx - numeric| / max(1, max |numeric|).
template <class Loss>
double input_gradient_error(const row_matrix<double>& x, const row_matrix<double>& gx,
                            Loss&& loss, double h = 1e-6) {
    REQUIRE(gx.rows() == x.rows());
    REQUIRE(gx.cols() == x.cols());
    double worst = 0, scale = 1;
    for (Eigen::Index i = 0; i < x.size(); ++i) {
        row_matrix<double> up = x, down = x;
        up.data()[i] += h;
        down.data()[i] -= h;
        const double num = (loss(up) - loss(down)) / (2 * h);
        worst = std::max(worst, std::abs(num - gx.data()[i]));
        scale = std::max(scale, std::abs(num));
    }
    return worst / scale;
}

/// Random data of a network's input shape.
template <class S = double>
row_matrix<S> random_batch(Eigen::Index batch, Eigen::Index features, unsigned seed = 1) {
    generator g(seed);
    row_matrix<S> x(batch, features);
    for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = g.normal<S>();
    return x;
}

}  // namespace inn::test
