// Tests for include/inn/core/random.hpp.
//
// Reference values come from outside this code base:
// * MT19937: the reference implementation's published outputs (mt19937ar.out, seed 5489) and the
//   C++ standard's requirement on the 10000th output of std::mt19937.
// * NumPy/SciPy: computed with NumPy 1.24.4 and SciPy 1.10.1 (the Python line is given with each
//   value). NumPy's legacy values were also confirmed with NumPy 2.4; SciPy >= 1.11 uses another
//   special_ortho_group algorithm, so its SO(n) values differ from FrEIA-era SciPy.
// * PyTorch: FrEIA's worked values (randperm) and widely published printouts of
//   torch.rand/torch.randn after torch.manual_seed(0) (4 decimals).

#include <inn/core/random.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <vector>

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

namespace {

// Sample mean and (biased) variance.
std::pair<double, double> mean_var(const std::vector<double>& v) {
    double mean = 0.0;
    for (const double x : v) {
        mean += x;
    }
    mean /= static_cast<double>(v.size());
    double var = 0.0;
    for (const double x : v) {
        var += (x - mean) * (x - mean);
    }
    var /= static_cast<double>(v.size());
    return {mean, var};
}

void check_normal_moments(const std::vector<double>& v) {
    // 5 sigma bounds: sd(mean) = 1/sqrt(N), sd(var) ~ sqrt(2/N) for a standard normal.
    const double n = static_cast<double>(v.size());
    const auto [mean, var] = mean_var(v);
    CHECK(std::abs(mean) < 5.0 / std::sqrt(n));
    CHECK(std::abs(var - 1.0) < 5.0 * std::sqrt(2.0 / n));
}

void check_special_orthogonal(const Eigen::MatrixXd& q) {
    const auto n = q.rows();
    REQUIRE(q.cols() == n);
    const Eigen::MatrixXd eye = Eigen::MatrixXd::Identity(n, n);
    CHECK((q.transpose() * q - eye).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((q * q.transpose() - eye).cwiseAbs().maxCoeff() < 1e-12);
    CHECK(q.determinant() == Approx(1.0).margin(1e-12));
}

}  // namespace

TEST_CASE("random: MT19937 raw stream matches the reference implementation", "[random]") {
    // mt19937ar.c: init_genrand(5489) -> genrand_int32()
    const std::array<std::uint32_t, 5> expected = {3499211612U, 581869302U, 3890346734U,
                                                   3586334585U, 545404204U};
    inn::numpy_random_state np_state(5489U);
    inn::generator gen(5489U);
    for (const std::uint32_t e : expected) {
        CHECK(np_state.next_u32() == e);
        CHECK(gen.next_u32() == e);
    }
    // C++ standard [rand.predef]: the 10000th output of a default-constructed (seed 5489) engine.
    inn::generator gen2(5489U);
    std::uint32_t v = 0;
    for (int i = 0; i < 10000; ++i) {
        v = gen2.next_u32();
    }
    CHECK(v == 4123659995U);
}

TEST_CASE("random: generator seeds modulo 2^32 like torch.manual_seed", "[random]") {
    inn::generator a(7U);
    inn::generator b((std::uint64_t{1} << 32) + 7U);
    for (int i = 0; i < 100; ++i) {
        CHECK(a.next_u32() == b.next_u32());
    }
    CHECK(b.initial_seed() == (std::uint64_t{1} << 32) + 7U);
}

TEST_CASE("random: numpy permutation", "[random]") {
    // np.random.seed(3); np.random.permutation(5)  (FrEIA's PermuteRandom(seed=3))
    inn::numpy_random_state s3(3U);
    CHECK(s3.permutation(5) == std::vector<int>{3, 4, 1, 0, 2});
    // np.random.seed(7); np.random.permutation(20)
    inn::numpy_random_state s7(7U);
    CHECK(s7.permutation(20) == std::vector<int>{1, 17, 2, 5, 11, 0, 18, 6, 13, 19, 10, 14, 8, 16,
                                                 9, 12, 7, 3, 4, 15});
    // Degenerate sizes draw nothing.
    inn::numpy_random_state a(11U);
    inn::numpy_random_state b(11U);
    CHECK(a.permutation(0).empty());
    CHECK(a.permutation(1) == std::vector<int>{0});
    CHECK(a.next_u32() == b.next_u32());
}

TEST_CASE("random: numpy random, standard_normal and randint", "[random]") {
    SECTION("random") {
        // np.random.seed(42); np.random.random(3)
        inn::numpy_random_state s(42U);
        CHECK(s.next_double() == 0.3745401188473625);
        CHECK(s.next_double() == 0.9507143064099162);
        CHECK(s.next_double() == 0.7319939418114051);
    }
    SECTION("standard_normal") {
        // np.random.seed(42); np.random.standard_normal(5)
        const std::array<double, 5> expected = {0.4967141530112327, -0.13826430117118466,
                                                0.6476885381006925, 1.5230298564080254,
                                                -0.23415337472333597};
        inn::numpy_random_state s(42U);
        for (const double e : expected) {
            CHECK(s.standard_normal() == e);
        }
    }
    SECTION("randint") {
        // np.random.seed(42); np.random.randint(0, 10, 5)
        inn::numpy_random_state s(42U);
        const std::array<std::int64_t, 5> expected = {6, 3, 7, 4, 6};
        for (const std::int64_t e : expected) {
            CHECK(s.randint(0, 10) == e);
        }
    }
    SECTION("one stream: random, then standard_normal, then randint") {
        // np.random.seed(42); np.random.random(3); np.random.standard_normal(5);
        // np.random.randint(0, 10, 5)
        inn::numpy_random_state s(42U);
        for (int i = 0; i < 3; ++i) {
            s.next_double();
        }
        const std::array<double, 5> normals = {-1.1118801180469204, 0.31890218468938336,
                                               0.2790412922001377, 1.0105152848065264,
                                               -0.580878134023515};
        for (const double e : normals) {
            CHECK(s.standard_normal() == e);
        }
        const std::array<std::int64_t, 5> ints = {4, 0, 9, 5, 8};
        for (const std::int64_t e : ints) {
            CHECK(s.randint(0, 10) == e);
        }
    }
    SECTION("randint over more than 32 bits uses 64-bit draws") {
        // np.random.seed(7); [np.random.randint(-5, 2**40) for _ in range(3)]
        inn::numpy_random_state s(7U);
        CHECK(s.randint(-5, std::int64_t{1} << 40) == 752595690687);
        CHECK(s.randint(-5, std::int64_t{1} << 40) == 108744157681);
        CHECK(s.randint(-5, std::int64_t{1} << 40) == 291964244174);
    }
    SECTION("cached normal survives interleaved draws") {
        // np.random.seed(0); [np.random.standard_normal() for _ in range(3)];
        // np.random.random(); np.random.standard_normal()
        inn::numpy_random_state s(0U);
        CHECK(s.standard_normal() == 1.764052345967664);
        CHECK(s.standard_normal() == 0.4001572083672233);
        CHECK(s.standard_normal() == 0.9787379841057392);
        CHECK(s.next_double() == 0.4236547993389047);
        CHECK(s.standard_normal() == 2.240893199201458);
    }
    SECTION("reseed drops the cached normal") {
        inn::numpy_random_state s(0U);
        s.standard_normal();  // leaves a cached value
        s.reseed(42U);
        CHECK(s.standard_normal() == 0.4967141530112327);
    }
    SECTION("interval edge cases") {
        inn::numpy_random_state a(5U);
        inn::numpy_random_state b(5U);
        CHECK(a.interval(0) == 0U);  // no draw
        CHECK(a.randint(3, 4) == 3);  // single value: no draw
        CHECK(a.next_u32() == b.next_u32());
        for (int i = 0; i < 1000; ++i) {
            CHECK(a.interval(5) <= 5U);
        }
        CHECK_THROWS_AS(a.randint(4, 4), std::invalid_argument);
    }
}

TEST_CASE("random: special_ortho_group matches SciPy 1.10", "[random]") {
    SECTION("n = 4") {
        // np.random.seed(1); scipy.stats.special_ortho_group.rvs(4)
        const double expected[4][4] = {
            {-0.7706224236586978, -0.18660991193821946, -0.37804737812940303, 0.4779100342222254},
            {0.29022966465246813, -0.25644364849541657, -0.8657494011087388, -0.31698796725102124},
            {-0.25057540406272183, -0.7897650028785603, 0.3185285135390643, -0.46045932846411664},
            {0.509038101510009, -0.5250567932528787, 0.07808803001701285, 0.6775675867676609},
        };
        inn::numpy_random_state s(1U);
        const Eigen::MatrixXd q = s.special_ortho_group(4);
        REQUIRE(q.rows() == 4);
        REQUIRE(q.cols() == 4);
        for (int i = 0; i < 4; ++i) {
            for (int j = 0; j < 4; ++j) {
                CHECK(q(i, j) == Approx(expected[i][j]).epsilon(0).margin(1e-12));
            }
        }
    }
    SECTION("n = 6") {
        // np.random.seed(123); scipy.stats.special_ortho_group.rvs(6)
        const double expected[6][6] = {
            {0.3942066505540889, 0.6173058431912559, 0.26903456344408905, 0.04137996137626612,
             -0.3201156856829186, -0.5356945611722791},
            {-0.36214915713299906, 0.6536515204464618, -0.6241288437488609, 0.03255985883159826,
             -0.06678285641251712, 0.21570992070103806},
            {-0.10275318838356198, 0.09837773783450099, -0.007572694209624697, 0.5734312662719675,
             0.7245920579728123, -0.3547522933857349},
            {0.5469552830545873, -0.18246947532499985, -0.6499179648271136, -0.3356823370831108,
             0.21879999029154173, -0.29085285064293287},
            {-0.21009730809432756, -0.38376069305681304, -0.33092715414863993, 0.484418446562995,
             -0.5568472387107196, -0.3928536516476532},
            {-0.5996581746245022, -0.03778395847050536, 0.07823108089264041, -0.5666218090146272,
             0.10039952380630447, -0.5492922766971486},
        };
        inn::numpy_random_state s(123U);
        const Eigen::MatrixXd q = s.special_ortho_group(6);
        for (int i = 0; i < 6; ++i) {
            for (int j = 0; j < 6; ++j) {
                CHECK(q(i, j) == Approx(expected[i][j]).epsilon(0).margin(1e-12));
            }
        }
    }
    SECTION("draw count: state after SO(3)") {
        // np.random.seed(1); scipy.stats.special_ortho_group.rvs(3); np.random.random()
        inn::numpy_random_state s(1U);
        s.special_ortho_group(3);
        CHECK(s.next_double() == 0.4191945144032948);
    }
    SECTION("dimension below 2 is rejected, as in SciPy") {
        inn::numpy_random_state s(1U);
        CHECK_THROWS_AS(s.special_ortho_group(1), std::invalid_argument);
        CHECK_THROWS_AS(s.special_ortho_group(0), std::invalid_argument);
    }
}

TEST_CASE("random: special_ortho_group is orthogonal with determinant +1", "[random]") {
    inn::numpy_random_state s(2024U);
    for (const int n : {2, 3, 6, 17}) {
        for (int rep = 0; rep < 5; ++rep) {
            INFO("n = " << n << ", rep = " << rep);
            check_special_orthogonal(s.special_ortho_group(n));
        }
    }
}

TEST_CASE("random: torch randperm", "[random]") {
    // torch.manual_seed(0); torch.randperm(6)  (FrEIA's AllInOneBlock w_perm)
    inn::generator gen(0U);
    const std::vector<std::int64_t> perm = gen.randperm(6);
    CHECK(perm == std::vector<std::int64_t>{2, 5, 3, 0, 1, 4});
    // argsort gives w_perm_inv = [3, 4, 0, 2, 5, 1] (FrEIA's)
    std::vector<std::int64_t> inv(perm.size());
    for (std::size_t i = 0; i < perm.size(); ++i) {
        inv[static_cast<std::size_t>(perm[i])] = static_cast<std::int64_t>(i);
    }
    CHECK(inv == std::vector<std::int64_t>{3, 4, 0, 2, 5, 1});

    SECTION("n - 1 draws, and always a permutation") {
        inn::generator a(9U);
        inn::generator b(9U);
        std::vector<std::int64_t> p = a.randperm(37);
        for (int i = 0; i < 36; ++i) {
            b.next_u32();
        }
        CHECK(a.next_u32() == b.next_u32());
        std::sort(p.begin(), p.end());
        std::vector<std::int64_t> iota(37);
        std::iota(iota.begin(), iota.end(), std::int64_t{0});
        CHECK(p == iota);
        CHECK(a.randperm(0).empty());
        CHECK(a.randperm(1) == std::vector<std::int64_t>{0});
        CHECK_THROWS_AS(a.randperm(-1), std::invalid_argument);
    }
}

TEST_CASE("random: torch.rand values", "[random]") {
    // torch.manual_seed(0); torch.rand(18)  (published as torch.rand(1, 1, ...) printouts)
    const std::array<float, 18> expected = {0.4963f, 0.7682f, 0.0885f, 0.1320f, 0.3074f, 0.6341f,
                                            0.4901f, 0.8964f, 0.4556f, 0.6323f, 0.3489f, 0.4017f,
                                            0.0223f, 0.1689f, 0.2939f, 0.5185f, 0.6977f, 0.8000f};
    inn::generator gen(0U);
    std::array<float, 18> got{};
    gen.fill_uniform(got.data(), got.size(), 0.0f, 1.0f);
    for (std::size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i] == Approx(expected[i]).margin(6e-5));
    }
    // float draws keep exactly the low 24 bits of one 32-bit output.
    inn::generator a(0U);
    inn::generator b(0U);
    CHECK(a.uniform(0.0f, 1.0f) ==
          static_cast<float>(b.next_u32() & 0xffffffU) / 16777216.0f);
    // double draws keep the low 53 bits of one 64-bit output (high word drawn first).
    const std::uint64_t hi = b.next_u32();
    const std::uint64_t lo = b.next_u32();
    CHECK(a.uniform01() ==
          static_cast<double>(((hi << 32) | lo) & 0x1fffffffffffffULL) / 9007199254740992.0);
}

