#pragma once
// Deterministic random number generation (docs/freia-semantics.md#random-generators).
//
// FrEIA draws from two global generators: PyTorch's CPU generator and NumPy's
// legacy RandomState. Both are MT19937 seeded with the standard init_genrand recurrence, so
// std::mt19937 (whose seeding and output are fixed by the C++ standard) reproduces their raw
// 32-bit streams.
// Every transform on top of the raw stream is written out here, never taken from <random>'s
// distributions, whose outputs differ between standard libraries.
//
// Floating-point notes: the transforms use only +, -, *, /, sqrt, log, log1p, sin and cos, each
// rounded as NumPy and PyTorch round it: no fused multiply-add. GCC and Clang contract a * b + c
// into one FMA by default where the target has one (-march=native on x86-64, aarch64), which
// changes the last bit of about one draw in ten; so contraction is switched off for this header
// only (the pragmas below), whatever the including target's flags, and the dense kernels keep
// theirs. log/sin/cos results are those of the platform's libm.

#include <Eigen/Dense>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__clang__)
#pragma float_control(push)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#if defined(__CUDACC__)  // nvcc's front end does not know the pragma but hands it to g++
#pragma nv_diag_suppress 1675
#endif
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#if defined(__CUDACC__)
#pragma nv_diag_default 1675
#endif
#endif

namespace inn {

namespace detail {

// Smallest 2^k - 1 that is >= v (NumPy's mask for rejection sampling).
inline std::uint64_t covering_mask(std::uint64_t v) {
    v |= v >> 1;
    v |= v >> 2;
    v |= v >> 4;
    v |= v >> 8;
    v |= v >> 16;
    v |= v >> 32;
    return v;
}

}  // namespace detail

// NumPy's legacy RandomState (np.random.seed / np.random.* functions), bit-exact.
class numpy_random_state {
 public:
    explicit numpy_random_state(std::uint32_t seed) { reseed(seed); }

    // np.random.seed(s) for an integer 0 <= s < 2^32: init_genrand(s), drops the cached normal.
    void reseed(std::uint32_t seed) {
        engine_.seed(seed);
        has_gauss_ = false;
        gauss_ = 0.0;
    }

    std::uint32_t next_u32() { return static_cast<std::uint32_t>(engine_()); }

    // NumPy's next_uint64 for MT19937: first draw is the high word.
    std::uint64_t next_u64() {
        const std::uint64_t hi = next_u32();
        const std::uint64_t lo = next_u32();
        return (hi << 32) | lo;
    }

    // np.random.random(): 53-bit double from two draws (27 + 26 bits).
    double next_double() {
        const std::uint32_t a = next_u32() >> 5;
        const std::uint32_t b = next_u32() >> 6;
        return (a * 67108864.0 + b) / 9007199254740992.0;
    }

    // Legacy bounded integer in [0, max]: mask rejection; no draw at all for max == 0.
    std::uint64_t interval(std::uint64_t max) {
        if (max == 0) {
            return 0;
        }
        const std::uint64_t mask = detail::covering_mask(max);
        std::uint64_t value = 0;
        if (max <= 0xffffffffULL) {
            do {
                value = next_u32() & mask;
            } while (value > max);
        } else {
            do {
                value = next_u64() & mask;
            } while (value > max);
        }
        return value;
    }

    // np.random.permutation(n): Fisher-Yates from the back, as in legacy shuffle.
    std::vector<int> permutation(int n) {
        std::vector<int> a(n > 0 ? static_cast<std::size_t>(n) : 0U);
        for (std::size_t i = 0; i < a.size(); ++i) {
            a[i] = static_cast<int>(i);
        }
        for (std::size_t i = a.size(); i-- > 1;) {
            const auto j = static_cast<std::size_t>(interval(i));
            std::swap(a[i], a[j]);
        }
        return a;
    }

