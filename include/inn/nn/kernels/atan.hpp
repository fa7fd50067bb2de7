#pragma once
// atan of float, on scalars and on Eigen arrays of any fixed size with the same operations per
// lane: the soft clamp of the coupling blocks (FrEIA's default, clamp * 0.636 * atan) runs on
// every subnet output, and Eigen 3.4 has no vectorised atan (a loop of glibc's atanf does not
// vectorise). Double keeps std::atan.
//
// The reduction and polynomial are Cephes' atanf (S. L. Moshier): |x| above tan(3 pi / 8) maps
// to -1 / |x| plus pi / 2, above tan(pi / 8) to (|x| - 1) / (|x| + 1) plus pi / 4, and on the
// remaining |r| <= tan(pi / 8) an odd polynomial of degree 9. Within 2.5 ulp of the exactly
// rounded atan over all of float's range (2.2 ulp at worst, next to tan(pi / 8); glibc's atanf:
// 1 ulp), NaN, +-Inf and +-0 as std::atan: tests/test_nn.cpp.

#include <cstring>

#include <Eigen/Core>

namespace inn::nn::kernels {

namespace detail {

inline constexpr float atan_tan_3pi_8 = 2.414213562373095f;
inline constexpr float atan_tan_pi_8 = 0.4142135623730950f;
// pi / 2 and pi / 4 as a float and the float nearest to the rest: added rest first, so that
// the constants' rounding does not enter the result (Cody and Waite).
inline constexpr float atan_pi_2 = 0x1.921fb6p+0f, atan_pi_2_rest = -0x1.777a5cp-25f;
inline constexpr float atan_pi_4 = 0x1.921fb6p-1f, atan_pi_4_rest = -0x1.777a5cp-26f;

/// r + r^3 P(r^2), atan on |r| <= tan(pi / 8), z = r^2; r is a float or a vector of float (a
/// macro: GCC drops a dependent vector type's attribute in template arguments), undefined below.
inline constexpr float atan_p[4] = {8.05374449538e-2f, -1.38776856032e-1f, 1.99777106478e-1f,
                                    -3.33329491539e-1f};
#define INN_ATAN_POLYNOMIAL(r, z)                                                                  \
    ((((detail::atan_p[0] * (z) + detail::atan_p[1]) * (z) + detail::atan_p[2]) * (z) +            \
      detail::atan_p[3]) *                                                                         \
         (z) * (r) +                                                                               \
     (r))

} // namespace detail

/// atan(x), with the operations of each lane of the array form below.
inline float atan(float x) {
    const float a = x < 0.f ? -x : x;
    const bool big = a > detail::atan_tan_3pi_8, mid = a > detail::atan_tan_pi_8;
    const float num = big ? -1.f : mid ? a - 1.f : a;
    const float den = big ? a : mid ? a + 1.f : 1.f;
    const float base = big ? detail::atan_pi_2 : mid ? detail::atan_pi_4 : 0.f;
    const float rest = big ? detail::atan_pi_2_rest : mid ? detail::atan_pi_4_rest : 0.f;
    const float r = num / den, z = r * r;
    const float y = base + (rest + INN_ATAN_POLYNOMIAL(r, z));
    return x == 0.f ? x : x < 0.f ? -y : y;
}

/// atan(x) for every lane: one division and the polynomial, the range picked by selects
/// (GCC/Clang vector extensions: lighter to compile than Eigen's expressions, in every
/// coupling block's tail).
template <int N> Eigen::Array<float, N, 1> atan(const Eigen::Array<float, N, 1>& x) {
    Eigen::Array<float, N, 1> out;
    if constexpr (N > 1 && (N & (N - 1)) == 0) {
        typedef float vec __attribute__((vector_size(N * sizeof(float))));
        typedef int mask __attribute__((vector_size(N * sizeof(float))));
        vec v;
        std::memcpy(&v, x.data(), sizeof v);
        const vec zero{}, one = zero + 1.f;
        const vec a = v < zero ? -v : v;
        const mask big = a > zero + detail::atan_tan_3pi_8;
        const mask mid = a > zero + detail::atan_tan_pi_8;
        const vec num = big ? -one : mid ? a - 1.f : a;
        const vec den = big ? a : mid ? a + 1.f : one;
        const vec base = big ? zero + detail::atan_pi_2 : mid ? zero + detail::atan_pi_4 : zero;
        const vec rest = big   ? zero + detail::atan_pi_2_rest
                         : mid ? zero + detail::atan_pi_4_rest
                               : zero;
        const vec r = num / den, z = r * r;
        const vec y = base + (rest + INN_ATAN_POLYNOMIAL(r, z));
        const vec res = v == zero ? v : v < zero ? -y : y; // atan(-0) = -0
        std::memcpy(out.data(), &res, sizeof res);
    } else {
        for (int l = 0; l < N; ++l)
            out[l] = atan(x[l]);
    }
    return out;
}

#undef INN_ATAN_POLYNOMIAL

} // namespace inn::nn::kernels