TEST_CASE("random: torch.randn values and draw counts", "[random]") {
    SECTION("fewer than 16 elements: scalar path with cached sine half") {
        // torch.manual_seed(0); torch.distributions.Normal(0., 1.).rsample((8,))
        const std::array<float, 8> expected = {1.5410f,  -0.2934f, -2.1788f, 0.5684f,
                                               -1.0845f, -1.3986f, 0.4033f,  0.8380f};
        inn::generator gen(0U);
        std::array<float, 8> got{};
        gen.fill_normal(got.data(), got.size(), 0.0f, 1.0f);
        for (std::size_t i = 0; i < got.size(); ++i) {
            CHECK(got[i] == Approx(expected[i]).margin(6e-5));
        }
    }
    SECTION("16 or more elements: blocks of 16 and a redrawn tail") {
        // torch.manual_seed(0); X = torch.randn(10, 4); W = torch.randn(4, 4);
        // Y = torch.randn(10, 4)
        const std::array<float, 40> x_expected = {
            -1.1258f, -1.1524f, -0.2506f, -0.4339f, 0.8487f,  0.6920f,  -0.3160f, -2.1152f,
            0.3223f,  -1.2633f, 0.3500f,  0.3081f,  0.1198f,  1.2377f,  1.1168f,  -0.2473f,
            -1.3527f, -1.6959f, 0.5667f,  0.7935f,  0.5988f,  -1.5551f, -0.3414f, 1.8530f,
            -0.2159f, -0.7425f, 0.5627f,  0.2596f,  -0.1740f, -0.6787f, 0.9383f,  0.4889f,
            1.2032f,  0.0845f,  -1.2001f, -0.0048f, -0.5181f, -0.3067f, -1.5810f, 1.7066f};
        const std::array<float, 16> w_expected = {0.2055f,  -0.4503f, -0.5731f, -0.5554f,
                                                  0.5943f,  1.5419f,  0.5073f,  -0.5910f,
                                                  -1.3253f, 0.1886f,  -0.0691f, -0.4949f,
                                                  -1.4959f, -0.1938f, 0.4455f,  1.3253f};
        const std::array<float, 40> y_expected = {
            1.5091f,  2.0820f,  1.7067f,  2.3804f,  -1.1256f, -0.3170f, -1.0925f, -0.0852f,
            0.3276f,  -0.7607f, -1.5991f, 0.0185f,  -0.7504f, 0.1854f,  0.6211f,  0.6382f,
            -0.0033f, -0.5344f, 1.1687f,  0.3945f,  1.9415f,  0.7915f,  -0.0203f, -0.4372f,
            -0.2188f, -2.4351f, -0.0729f, -0.0340f, 0.9625f,  0.3492f,  -0.9215f, -0.0562f,
            -0.6227f, -0.4637f, 1.9218f,  -0.4025f, 0.1239f,  1.1648f,  0.9234f,  1.3873f};
        inn::generator gen(0U);
        std::array<float, 40> x{};
        std::array<float, 16> w{};
        std::array<float, 40> y{};
        gen.fill_normal(x.data(), x.size(), 0.0f, 1.0f);
        gen.fill_normal(w.data(), w.size(), 0.0f, 1.0f);
        gen.fill_normal(y.data(), y.size(), 0.0f, 1.0f);
        for (std::size_t i = 0; i < x.size(); ++i) {
            CHECK(x[i] == Approx(x_expected[i]).margin(6e-5));
            CHECK(y[i] == Approx(y_expected[i]).margin(6e-5));
        }
        for (std::size_t i = 0; i < w.size(); ++i) {
            CHECK(w[i] == Approx(w_expected[i]).margin(6e-5));
        }
    }
    SECTION("mean and stddev are applied") {
        inn::generator a(3U);
        inn::generator b(3U);
        std::array<double, 20> u{};
        std::array<double, 20> v{};
        a.fill_normal(u.data(), u.size(), 0.0, 1.0);
        b.fill_normal(v.data(), v.size(), 2.0, 0.5);
        for (std::size_t i = 0; i < u.size(); ++i) {
            CHECK(v[i] == Approx(2.0 + 0.5 * u[i]).margin(1e-14));
        }
    }
}

