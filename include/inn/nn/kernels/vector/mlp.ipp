// The fused small MLP of one vector target, forward and backward (see simd.ipp; public entry
// points and their documentation: mlp.hpp). No include guard: one copy per target.

/// Y = act(X W1ᵀ + b1) W2ᵀ + b2 with the hidden layer in registers. Sizes: W1 [H, I],
/// W2 [O, H]; I and O small (they are register counts).
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
        INN_UNROLL for (int g = 0; g < G; ++g)
            INN_UNROLL for (int i = 0; i < I; ++i)
                x[g][i] = V::strided(X + g * L * ldx + i, ldx);
        vec acc[2][G][O];
        INN_UNROLL for (int p = 0; p < 2; ++p)
            INN_UNROLL for (int g = 0; g < G; ++g)
                INN_UNROLL for (int o = 0; o < O; ++o)
                    acc[p][g][o] = vec{};
        for (int k = 0; k < H; k += 2) {
            INN_UNROLL for (int p = 0; p < 2; ++p) {
                const int kk = k + p;
                INN_UNROLL for (int g = 0; g < G; ++g) {
                    vec h = x[g][0] * W1[kk * I] + b1[kk];
                    INN_UNROLL for (int i = 1; i < I; ++i)
                        h += x[g][i] * W1[kk * I + i];
                    h = V::apply(act, h);
                    INN_UNROLL for (int o = 0; o < O; ++o)
                        acc[p][g][o] += h * W2[o * H + kk];
                }
            }
        }
        INN_UNROLL for (int g = 0; g < G; ++g)
            INN_UNROLL for (int o = 0; o < O; ++o) {
                const vec y = acc[0][g][o] + acc[1][g][o] + b2[o];
                INN_UNROLL for (int l = 0; l < L; ++l)
                    Y[(g * L + l) * ldy + o] = y[l];
            }
    }

    // One sample, the hidden units across lanes; one horizontal sum per output.
    static void single(const S* x, const S* W1, const S* b1, const S* W2, const S* b2, S* y,
                       F act) {
        // Two accumulators per output (even and odd chunks): twice the FMA chains in flight.
        constexpr int P = H % (2 * L) == 0 ? 2 : 1;
        vec acc[P][O];
        INN_UNROLL for (int p = 0; p < P; ++p)
            INN_UNROLL for (int o = 0; o < O; ++o)
                acc[p][o] = vec{};
        for (int k = 0; k < H; k += P * L) {
            INN_UNROLL for (int p = 0; p < P; ++p) {
                const int kk = k + p * L;
                vec h = V::load(b1 + kk);
                INN_UNROLL for (int i = 0; i < I; ++i) {
                    vec w;
                    if constexpr (I == 1)
                        w = V::load(W1 + kk);
                    else
                        INN_UNROLL for (int l = 0; l < L; ++l)
                            w[l] = W1[(kk + l) * I + i];
                    h += w * x[i];
                }
                h = V::apply(act, h);
                INN_UNROLL for (int o = 0; o < O; ++o)
                    acc[p][o] += h * V::load(W2 + o * H + kk);
            }
        }
        INN_UNROLL for (int o = 0; o < O; ++o) {
            vec a = acc[0][o];
            INN_UNROLL for (int p = 1; p < P; ++p)
                a += acc[p][o];
            y[o] = V::sum(a) + b2[o];
        }
    }

    // Groups per pass: four where their inputs and accumulators (4 (I + 2 O) vectors) leave
    // room for the temporaries in AVX-512's 32 registers, else two. More independent work
    // hides each hidden unit's FMA -> max -> FMA latency (moons' I = 1, O = 2: 1.13x two
    // groups on an AMD EPYC). Each sample's lane computes the same chain either way: the same
    // bits.
    static constexpr int max_groups = vector_bytes == 64 && 4 * (I + 2 * O) <= 24 ? 4 : 2;

    static void run(const S* X, index_t ldx, const S* W1, const S* b1, const S* W2, const S* b2,
                    S* Y, index_t ldy, index_t batch, F act) {
        index_t b = 0;
        if constexpr (max_groups == 4)
            for (; b + 4 * L <= batch; b += 4 * L)
                groups<4>(X + b * ldx, ldx, W1, b1, W2, b2, Y + b * ldy, ldy, act);
        for (; b + 2 * L <= batch; b += 2 * L)
            groups<2>(X + b * ldx, ldx, W1, b1, W2, b2, Y + b * ldy, ldy, act);
        for (; b + L <= batch; b += L)
            groups<1>(X + b * ldx, ldx, W1, b1, W2, b2, Y + b * ldy, ldy, act);
        for (; b < batch; ++b)
            single(X + b * ldx, W1, b1, W2, b2, Y + b * ldy, act);
    }
};

