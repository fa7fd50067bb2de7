#pragma once
// Dense kernels behind nn::Linear, nn::Conv2d and the fused subnets of nn::Sequential. All sizes
// that matter are template arguments, so each layer gets loops of its own shape:
//
//   * gemm_nt       Y = X Wᵀ (the product of a Linear layer), a matrix-vector product per sample
//                   for tiny batches (streams W once per sample, no packing), Eigen's GEMM
//                   otherwise;
//   * bias_act      Y = act(Y + b) in one pass over Y (bias and activation fused);
//   * small_mlp     Linear<I, H> -> element-wise act -> Linear<H, O> for small I and O (FrEIA's
//                   subnets of low-dimensional data): the hidden layer never leaves registers.
//                   Whole groups of samples run sample-vectorised (one SIMD lane per sample,
//                   weights broadcast, no horizontal sums); the remainder, batch 1 included,
//                   runs hidden-vectorised per sample.
//
// Vectors are GCC/Clang vector extensions of 64 bytes: AVX-512 registers with -march=native,
// pairs or quads of narrower ones otherwise.

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>

#include <Eigen/Core>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "../core/config.hpp"
#include "../core/tensor_view.hpp"

namespace inn::nn::kernels {

/// The identity, for layers without an activation to fuse.
struct no_act {
    template <class T> T operator()(T x) const { return x; }
};

/// Switches for measuring what each kernel buys (benchmarks/ turns them off one at a time);
/// all on by default. Each is read once per layer call. Off means: `gemm` - Eigen's GEMM for
/// the products of Linear layers and permutation matrices; `conv` - im2col + Eigen's GEMM for
/// convolutions; `mlp` - small subnets layer by layer instead of the fused small_mlp;
/// `fuse_activation` - bias and activation in separate passes over the output;
/// `share_buffers` - one buffer per group of connections between modules, none shared by
/// lifetime; `views` - Flatten, Reshape, Split and Concat copy instead of being views (both read
/// by network::reserve, see graph/memory_plan.hpp); `fuse_coupling` - the element-wise tail of
/// an affine coupling (clamp, exp, multiply-add, log-det sum) pass by pass instead of in one.
struct switches {
    bool gemm = true;
    bool conv = true;
    bool mlp = true;
    bool fuse_activation = true;
    bool share_buffers = true;
    bool views = true;
    bool fuse_coupling = true;
};
inline switches& tuning() {
    static switches s;
    return s;
}

/// The widest vectors the target has (64 bytes with AVX-512, 32 with AVX, else 16): wider
/// ones would be split anyway, and passing them by value would change the ABI.
#if defined(__AVX512F__)
inline constexpr int vector_bytes = 64;
#elif defined(__AVX__)
inline constexpr int vector_bytes = 32;
#else
inline constexpr int vector_bytes = 16;
#endif

template <Scalar S> struct simd {
    static constexpr int lanes = vector_bytes / int(sizeof(S));
    typedef S vec __attribute__((vector_size(vector_bytes)));

    static vec load(const S* p) {
        vec v;
        std::memcpy(&v, p, sizeof(vec));
        return v;
    }
    static void store(S* p, const vec& v) { std::memcpy(p, &v, sizeof(vec)); }
    static vec broadcast(S s) { return vec{} + s; }
    /// Sum of the lanes: halves added while wider than 16 bytes (the vector never goes to
    /// memory), then the last lanes one by one.
    static S sum(vec v) {
        typedef S v16b __attribute__((vector_size(16)));
        v16b q;
        if constexpr (vector_bytes == 64) {
            typedef S v32b __attribute__((vector_size(32)));
            v32b h;
            if constexpr (lanes == 16)
                h = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                    __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
            else
                h = __builtin_shufflevector(v, v, 0, 1, 2, 3) +
                    __builtin_shufflevector(v, v, 4, 5, 6, 7);
            if constexpr (lanes == 16)
                q = __builtin_shufflevector(h, h, 0, 1, 2, 3) +
                    __builtin_shufflevector(h, h, 4, 5, 6, 7);
            else
                q = __builtin_shufflevector(h, h, 0, 1) + __builtin_shufflevector(h, h, 2, 3);
        } else if constexpr (vector_bytes == 32) {
            if constexpr (lanes == 8)
                q = __builtin_shufflevector(v, v, 0, 1, 2, 3) +
                    __builtin_shufflevector(v, v, 4, 5, 6, 7);
            else
                q = __builtin_shufflevector(v, v, 0, 1) + __builtin_shufflevector(v, v, 2, 3);
        } else {
            q = v;
        }
        constexpr int n = 16 / int(sizeof(S));
        if constexpr (n == 4)
            return (q[0] + q[2]) + (q[1] + q[3]);
        else
            return q[0] + q[1];
    }
    /// An element-wise functor applied to every lane. ReLU (a functor with `relu = true`) is one
    /// max instruction with AVX-512; it gives max(x, 0) exactly as x > 0 ? x : 0 does, NaN and
    /// -0 included (the second operand, +0, is returned for both).
    template <class F> static vec apply(F f, vec v) {
#if defined(__AVX512F__)
        if constexpr (requires { F::relu; }) {
            if constexpr (std::is_same_v<S, float>)
                return _mm512_max_ps(v, vec{});
            else
                return _mm512_max_pd(v, vec{});
        }
#endif
        for (int l = 0; l < lanes; ++l)
            v[l] = f(v[l]);
        return v;
    }
};

/// dst[0, n) = f(src[0, n)) for an Eigen array expression `f`, one full SIMD packet at a time
/// and the remaining elements one by one: Eigen's own loop over a dynamic size would leave runs
/// shorter than a packet to scalar code anyway, and a padded copy costs store-forwarding stalls.
template <Scalar S, class F> void apply_packets(const S* src, S* dst, index_t n, F f) {
    constexpr int L = simd<S>::lanes;
    using A = Eigen::Array<S, L, 1>;
    using A1 = Eigen::Array<S, 1, 1>;
    index_t i = 0;
    for (; i + L <= n; i += L)
        Eigen::Map<A>(dst + i) = f(Eigen::Map<const A>(src + i));
    for (; i < n; ++i) {
        const A1 v(src[i]);
        const A1 r = f(v);
        dst[i] = r(0);
    }
}

/// dst = alpha * tanh(src * tenth / alpha) (the soft clamp of AllInOneBlock, constants rounded
/// to S first as PyTorch does); one instantiation per scalar type.
template <Scalar S> void tanh_clamp(const S* src, S* dst, index_t n, S alpha, S tenth) {
    apply_packets(src, dst, n, [&](const auto& v) { return (v * tenth / alpha).tanh() * alpha; });
}
/// p = exp(p), or exp(-p) with `negate`.
template <Scalar S> void exp_inplace(S* p, index_t n, bool negate) {
    if (negate)
        apply_packets(p, p, n, [](const auto& v) { return (-v).exp(); });
    else
        apply_packets(p, p, n, [](const auto& v) { return v.exp(); });
}

/// The register tile of the GEMM below: MR rows of W (broadcast) times NV vectors of a row-major
/// B panel (loaded), MR * NV accumulators.
template <Scalar S, int MR, int NV> struct gemm_tile {
    using V = simd<S>;
    using vec = typename V::vec;
    static constexpr int L = V::lanes;
    vec acc[MR][NV];

    /// acc = W[0..MR) [0..K) · B[0..K) [0..NV*L); W rows `ldw` apart, B rows `ldb` apart. (K is
    /// a run-time bound: one instantiation serves every layer shape.)
    void run(const S* W, index_t ldw, const S* B, index_t ldb, index_t K) {
        for (int r = 0; r < MR; ++r)
            for (int v = 0; v < NV; ++v)
                acc[r][v] = vec{};
        for (index_t k = 0; k < K; ++k) {
            vec b[NV];
            for (int v = 0; v < NV; ++v)
                b[v] = V::load(B + k * ldb + v * L);
            for (int r = 0; r < MR; ++r) {
                const S a = W[r * ldw + k];
                for (int v = 0; v < NV; ++v)
                    acc[r][v] += b[v] * a;
            }
        }
    }
};

/// C (N x P, row-major, ldc) = act(W (N x K, row-major) · B (K x P, row-major, ldb) + bias),
/// the product of a convolution over im2col columns (B) or of a layer with a packed input.
/// B must be readable up to the next multiple of the lanes in P (the caller pads).
template <Scalar S, index_t N, index_t K, class F>
void gemm_rows(const S* W, const S* B, index_t ldb, index_t P, const S* bias, S* C, index_t ldc,
               F act) {
    using V = simd<S>;
    constexpr int L = V::lanes;
    constexpr int MR = 8;
    auto column_block = [&]<int NV>(index_t p0, index_t width) {
        auto rows = [&]<int R>(index_t n0) {
            gemm_tile<S, R, NV> t;
            t.run(W + n0 * K, K, B + p0, ldb, K);
            for (int r = 0; r < R; ++r) {
                const S b = bias ? bias[n0 + r] : S(0);
                S* c = C + (n0 + r) * ldc + p0;
                for (int v = 0; v < NV; ++v) {
                    const typename V::vec y = V::apply(act, t.acc[r][v] + b);
                    const index_t n = std::min<index_t>(L, width - v * L);
                    if (n == L)
                        V::store(c + v * L, y);
                    else
                        for (index_t l = 0; l < n; ++l)
                            c[v * L + l] = y[l];
                }
            }
        };
        index_t n0 = 0;
        for (; n0 + MR <= N; n0 += MR)
            rows.template operator()<MR>(n0);
        if constexpr (N % MR != 0)
            rows.template operator()<int(N % MR)>(n0);
    };
    index_t p0 = 0;
    for (; p0 + 3 * L <= P; p0 += 3 * L)
        column_block.template operator()<3>(p0, 3 * L);
    const index_t rest = P - p0;
    if (rest > 2 * L)
        column_block.template operator()<3>(p0, rest);
    else if (rest > L)
        column_block.template operator()<2>(p0, rest);
    else if (rest > 0)
        column_block.template operator()<1>(p0, rest);
}

/// A stride-1 convolution with zero padding, computed directly: the input is copied once into
/// zero-padded planes (Hp x Wp, Hp = H + 2 pad, Wp = W + 2 pad), and output position q = i*Wp + j
/// of an "extended" grid (Ho rows of Wp columns, the last Wp - Wo of each row discarded) reads
/// tap (u, v) of channel c at plane offset q + u*Wp + v: every tap is a contiguous run, so the
/// register tile of gemm_tile streams through the planes with no im2col matrix (9x the input
/// for a 3x3 kernel) ever written. Weights [Out, In, K, K] as torch stores them.
template <Scalar S, int In, int Out, int KS, int Pad, int H, int W> struct conv_direct {
    using V = simd<S>;
    using vec = typename V::vec;
    static constexpr int L = V::lanes;
    static constexpr int Hp = H + 2 * Pad, Wp = W + 2 * Pad;
    static constexpr int Ho = Hp - KS + 1, Wo = Wp - KS + 1;
    static constexpr index_t ext = index_t(Ho) * Wp; // extended outputs
    static constexpr index_t ext_padded = (ext + 3 * L - 1) / (3 * L) * (3 * L);
    // Planes keep room behind them for the reads of the last (discarded) columns.
    static constexpr index_t plane = index_t(Hp) * Wp + (KS - 1) + 3 * L;
    static constexpr index_t scratch_size = index_t(In) * plane + index_t(Out) * ext_padded;
    static constexpr int MR = 8;

    template <int R, int NV> static void tile(const S* w, const S* x, S* y) {
        vec acc[R][NV];
        for (int r = 0; r < R; ++r)
            for (int v = 0; v < NV; ++v)
                acc[r][v] = vec{};
        for (int c = 0; c < In; ++c)
            for (int u = 0; u < KS; ++u)
                for (int t = 0; t < KS; ++t) {
                    const S* xr = x + index_t(c) * plane + u * Wp + t;
                    vec b[NV];
                    for (int v = 0; v < NV; ++v)
                        b[v] = V::load(xr + v * L);
                    const index_t k = (index_t(c) * KS + u) * KS + t;
                    for (int r = 0; r < R; ++r) {
                        const S a = w[r * index_t(In) * KS * KS + k];
                        for (int v = 0; v < NV; ++v)
                            acc[r][v] += b[v] * a;
                    }
                }
        for (int r = 0; r < R; ++r)
            for (int v = 0; v < NV; ++v)
                V::store(y + r * ext_padded + v * L, acc[r][v]);
    }

    /// One sample: x (In, H, W) -> y (Out, Ho, Wo) = act(conv(x) + bias).
    template <class F>
    static void run(const S* weight, const S* bias, const S* x, S* y, S* scratch, F act) {
        S* xp = scratch;
        S* yext = scratch + index_t(In) * plane;
        for (int c = 0; c < In; ++c) {
            S* dst = xp + index_t(c) * plane;
            std::fill(dst, dst + plane, S(0));
            for (int i = 0; i < H; ++i)
                std::copy_n(x + (index_t(c) * H + i) * W, W, dst + (i + Pad) * Wp + Pad);
        }
        for (index_t q0 = 0; q0 < ext; q0 += 3 * L) {
            index_t n0 = 0;
            for (; n0 + MR <= Out; n0 += MR)
                tile<MR, 3>(weight + n0 * In * KS * KS, xp + q0, yext + n0 * ext_padded + q0);
            if constexpr (Out % MR != 0)
                tile<Out % MR, 3>(weight + n0 * In * KS * KS, xp + q0, yext + n0 * ext_padded + q0);
        }
        for (int o = 0; o < Out; ++o) {
            const S b = bias ? bias[o] : S(0);
            for (int i = 0; i < Ho; ++i) {
                const S* src = yext + o * ext_padded + index_t(i) * Wp;
                S* dst = y + (index_t(o) * Ho + i) * Wo;
                for (int j = 0; j < Wo; ++j)
                    dst[j] = act(src[j] + b);
            }
        }
    }
};

/// Scratch of gemm_nt for a layer with `In` inputs: one packed panel of inputs.
template <Scalar S, index_t In> constexpr index_t gemm_nt_scratch() {
    return In * 3 * simd<S>::lanes;
}

/// Y (batch x Out) = act(X (batch x In) Wᵀ + bias), W row-major [Out, In] as torch.nn.Linear
/// stores it. One or two samples: matrix-vector products (W streams through once per sample,
/// nothing is packed). Otherwise panels of 3 vectors' worth of samples are transposed into
/// `scratch` and multiplied by W one register tile at a time, W broadcast from its rows; the
/// tile is written back transposed, with bias and activation applied on the way.
// The sizes are run-time values here: one instantiation per scalar type and activation serves
// every layer shape (compile time), while the inner loops live in gemm_tile.
template <Scalar S, class F>
void gemm_nt_dense(const S* X, index_t ldx, const S* W, const S* bias, S* Y, index_t ldy,
                   index_t batch, index_t In, index_t Out, S* scratch, F act) {
    using V = simd<S>;
    constexpr int L = V::lanes;
    constexpr int MR = 8, NV = 3, P = NV * L;
    using rmat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using stride = Eigen::Stride<Eigen::Dynamic, 1>;
    const Eigen::Map<const rmat> Wm(W, Out, In);
    // Few inputs per output (In < 16): the tile would mostly write (its outputs leave one
    // scalar at a time), so Eigen's product does better there.
    if (batch > 2 && (In < 16 || !tuning().gemm)) {
        Eigen::Map<rmat, 0, stride> y(Y, batch, Out, stride(ldy, 1));
        y.noalias() =
            Eigen::Map<const rmat, 0, stride>(X, batch, In, stride(ldx, 1)) * Wm.transpose();
        for (index_t b = 0; b < batch; ++b)
            for (index_t o = 0; o < Out; ++o)
                Y[b * ldy + o] = act(Y[b * ldy + o] + (bias ? bias[o] : S(0)));
        return;
    }
    if (batch <= 2 || scratch == nullptr) {
        using vec = Eigen::Matrix<S, Eigen::Dynamic, 1>;
        for (index_t b = 0; b < batch; ++b) {
            Eigen::Map<vec> y(Y + b * ldy, Out);
            y.noalias() = Wm * Eigen::Map<const vec>(X + b * ldx, In);
            for (index_t o = 0; o < Out; ++o)
                y[o] = act(y[o] + (bias ? bias[o] : S(0)));
        }
        return;
    }
    for (index_t m0 = 0; m0 < batch; m0 += P) {
        const index_t width = std::min<index_t>(P, batch - m0);
        const int nv = int((width + L - 1) / L);
        // Panel [In x P]: column j is sample m0 + j; unused columns are zero.
        for (index_t k = 0; k < In; ++k) {
            S* dst = scratch + k * P;
            for (index_t j = 0; j < width; ++j)
                dst[j] = X[(m0 + j) * ldx + k];
            for (index_t j = width; j < nv * L; ++j)
                dst[j] = S(0);
        }
        auto tiles = [&]<int NVt>() {
            auto rows = [&]<int R>(index_t n0) {
                gemm_tile<S, R, NVt> t;
                t.run(W + n0 * In, In, scratch, P, In);
                for (int r = 0; r < R; ++r) {
                    const S b = bias ? bias[n0 + r] : S(0);
                    for (int v = 0; v < NVt; ++v) {
                        const typename V::vec y = V::apply(act, t.acc[r][v] + b);
                        const index_t n = std::min<index_t>(L, width - v * L);
                        S* out = Y + (m0 + v * L) * ldy + n0 + r;
                        for (index_t l = 0; l < n; ++l)
                            out[l * ldy] = y[l];
                    }
                }
            };
            index_t n0 = 0;
            for (; n0 + MR <= Out; n0 += MR)
                rows.template operator()<MR>(n0);
            // The last Out % MR rows: one tile of exactly that many (a run-time count).
            [&]<int... R>(std::integer_sequence<int, R...>) {
                ((Out - n0 == R + 1 ? rows.template operator()<R + 1>(n0) : void()), ...);
            }(std::make_integer_sequence<int, MR - 1>{});
        };
        if (nv == 3)
            tiles.template operator()<3>();
        else if (nv == 2)
            tiles.template operator()<2>();
        else
            tiles.template operator()<1>();
    }
}

template <Scalar S, index_t In, index_t Out, class F>
void gemm_nt(const S* X, index_t ldx, const S* W, const S* bias, S* Y, index_t ldy, index_t batch,
             S* scratch, F act) {
    if constexpr (Out == 0) {
        return;
    } else if constexpr (In == 0) { // no inputs: the bias alone
        for (index_t b = 0; b < batch; ++b)
            for (index_t o = 0; o < Out; ++o)
                Y[b * ldy + o] = act(bias ? bias[o] : S(0));
    } else {
        gemm_nt_dense<S>(X, ldx, W, bias, Y, ldy, batch, In, Out, scratch, act);
    }
}

/// The same without bias and activation, and without scratch for tiny batches.
template <Scalar S, index_t In, index_t Out>
void gemm_nt(const S* X, index_t ldx, const S* W, S* Y, index_t ldy, index_t batch,
             S* scratch = nullptr) {
    gemm_nt<S, In, Out>(X, ldx, W, static_cast<const S*>(nullptr), Y, ldy, batch, scratch,
                        no_act{});
}

/// Y = act(Y + b) row by row (b may be null: no bias).
template <Scalar S, index_t N, class F>
void bias_act(S* Y, index_t ldy, index_t rows, const S* bias, F act) {
    for (index_t r = 0; r < rows; ++r) {
        S* y = Y + r * ldy;
        if (bias)
            for (index_t i = 0; i < N; ++i)
                y[i] = act(y[i] + bias[i]);
        else
            for (index_t i = 0; i < N; ++i)
                y[i] = act(y[i]);
    }
}

/// Y = act2(act(X W1ᵀ + b1) W2ᵀ + b2) with the hidden layer in registers; act2 is the identity
/// unless given. Sizes: W1 [H, I], W2 [O, H]; I and O small (they are register counts).
template <Scalar S, int I, int H, int O, class F> struct small_mlp {
    using V = simd<S>;
    using vec = typename V::vec;
    static constexpr int L = V::lanes;
    static_assert(H % L == 0, "small_mlp: the hidden width must be a multiple of the lanes");

    // G groups of L samples, one sample per lane. Two accumulators per output (even and odd
    // hidden units) keep 2*G*O independent FMA chains in flight.
    template <int G>
    static void groups(const S* X, index_t ldx, const S* W1, const S* b1, const S* W2, const S* b2,
                       S* Y, index_t ldy, F act) {
        vec x[G][I > 0 ? I : 1];
        for (int g = 0; g < G; ++g)
            for (int i = 0; i < I; ++i)
                for (int l = 0; l < L; ++l)
                    x[g][i][l] = X[(g * L + l) * ldx + i];
        vec acc[2][G][O];
        for (int p = 0; p < 2; ++p)
            for (int g = 0; g < G; ++g)
                for (int o = 0; o < O; ++o)
                    acc[p][g][o] = vec{};
        for (int k = 0; k < H; k += 2) {
            for (int p = 0; p < 2; ++p) {
                const int kk = k + p;
                for (int g = 0; g < G; ++g) {
                    vec h = x[g][0] * W1[kk * I] + b1[kk];
                    for (int i = 1; i < I; ++i)
                        h += x[g][i] * W1[kk * I + i];
                    h = V::apply(act, h);
                    for (int o = 0; o < O; ++o)
                        acc[p][g][o] += h * W2[o * H + kk];
                }
            }
        }
        for (int g = 0; g < G; ++g)
            for (int o = 0; o < O; ++o) {
                const vec y = acc[0][g][o] + acc[1][g][o] + b2[o];
                for (int l = 0; l < L; ++l)
                    Y[(g * L + l) * ldy + o] = y[l];
            }
    }

    // One sample, the hidden units across lanes; one horizontal sum per output.
    static void single(const S* x, const S* W1, const S* b1, const S* W2, const S* b2, S* y,
                       F act) {
        // Two accumulators per output (even and odd chunks): twice the FMA chains in flight.
        constexpr int P = H % (2 * L) == 0 ? 2 : 1;
        vec acc[P][O];
        for (int p = 0; p < P; ++p)
            for (int o = 0; o < O; ++o)
                acc[p][o] = vec{};
        for (int k = 0; k < H; k += P * L) {
            for (int p = 0; p < P; ++p) {
                const int kk = k + p * L;
                vec h = V::load(b1 + kk);
                for (int i = 0; i < I; ++i) {
                    vec w;
                    if constexpr (I == 1)
                        w = V::load(W1 + kk);
                    else
                        for (int l = 0; l < L; ++l)
                            w[l] = W1[(kk + l) * I + i];
                    h += w * x[i];
                }
                h = V::apply(act, h);
                for (int o = 0; o < O; ++o)
                    acc[p][o] += h * V::load(W2 + o * H + kk);
            }
        }
        for (int o = 0; o < O; ++o) {
            vec a = acc[0][o];
            for (int p = 1; p < P; ++p)
                a += acc[p][o];
            y[o] = V::sum(a) + b2[o];
        }
    }

    static void run(const S* X, index_t ldx, const S* W1, const S* b1, const S* W2, const S* b2,
                    S* Y, index_t ldy, index_t batch, F act) {
        index_t b = 0;
        for (; b + 2 * L <= batch; b += 2 * L)
            groups<2>(X + b * ldx, ldx, W1, b1, W2, b2, Y + b * ldy, ldy, act);
        for (; b + L <= batch; b += L)
            groups<1>(X + b * ldx, ldx, W1, b1, W2, b2, Y + b * ldy, ldy, act);
        for (; b < batch; ++b)
            single(X + b * ldx, W1, b1, W2, b2, Y + b * ldy, act);
    }
};

} // namespace inn::nn::kernels