TEST_CASE("random: uniform stays in range", "[random]") {
    inn::generator gen(123U);
    for (int i = 0; i < 100000; ++i) {
        const double u = gen.uniform01();
        REQUIRE(u >= 0.0);
        REQUIRE(u < 1.0);
        const double d = gen.uniform(-2.5, 4.0);
        REQUIRE(d >= -2.5);
        REQUIRE(d <= 4.0);
        const float f = gen.uniform(-0.125f, 0.125f);
        REQUIRE(f >= -0.125f);
        REQUIRE(f <= 0.125f);
    }
    std::vector<float> w(1000);
    const auto bound = static_cast<float>(inn::torch_default_init_bound(10));
    gen.fill_uniform(w.data(), w.size(), -bound, bound);
    for (const float x : w) {
        REQUIRE(std::abs(x) <= bound);
    }
    // Crude uniformity: mean 0.5 and variance 1/12 within 5 sigma.
    std::vector<double> u(100000);
    for (double& x : u) {
        x = gen.uniform01();
    }
    const auto [mean, var] = mean_var(u);
    CHECK(std::abs(mean - 0.5) < 5.0 * std::sqrt(1.0 / 12.0 / 100000.0));
    CHECK(std::abs(var - 1.0 / 12.0) < 5.0 * std::sqrt(1.0 / 180.0 / 100000.0));
}