    // Legacy standard normal (Marsaglia polar method); the second value of each pair is cached
    // and returned by the next call, exactly as NumPy does.
    double standard_normal() {
        if (has_gauss_) {
            has_gauss_ = false;
            const double cached = gauss_;
            gauss_ = 0.0;
            return cached;
        }
        double x1 = 0.0;
        double x2 = 0.0;
        double r2 = 0.0;
        do {
            x1 = 2.0 * next_double() - 1.0;
            x2 = 2.0 * next_double() - 1.0;
            r2 = x1 * x1 + x2 * x2;
        } while (r2 >= 1.0 || r2 == 0.0);
        const double f = std::sqrt(-2.0 * std::log(r2) / r2);
        gauss_ = f * x1;
        has_gauss_ = true;
        return f * x2;
    }

    // np.random.randint(low, high) (int64 result, high exclusive): low + interval(high - 1 - low).
    std::int64_t randint(std::int64_t low, std::int64_t high) {
        if (high <= low) {
            throw std::invalid_argument("numpy_random_state::randint: low >= high");
        }
        const std::uint64_t range =
            static_cast<std::uint64_t>(high) - static_cast<std::uint64_t>(low) - 1U;
        // Two's-complement wrap-around gives the right value even when high - low overflows.
        return static_cast<std::int64_t>(static_cast<std::uint64_t>(low) + interval(range));
    }

    // scipy.stats.special_ortho_group.rvs(n) as implemented in SciPy <= 1.10 (Householder
    // product). Newer SciPy versions use a QR-based algorithm with other values.
    Eigen::MatrixXd special_ortho_group(int n) {
        if (n < 2) {
            throw std::invalid_argument("special_ortho_group: dimension must be at least 2, got " +
                                        std::to_string(n));
        }
        Eigen::MatrixXd h = Eigen::MatrixXd::Identity(n, n);
        Eigen::VectorXd d(n);
        std::vector<double> x;
        std::vector<double> hx(static_cast<std::size_t>(n));
        for (int k = 0; k + 1 < n; ++k) {
            const int m = n - k;
            x.resize(static_cast<std::size_t>(m));
            for (double& xi : x) {
                xi = standard_normal();
            }
            double norm2 = 0.0;
            for (const double xi : x) {
                norm2 += xi * xi;
            }
            const double x0 = x[0];
            d(k) = x0 > 0.0 ? 1.0 : (x0 < 0.0 ? -1.0 : 1.0);
            x[0] += d(k) * std::sqrt(norm2);
            const double scale = std::sqrt((norm2 - x0 * x0 + x[0] * x[0]) / 2.0);
            for (double& xi : x) {
                xi /= scale;
            }
            // H[:, k:] -= (H[:, k:] x) x^T
            for (int r = 0; r < n; ++r) {
                double acc = 0.0;
                for (int j = 0; j < m; ++j) {
                    acc += h(r, k + j) * x[static_cast<std::size_t>(j)];
                }
                hx[static_cast<std::size_t>(r)] = acc;
            }
            for (int j = 0; j < m; ++j) {
                const double xj = x[static_cast<std::size_t>(j)];
                for (int r = 0; r < n; ++r) {
                    h(r, k + j) -= hx[static_cast<std::size_t>(r)] * xj;
                }
            }
        }
        double prod = 1.0;
        for (int k = 0; k + 1 < n; ++k) {
            prod *= d(k);
        }
        d(n - 1) = ((n - 1) % 2 == 0 ? 1.0 : -1.0) * prod;
        for (int r = 0; r < n; ++r) {
            h.row(r) *= d(r);
        }
        return h;
    }

 private:
    std::mt19937 engine_;
    bool has_gauss_ = false;
    double gauss_ = 0.0;
};

// The library's general generator, modelled on PyTorch's CPU generator: MT19937 seeded like
// torch.manual_seed, with PyTorch's transforms so that the number of raw draws per call (and, for
// uniform numbers and randperm, the values) match PyTorch. Keeping draw counts aligned means a
// module constructed after e.g. a randn call still sees the same stream as in FrEIA.
class generator {
 public:
    explicit generator(std::uint64_t seed = 0) : numpy_(static_cast<std::uint32_t>(seed)) {
        manual_seed(seed);
    }

