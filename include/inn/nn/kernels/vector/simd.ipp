// SIMD vectors of one vector target (kernels/targets.hpp includes this file once per target,
// inside the target's namespace; INN_TARGET_BYTES is its width, INN_TARGET_X86 whether its x86
// intrinsics may be used): GCC/Clang vector extensions of that width and lane-wise helpers
// (load, store, the sum of the lanes, an activation on every lane).
// No include guard: one copy per target.

/// The tag of this target: its kernels' entry points take it as first argument.
struct target {
    static constexpr int bytes = INN_TARGET_BYTES;
};

/// This target's vector width in bytes.
inline constexpr int vector_bytes = INN_TARGET_BYTES;

template <Scalar S> struct simd {
    static constexpr int lanes = vector_bytes / int(sizeof(S));
    typedef S vec __attribute__((vector_size(vector_bytes)));

    static vec load(const S* p) {
        vec v;
        std::memcpy(&v, p, sizeof(vec));
        return v;
    }
    static void store(S* p, const vec& v) { std::memcpy(p, &v, sizeof(vec)); }
    /// Lanes [0, count) from p, the others zero; nothing read past p + count.
    static vec load_part(const S* p, index_t count) {
        vec v{};
        std::memcpy(&v, p, std::size_t(count) * sizeof(S));
        return v;
    }
    /// Lanes [0, count) to p; nothing written past p + count.
    static void store_part(S* p, const vec& v, index_t count) {
        std::memcpy(p, &v, std::size_t(count) * sizeof(S));
    }
    /// Lane l = p[l * stride] (a column of row-major samples).
    static vec strided(const S* p, index_t stride) {
        S lane[lanes];
        INN_UNROLL for (int l = 0; l < lanes; ++l)
            lane[l] = p[l * stride];
        return load(lane);
    }
    static vec broadcast(S s) { return vec{} + s; }
    /// s in every lane, as it is (broadcast adds it to zero, which GCC keeps as an addition).
    static vec splat(S s) {
        vec v;
        INN_UNROLL for (int l = 0; l < lanes; ++l)
            v[l] = s;
        return v;
    }
    /// The square root of every lane, correctly rounded as std::sqrt (the instruction where
    /// there is one: a loop of std::sqrt does not vectorise while sqrt may set errno).
    static vec sqrt(vec v) {
#if INN_TARGET_X86 && INN_TARGET_BYTES == 64
        // The zero-masked forms with every lane selected: the plain ones start from an
        // "undefined" vector that GCC reports as uninitialised when inlined into a target region.
        if constexpr (std::is_same_v<S, float>)
            return _mm512_maskz_sqrt_ps(0xffff, v);
        else
            return _mm512_maskz_sqrt_pd(0xff, v);
#elif INN_TARGET_X86 && INN_TARGET_BYTES == 32
        if constexpr (std::is_same_v<S, float>)
            return _mm256_sqrt_ps(v);
        else
            return _mm256_sqrt_pd(v);
#elif INN_TARGET_X86
        if constexpr (std::is_same_v<S, float>)
            return _mm_sqrt_ps(v);
        else
            return _mm_sqrt_pd(v);
#else
        INN_UNROLL for (int l = 0; l < lanes; ++l)
            v[l] = std::sqrt(v[l]);
        return v;
#endif
    }
    /// b unless a is greater, lane by lane (x86's max operand order): a NaN b comes through,
    /// as relu's does (nn/activation.hpp).
    static vec max(vec a, vec b) {
#if INN_TARGET_X86 && INN_TARGET_BYTES == 64
        if constexpr (std::is_same_v<S, float>)
            return _mm512_maskz_max_ps(0xffff, a, b); // all lanes: see sqrt
        else
            return _mm512_maskz_max_pd(0xff, a, b);
#else
        return a > b ? a : b;
#endif
    }
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
    /// Lane j: the sum of v[j]'s lanes, for `lanes` vectors v (overwritten). A transposing tree:
    /// each step adds the even and the odd halves of every segment of two vectors, so the whole
    /// takes lanes - 1 additions (and twice as many two-source shuffles) instead of a
    /// horizontal sum per vector.
    static vec lane_sums(vec* v) {
        if constexpr (lanes == 1)
            return v[0];
        else
            return lane_sums_step<lanes / 2, lanes>(v);
    }

  private:
    // Segments of 2T lanes of N vectors become segments of T lanes of N / 2.
    template <int T, int N> static vec lane_sums_step(vec* v) {
        INN_UNROLL for (int i = 0; i < N / 2; ++i)
            v[i] = halves<T, 0>(v[2 * i], v[2 * i + 1]) + halves<T, 1>(v[2 * i], v[2 * i + 1]);
        if constexpr (T == 1)
            return v[0];
        else
            return lane_sums_step<T / 2, N / 2>(v);
    }
    // The first (Odd = 0) or second half of every segment of 2T lanes, a's then b's. (The
    // indices spelled out: nvcc's front end leaves a pack expanded inside
    // __builtin_shufflevector unexpanded.)
    template <int T, int Odd> static vec halves(vec a, vec b) {
        constexpr auto i = [](int j) { return half_index<T, Odd>(j); };
        if constexpr (lanes == 2)
            return __builtin_shufflevector(a, b, i(0), i(1));
        else if constexpr (lanes == 4)
            return __builtin_shufflevector(a, b, i(0), i(1), i(2), i(3));
        else if constexpr (lanes == 8)
            return __builtin_shufflevector(a, b, i(0), i(1), i(2), i(3), i(4), i(5), i(6), i(7));
        else
            return __builtin_shufflevector(a, b, i(0), i(1), i(2), i(3), i(4), i(5), i(6), i(7),
                                           i(8), i(9), i(10), i(11), i(12), i(13), i(14), i(15));
    }
    template <int T, int Odd> static constexpr int half_index(int j) {
        const int per = lanes / (2 * T); // segments of 2T lanes in a vector
        const int seg = j / T;
        return (seg / per) * lanes + (2 * (seg % per) + Odd) * T + j % T;
    }

  public:
    /// An element-wise functor applied to every lane. ReLU (a functor with `relu = true`) is one
    /// max instruction with AVX-512. Its operand order matters: vmaxps returns the second
    /// operand unless the first is greater, so max(0, x) keeps a NaN x (as PyTorch does) and
    /// gives exactly the scalar 0 > x ? 0 : x, -0 included.
    template <class F> static vec apply(F f, vec v) {
#if INN_TARGET_X86 && INN_TARGET_BYTES == 64
        if constexpr (requires { F::relu; }) {
            if constexpr (std::is_same_v<S, float>)
                return _mm512_maskz_max_ps(0xffff, vec{}, v); // all lanes: see sqrt
            else
                return _mm512_maskz_max_pd(0xff, vec{}, v);
        }
#endif
        INN_UNROLL for (int l = 0; l < lanes; ++l)
            v[l] = f(v[l]);
        return v;
    }
};