TEST_CASE("random: normal samples have the right moments", "[random]") {
    constexpr std::size_t n = 100000;
    SECTION("generator::normal (scalar path)") {
        inn::generator gen(1U);
        std::vector<double> v(n);
        for (double& x : v) {
            x = gen.normal<double>();
        }
        check_normal_moments(v);
    }
    SECTION("generator::fill_normal (block path)") {
        inn::generator gen(2U);
        std::vector<float> f(n + 5);  // ragged tail on purpose
        gen.fill_normal(f.data(), f.size(), 0.0f, 1.0f);
        check_normal_moments(std::vector<double>(f.begin(), f.end()));
    }
    SECTION("numpy_random_state::standard_normal") {
        inn::numpy_random_state s(3U);
        std::vector<double> v(n);
        for (double& x : v) {
            x = s.standard_normal();
        }
        check_normal_moments(v);
    }
}

TEST_CASE("random: same seed gives the same sequence", "[random]") {
    inn::generator a(77U);
    inn::generator b(77U);
    inn::generator c(78U);
    bool any_difference = false;
    for (int i = 0; i < 50; ++i) {
        const double x = a.normal<double>();
        CHECK(x == b.normal<double>());
        any_difference = any_difference || x != c.normal<double>();
        CHECK(a.uniform(0.0f, 3.0f) == b.uniform(0.0f, 3.0f));
        c.uniform(0.0f, 3.0f);
    }
    CHECK(any_difference);
    CHECK(a.randperm(10) == b.randperm(10));
    CHECK(a.numpy().special_ortho_group(5) == b.numpy().special_ortho_group(5));

    // manual_seed restarts both streams and drops the cached normal.
    inn::generator d(5U);
    const double first = d.normal<double>();
    const int first_perm_head = d.numpy().permutation(4)[0];
    d.manual_seed(5U);
    CHECK(d.normal<double>() == first);
    CHECK(d.numpy().permutation(4)[0] == first_perm_head);

    // The owned NumPy state is seeded like np.random.seed(seed).
    inn::generator e(3U);
    CHECK(e.numpy().permutation(5) == std::vector<int>{3, 4, 1, 0, 2});
}

