#pragma once
// Small helpers shared by the examples: random data and printing statistics.

#include <cstdio>
#include <string>

#include <inn/inn.hpp>

namespace example {

/// Standard-normal data from a seeded generator.
template <class S = float>
inn::row_matrix<S> randn(Eigen::Index rows, Eigen::Index cols, std::uint64_t seed) {
    inn::generator g(seed);
    inn::row_matrix<S> m(rows, cols);
    g.fill_normal(m.data(), std::size_t(m.size()), S(0), S(1));
    return m;
}

template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
    return double((a - b).cwiseAbs().maxCoeff());
}

template <class V>
void print_log_det(const char* what, const V& ljd) {
    double mean = double(ljd.mean());
    double var = double((ljd.array() - ljd.mean()).square().sum()) / double(std::max<Eigen::Index>(1, ljd.size() - 1));
    std::printf("%-28s mean %+.5f  std %.5f  min %+.5f  max %+.5f\n", what, mean, std::sqrt(var),
                double(ljd.minCoeff()), double(ljd.maxCoeff()));
}

}  // namespace example