    // torch.manual_seed(seed): init_genrand(seed mod 2^32), cached normal dropped. The owned NumPy
    // state is re-seeded from the same value so that one seed fixes the whole library.
    void manual_seed(std::uint64_t seed) {
        seed_ = seed;
        engine_.seed(static_cast<std::uint32_t>(seed & 0xffffffffULL));
        has_normal_ = false;
        next_normal_ = 0.0;
        numpy_.reseed(static_cast<std::uint32_t>(seed & 0xffffffffULL));
    }

    std::uint64_t initial_seed() const { return seed_; }

    std::uint32_t next_u32() { return static_cast<std::uint32_t>(engine_()); }

    // PyTorch's random64(): first draw is the high word.
    std::uint64_t next_u64() {
        const std::uint64_t hi = next_u32();
        const std::uint64_t lo = next_u32();
        return (hi << 32) | lo;
    }

    // Uniform in [0, 1) with 53 bits (PyTorch's double uniform_).
    double uniform01() { return uniform<double>(0.0, 1.0); }

    // PyTorch's uniform_real_distribution<T>: float keeps the low 24 bits of one 32-bit draw,
    // double the low 53 bits of one 64-bit draw; then x * (high - low) + low in T.
    // Rounding in the last step can give exactly `high`, as in PyTorch.
    template <class T>
    T uniform(T low, T high) {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                      "generator::uniform supports float and double");
        if constexpr (std::is_same_v<T, float>) {
            const std::uint32_t v = next_u32() & 0xffffffU;
            const float x = static_cast<float>(v) * (1.0f / 16777216.0f);
            return x * (high - low) + low;
        } else {
            const std::uint64_t v = next_u64() & 0x1fffffffffffffULL;
            const double x = static_cast<double>(v) * (1.0 / 9007199254740992.0);
            return x * (high - low) + low;
        }
    }

    // One normal sample: PyTorch's scalar normal_distribution<double> (Box-Muller on two 53-bit
    // uniforms, the sine half cached for the next call), then cast to T.
    template <class T>
    T normal(T mean = 0, T stddev = 1) {
        static_assert(std::is_floating_point_v<T>, "generator::normal needs a floating type");
        return static_cast<T>(standard_normal_double() * static_cast<double>(stddev) +
                              static_cast<double>(mean));
    }

    // torch.randperm(n) on CPU: swap-forward Fisher-Yates with random() % (n - i); PyTorch
    // switches to an inside-out shuffle with 64-bit draws for very large n.
    std::vector<std::int64_t> randperm(int n) {
        if (n < 0) {
            throw std::invalid_argument("randperm: n must be non-negative, got " +
                                        std::to_string(n));
        }
        const auto count = static_cast<std::size_t>(n);
        std::vector<std::int64_t> r(count);
        if (static_cast<std::uint64_t>(n) < std::numeric_limits<std::uint32_t>::max() / 20U) {
            for (std::size_t i = 0; i < count; ++i) {
                r[i] = static_cast<std::int64_t>(i);
            }
            for (std::size_t i = 0; i + 1 < count; ++i) {
                const auto z = static_cast<std::size_t>(next_u32() % (count - i));
                std::swap(r[i], r[i + z]);
            }
            return r;
        }
        for (std::size_t i = 0; i < count; ++i) {
            const auto z = static_cast<std::size_t>(next_u64() % (i + 1));
            r[i] = r[z];
            r[z] = static_cast<std::int64_t>(i);
        }
        return r;
    }

    // tensor.uniform_(low, high) on CPU: elements drawn one after another in memory order.
    // With the bound from torch_kaiming_uniform_bound / torch_default_init_bound this is PyTorch's
    // default nn.Linear / nn.Conv2d initialisation.
    template <class T>
    void fill_uniform(T* data, std::size_t n, T low, T high) {
        for (std::size_t i = 0; i < n; ++i) {
            data[i] = uniform<T>(low, high);
        }
    }