TEST_CASE("random: PyTorch default init bounds", "[random]") {
    CHECK(inn::torch_default_init_bound(0) == 0.0);
    CHECK(inn::torch_default_init_bound(4) == 0.5);
    CHECK(inn::torch_kaiming_uniform_bound(0) == 0.0);
    // Python: math.sqrt(3.0) * (math.sqrt(2.0 / (1 + math.sqrt(5) ** 2)) / math.sqrt(4))
    CHECK(inn::torch_kaiming_uniform_bound(4) == 0.49999999999999994);
    for (std::int64_t fan_in : {1, 2, 3, 7, 64, 100, 513, 4096}) {
        CHECK(static_cast<float>(inn::torch_kaiming_uniform_bound(fan_in)) ==
              static_cast<float>(inn::torch_default_init_bound(fan_in)));
    }
}

// Every transform, many draws, as one digest of their bits. The same digest must come out of
// every build: tests/CMakeLists.txt also compiles this file with -march=native and the
// compiler's default contraction (inn_random_native_tests), where FMAs would change the last
// bit of some draws if core/random.hpp did not switch contraction off.
TEST_CASE("random: the draws do not depend on the compiler's floating-point contraction",
          "[random]") {
    std::uint64_t h = 14695981039346656037ULL;  // FNV-1a over the bytes of every value
    auto mix = [&](const auto& v) {
        unsigned char bytes[sizeof v];
        std::memcpy(bytes, &v, sizeof v);
        for (unsigned char b : bytes) h = (h ^ b) * 1099511628211ULL;
    };
    inn::generator g(3);
    std::vector<double> d(20000);
    std::vector<float> f(20000);
    g.fill_normal(d.data(), d.size(), 0.0, 1.0);
    g.fill_normal(f.data(), f.size(), 0.5f, 2.0f);
    for (double v : d) mix(v);
    for (float v : f) mix(v);
    for (int i = 0; i < 3000; ++i) mix(g.numpy().standard_normal());
    const Eigen::MatrixXd q = g.numpy().special_ortho_group(40);
    for (Eigen::Index i = 0; i < q.size(); ++i) mix(q.data()[i]);
    for (int i = 0; i < 1000; ++i) mix(g.uniform<double>(-0.3, 0.7));
    g.fill_uniform(f.data(), 1000, -0.25f, 0.25f);
    for (int i = 0; i < 1000; ++i) mix(f[std::size_t(i)]);
    CHECK(h == 11620026110622849439ULL);
}

}  // namespace