/// The backward of small_mlp for whole groups of L samples: the hidden layer recomputed in
/// registers as forward computes it, then per hidden unit k
///   gh = gy W2[:, k],  gp = act'(pre or h) gh,  gx += gp W1[k, :],
/// and the parameter gradients dW2 += gyᵀ h, db1 += Σ gp, dW1 += gpᵀ x as lane-wise partial
/// sums in scratch (one sample per lane), summed over the lanes at the end. gx (ldgx) and each
/// gradient may be null. db2 = Σ gy is the caller's.
///
/// The partial sums ((O + 1 + I) * H vectors: 128 KiB for moons' width 512 with AVX-512) do
/// not fit the L1 cache, so their traffic bounds the kernel: as many groups as registers allow
/// go through the hidden units together, and the first of them stores its sums where the others
/// load and add (no clearing pass). The samples past the last full pass run as one more pass of
/// as many groups as they need, padded with zero output gradients, which make the padding lanes'
/// contributions zero.
template <Scalar S, int I, int H, int O, class F> struct small_mlp_backward {
    using V = simd<S>;
    using vec = typename V::vec;
    static constexpr int L = V::lanes;
    static_assert(H % L == 0, "small_mlp: the hidden width must be a multiple of the lanes");
    // Groups per pass: four where their inputs, output gradients and input gradients (4 (2I + O)
    // vectors) and the per-group temporaries fit AVX-512's 32 registers, else two where they
    // fit in 24, else one.
    static constexpr int max_groups = vector_bytes == 64 && 4 * (2 * I + O) <= 16 ? 4
                                      : 2 * (2 * I + O) <= 24                     ? 2
                                                                                  : 1;

    // Partial sums of dW2 [O, H], db1 [H], dW1 [H, I], L lanes each; then up to max_groups
    // groups of L rows of x, gy and gx for the samples past the last full pass. Sized for the
    // widest vectors and the most groups of any target (scratch_lanes, four), so that every
    // target and translation unit agrees on it.
    static constexpr index_t scratch_size =
        (index_t(O) * H + H + index_t(H) * I) * scratch_lanes<S> +
        4 * scratch_lanes<S> * (2 * std::max(I, 1) + O);
    static_assert(max_groups <= 4 && L <= scratch_lanes<S>);

    static vec grad(vec in, vec g) {
        if constexpr (requires { F::relu; }) {
            return in <= vec{} ? vec{} : g; // as F::grad, lane by lane
        } else {
            INN_UNROLL for (int l = 0; l < L; ++l)
                g[l] = F::grad(in[l], g[l]);
            return g;
        }
    }

    template <int G, bool First>
    static void groups(const S* X, index_t ldx, const S* GY, index_t ldg, S* GX, index_t ldgx,
                       const S* W1, const S* b1, const S* W2, S* P2, S* Pb, S* P1, F act) {
        vec x[G][I > 0 ? I : 1], gy[G][O], gx[G][I > 0 ? I : 1];
        INN_UNROLL for (int g = 0; g < G; ++g) {
            INN_UNROLL for (int i = 0; i < I; ++i) {
                gx[g][i] = vec{};
                x[g][i] = V::strided(X + g * L * ldx + i, ldx);
            }
            INN_UNROLL for (int o = 0; o < O; ++o)
                gy[g][o] = V::strided(GY + g * L * ldg + o, ldg);
        }
        for (int k = 0; k < H; ++k) {
            vec h[G], gp[G];
            INN_UNROLL for (int g = 0; g < G; ++g) {
                vec pre = x[g][0] * W1[k * I] + b1[k]; // as small_mlp::groups
                INN_UNROLL for (int i = 1; i < I; ++i)
                    pre += x[g][i] * W1[k * I + i];
                h[g] = V::apply(act, pre);
                vec gh = gy[g][0] * W2[k];
                INN_UNROLL for (int o = 1; o < O; ++o)
                    gh += gy[g][o] * W2[o * H + k];
                gp[g] = grad(F::reads_x ? pre : h[g], gh);
            }
            // (Lambdas here capture: a captureless one's function-pointer thunk would not get
            // the target's instruction set, and returns a vector of it.)
            auto start = [&](const S* partial) { return First ? vec{} : V::load(partial); };
            INN_UNROLL for (int o = 0; o < O; ++o) {
                vec p = start(P2 + (index_t(o) * H + k) * L);
                INN_UNROLL for (int g = 0; g < G; ++g)
                    p += gy[g][o] * h[g];
                V::store(P2 + (index_t(o) * H + k) * L, p);
            }
            vec pb = start(Pb + index_t(k) * L);
            INN_UNROLL for (int g = 0; g < G; ++g)
                pb += gp[g];
            V::store(Pb + index_t(k) * L, pb);
            INN_UNROLL for (int i = 0; i < I; ++i) {
                vec p = start(P1 + (index_t(k) * I + i) * L);
                INN_UNROLL for (int g = 0; g < G; ++g)
                    p += gp[g] * x[g][i];
                V::store(P1 + (index_t(k) * I + i) * L, p);
            }
            if (GX)
                INN_UNROLL for (int g = 0; g < G; ++g)
                    INN_UNROLL for (int i = 0; i < I; ++i)
                        gx[g][i] += gp[g] * W1[k * I + i];
        }
        if (GX)
            INN_UNROLL for (int g = 0; g < G; ++g)
                INN_UNROLL for (int i = 0; i < I; ++i)
                    INN_UNROLL for (int l = 0; l < L; ++l)
                        GX[(g * L + l) * ldgx + i] = gx[g][i][l];
    }

    /// `batch` > 0.
    static void run(const S* X, index_t ldx, const S* GY, index_t ldg, S* GX, index_t ldgx,
                    const S* W1, const S* b1, const S* W2, S* dW1, S* db1, S* dW2, index_t batch,
                    S* scratch, F act) {
        S* P2 = scratch;
        S* Pb = P2 + index_t(O) * H * L;
        S* P1 = Pb + index_t(H) * L;
        bool first = true;
        index_t b = 0;
        auto pass = [&]<int G>(std::integral_constant<int, G>, const S* x, index_t lx, const S* gy,
                               index_t lg, S* gx, index_t lgx) {
            if (first)
                groups<G, true>(x, lx, gy, lg, gx, lgx, W1, b1, W2, P2, Pb, P1, act);
            else
                groups<G, false>(x, lx, gy, lg, gx, lgx, W1, b1, W2, P2, Pb, P1, act);
            first = false;
        };
        constexpr int M = max_groups;
        for (; b + M * L <= batch; b += M * L)
            pass(std::integral_constant<int, M>{}, X + b * ldx, ldx, GY + b * ldg, ldg,
                 GX ? GX + b * ldgx : nullptr, ldgx);
        // The rest as one more pass of as many groups as it needs, padded with zero output
        // gradients (which make the padding lanes' contributions zero): each pass reads and
        // writes all partial sums, so one pass for the rest rather than one per group size.
        if (const index_t rest = batch - b; rest > 0) {
            constexpr index_t ni = std::max(I, 1);
            const int n_groups = int((rest + L - 1) / L);
            S* xp = P1 + index_t(H) * I * L;
            S* gyp = xp + index_t(M) * L * ni;
            S* gxp = gyp + index_t(M) * L * O;
            std::fill(xp, gxp + index_t(M) * L * ni, S(0));
            for (index_t r = 0; r < rest; ++r) {
                std::copy_n(X + (b + r) * ldx, I, xp + r * ni);
                std::copy_n(GY + (b + r) * ldg, O, gyp + r * O);
            }
            S* gx = GX ? gxp : nullptr;
            [&]<int... G>(std::integer_sequence<int, G...>) {
                ((n_groups == G + 1
                      ? pass(std::integral_constant<int, G + 1>{}, xp, ni, gyp, O, gx, ni)
                      : void()),
                 ...);
            }
            (std::make_integer_sequence<int, M>{});
            if (GX)
                for (index_t r = 0; r < rest; ++r)
                    std::copy_n(gxp + r * ni, I, GX + (b + r) * ldgx);
        }
        auto add = [&](S* dst, const S* partial, index_t n) { // n: a multiple of L
            if (!dst)
                return;
            for (index_t j = 0; j < n; j += L) {
                vec v[L];
                INN_UNROLL for (int l = 0; l < L; ++l)
                    v[l] = V::load(partial + (j + l) * L);
                V::store(dst + j, V::load(dst + j) + V::lane_sums(v));
            }
        };
        add(dW2, P2, index_t(O) * H);
        add(db1, Pb, H);
        add(dW1, P1, index_t(H) * I);
    }
};

/// The entry points of small_mlp and small_mlp_backward for this target.
template <Scalar S, int I, int H, int O, class F>
void small_mlp_run(target, const S* X, index_t ldx, const S* W1, const S* b1, const S* W2,
                   const S* b2, S* Y, index_t ldy, index_t batch, F act) {
    small_mlp<S, I, H, O, F>::run(X, ldx, W1, b1, W2, b2, Y, ldy, batch, act);
}
template <Scalar S, int I, int H, int O, class F>
void small_mlp_backward_run(target, const S* X, index_t ldx, const S* GY, index_t ldg, S* GX,
                            index_t ldgx, const S* W1, const S* b1, const S* W2, S* dW1, S* db1,
                            S* dW2, index_t batch, S* scratch, F act) {
    small_mlp_backward<S, I, H, O, F>::run(X, ldx, GY, ldg, GX, ldgx, W1, b1, W2, dW1, db1, dW2,
                                           batch, scratch, act);
}