    // tensor.normal_(mean, stddev) on CPU. For n >= 16 PyTorch fills n uniforms and transforms
    // them in blocks of 16 (Box-Muller pairing element j with j + 8); a ragged tail re-draws the
    // last 16. Smaller n use the scalar cached path. The draw counts match PyTorch exactly; the
    // values match its portable kernel (PyTorch's AVX2 kernel differs in the last bits).
    template <class T>
    void fill_normal(T* data, std::size_t n, T mean, T stddev) {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                      "generator::fill_normal supports float and double");
        if (n < 16) {
            for (std::size_t i = 0; i < n; ++i) {
                data[i] = normal<T>(mean, stddev);
            }
            return;
        }
        for (std::size_t i = 0; i < n; ++i) {
            data[i] = uniform<T>(T(0), T(1));
        }
        for (std::size_t i = 0; i + 16 <= n; i += 16) {
            normal_fill_16(data + i, mean, stddev);
        }
        if (n % 16 != 0) {
            T* tail = data + (n - 16);
            for (std::size_t i = 0; i < 16; ++i) {
                tail[i] = uniform<T>(T(0), T(1));
            }
            normal_fill_16(tail, mean, stddev);
        }
    }

    // NumPy legacy state for the modules that draw from NumPy in FrEIA (PermuteRandom,
    // AllInOneBlock's soft permutation, OrthogonalTransform). Independent of the MT19937 above,
    // as NumPy's global state is independent of PyTorch's.
    numpy_random_state& numpy() { return numpy_; }

 private:
    double standard_normal_double() {
        if (has_normal_) {
            has_normal_ = false;
            return next_normal_;
        }
        const double u1 = uniform01();
        const double u2 = uniform01();
        const double r = std::sqrt(-2.0 * std::log1p(-u2));
        const double theta = 2.0 * pi * u1;
        next_normal_ = r * std::sin(theta);
        has_normal_ = true;
        return r * std::cos(theta);
    }

    template <class T>
    static void normal_fill_16(T* data, T mean, T stddev) {
        for (std::size_t j = 0; j < 8; ++j) {
            const T u1 = T(1) - data[j];  // [0, 1) -> (0, 1] so that log is finite
            const T u2 = data[j + 8];
            const T radius = std::sqrt(T(-2) * std::log(u1));
            const T theta = static_cast<T>(2.0 * pi * static_cast<double>(u2));
            data[j] = radius * std::cos(theta) * stddev + mean;
            data[j + 8] = radius * std::sin(theta) * stddev + mean;
        }
    }

    static constexpr double pi = 3.14159265358979323846;

    std::mt19937 engine_;
    std::uint64_t seed_ = 0;
    bool has_normal_ = false;
    double next_normal_ = 0.0;
    numpy_random_state numpy_;
};

// Bound of PyTorch's default bias initialisation for nn.Linear / nn.Conv2d: U(-b, b) with
// b = 1 / sqrt(fan_in) (0 when fan_in == 0).
inline double torch_default_init_bound(std::int64_t fan_in) {
    return fan_in > 0 ? 1.0 / std::sqrt(double(fan_in)) : 0.0;
}

// Bound of the default weight initialisation, kaiming_uniform_(a = sqrt(5)), evaluated as PyTorch
// does: sqrt(3) * gain / sqrt(fan_in) with gain = sqrt(2 / (1 + a^2)). Mathematically equal to
// torch_default_init_bound; in double the two often differ in the last bit, after rounding to float
// they agree (checked for fan_in up to 4e6). fan_in == 0 means a zero-element weight, which
// PyTorch leaves untouched (no draws); 0 is returned so callers need no special case.
inline double torch_kaiming_uniform_bound(std::int64_t fan_in) {
    if (fan_in <= 0) {
        return 0.0;
    }
    const double a = std::sqrt(5.0);
    const double gain = std::sqrt(2.0 / (1.0 + a * a));
    return std::sqrt(3.0) * (gain / std::sqrt(double(fan_in)));
}

}  // namespace inn

#if defined(__clang__)
#pragma float_control(pop)
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
