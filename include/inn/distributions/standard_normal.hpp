#pragma once
// StandardNormal<Shape> (FrEIA.distributions.StandardNormalDistribution): independent
// N(0, 1) values over an event of shape `Shape`.
//
//   StandardNormal<Shape<3, 8, 8>> base;
//   vector<float> lp = base.log_prob(z);                 // z: batch x 192
//   row_matrix<double> s = base.sample<double>(n, g);    // n x 192, from generator g
//
// log_prob of a sample = sum over its values of (-z^2 / 2 - ln sqrt(2 pi)), as torch's
// Independent(Normal(0, 1)). `sample` draws like torch.randn(n, *shape) from the generator (same
// number of raw draws; for float the values of PyTorch's portable kernel), so a seed fixes the
// samples.

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>

#include "../core/batch_io.hpp"
#include "../core/random.hpp"
#include "../core/shape.hpp"
#include "../core/tensor_view.hpp"

namespace inn {

namespace detail {

/// The scalar type of user data: an Eigen object's Scalar, a span's element, a container's value.
template <class X>
struct data_scalar {
    using type = std::remove_cv_t<typename X::value_type>;
};
template <class X>
    requires EigenDense<X>
struct data_scalar<X> {
    using type = typename X::Scalar;
};
template <class T, std::size_t N>
struct data_scalar<std::span<T, N>> {
    using type = std::remove_cv_t<T>;
};
template <class X>
using data_scalar_t = typename data_scalar<X>::type;

/// ln sqrt(2 pi), rounded once to S (torch: the Python constant applied to an S tensor).
template <Scalar S>
inline S log_sqrt_2pi() {
    return S(std::log(std::sqrt(2.0 * 3.14159265358979323846)));
}

/// Adds the standard-normal log-density of each of `src.batch` samples of `size` values to lp.
template <Scalar S>
void add_standard_normal_log_prob(const batch_source<S>& src, index_t /*size: src.sample's*/,
                                   S* lp) {
    const S c = log_sqrt_2pi<S>();
    for (index_t b = 0; b < src.batch; ++b) {
        S s = 0;
        src.for_each(b, [&](const S& z) { s += -(z * z) / S(2) - c; });
        lp[b] += s;
    }
}

}  // namespace detail

template <ShapeType EventShape>
struct StandardNormal {
    static constexpr dims event_shape = EventShape::value;
    static constexpr index_t event_size = event_shape.size();

    /// log N(z; 0, I) per sample. `z`: (batch x event_size) Eigen data (any layout), an xtensor
    /// (batch, *shape) or a span of whole samples; throws inn::data_error on a size mismatch.
    template <class Z>
    vector<detail::data_scalar_t<Z>> log_prob(const Z& z) const {
        using S = detail::data_scalar_t<Z>;
        const batch_source<S> src = source_of<S>(z, event_shape, "value", "StandardNormal");
        vector<S> lp = vector<S>::Zero(src.batch);
        detail::add_standard_normal_log_prob(src, event_size, lp.data());
        return lp;
    }

    /// n samples (rows), drawn as torch.randn(n, *shape) from `g`. data_error for n < 0.
    template <Scalar S = float>
    row_matrix<S> sample(index_t n, generator& g) const {
        if (n < 0)
            throw data_error("inn: StandardNormal::sample: negative sample count " +
                             std::to_string(n));
        row_matrix<S> z(n, event_size);
        sample_into(std::span<S>(z.data(), std::size_t(z.size())), g);
        return z;
    }
    /// Fills `out` (whole samples, contiguous) with standard-normal draws; allocates nothing.
    template <Scalar S>
    void sample_into(std::span<S> out, generator& g) const {
        if (out.size() % std::size_t(event_size) != 0)
            throw data_error("inn: StandardNormal::sample_into: " + std::to_string(out.size()) +
                             " values are not whole samples of " + std::to_string(event_size));
        g.fill_normal<S>(out.data(), out.size(), S(0), S(1));
    }
};

}  // namespace inn
