// Loading and saving parameters (include/inn/io/state_dict.hpp) against real FrEIA files and
// hand-made ones: every way a file can fail to fit a network is an inn::io_error that names the
// file and, where there is one, the tensor key; a failed load leaves every parameter, buffer and
// flag exactly as it was; save_safetensors -> load_safetensors reproduces parameters and outputs
// bit for bit in float and double, booleans (ActNorm's is_initialized) included.
//
// Bad files are built from a network's own tensors with io::make_tensor /
// io::serialize_safetensors, or by editing the bytes of a valid file (length field, header
// JSON, data area).

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <inn/io/safetensors.hpp>
#include <inn/io/state_dict.hpp>
#include <inn/modules/actnorm.hpp>
#include <inn/modules/coupling/glow.hpp>
#include <inn/modules/permute_random.hpp>

#include "support/checks.hpp"
#include "support/fixture.hpp"

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

using namespace inn;
using Catch::Matchers::Contains;

namespace {

struct fc_load_errors {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 32>, nn::ReLU, nn::Linear<32, O>>;
};

// The architecture of the FrEIA file actnorm_vec (GLOW then ActNorm).
using FreiaNet = SequenceINN<Shape<6>, GLOWCouplingBlock<fc_load_errors>, ActNorm>;
// Real parameters, a boolean flag and int64 buffers: module_list.0.* (GLOW),
// module_list.1.{log_scale, loc, is_initialized}, module_list.2.{perm, perm_inv}.
using Net = SequenceINN<Shape<6>, GLOWCouplingBlock<fc_load_errors>, ActNorm, PermuteRandom<>>;

// ---- helpers ---------------------------------------------------------------------------------

/// Every state_dict entry of a network as (shape, raw bytes): equal states are equal bit for bit.
using state = std::map<std::string, std::pair<std::string, std::vector<unsigned char>>>;

template <class N>
state state_of(N& net) {
    using S = typename N::scalar;
    state s;
    net.visit([&](const std::string& key, const tensor_ref<S>& t) {
        const auto n = std::size_t(t.shape.numel());
        const void* p = t.real ? static_cast<const void*>(t.real)
                        : t.integer ? static_cast<const void*>(t.integer)
                                    : static_cast<const void*>(t.flag);
        const std::size_t bytes =
            n * (t.real ? sizeof(S) : t.integer ? sizeof(std::int64_t) : sizeof(bool));
        const auto* b = static_cast<const unsigned char*>(p);
        s[key] = {to_string(t.shape), std::vector<unsigned char>(b, b + bytes)};
    });
    return s;
}

/// The tensors save_safetensors writes, in memory, to build bad files from.
template <class N>
std::vector<io::tensor_to_write> tensors_of(N& net) {
    using S = typename N::scalar;
    std::vector<io::tensor_to_write> v;
    net.visit([&](const std::string& key, const tensor_ref<S>& t) {
        const auto n = std::size_t(t.shape.numel());
        if (t.real)
            v.push_back(io::make_tensor(key, t.shape.as_vector(), std::span<const S>(t.real, n)));
        else if (t.integer)
            v.push_back(io::make_tensor(key, t.shape.as_vector(),
                                        std::span<const std::int64_t>(t.integer, n)));
        else
            v.push_back(
                io::make_tensor(key, t.shape.as_vector(), std::span<const bool>(t.flag, n)));
    });
    return v;
}

io::tensor_to_write& entry(std::vector<io::tensor_to_write>& v, const std::string& key) {
    for (auto& t : v)
        if (t.name == key) return t;
    FAIL("no tensor " << key);
    return v.front();
}

/// A network whose state differs from a default-seeded one in every entry: other random
/// weights and permutation, ActNorm initialised from data (flag set).
template <class N>
N initialised(std::uint64_t seed) {
    N net(seed);
    net.forward(test::random_batch<typename N::scalar>(16, 6, unsigned(seed) + 100));
    return net;
}

/// A file in the temporary directory, removed at the end of the scope.
struct temp_file {
    std::filesystem::path path;
    // ctest runs test cases as parallel processes: a random tag keeps their files apart.
    explicit temp_file(const std::string& name)
        : path(std::filesystem::temp_directory_path() /
               ("inn_test_load_errors_" + std::to_string(std::random_device{}()) + "_" + name)) {}
    ~temp_file() {
        std::error_code ec;
        std::filesystem::remove(path, ec);
    }
    void write(const std::vector<std::byte>& bytes) const {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
        REQUIRE(out.good());
    }
};

std::vector<std::byte> read_bytes(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> b(c.size());
    std::memcpy(b.data(), c.data(), c.size());
    return b;
}

std::uint64_t header_length(const std::vector<std::byte>& f) {
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | std::uint64_t(f[std::size_t(i)]);
    return n;
}

/// The same file with its header replaced (padded with spaces to a multiple of 8).
std::vector<std::byte> with_header(const std::vector<std::byte>& f, std::string header) {
    const std::uint64_t old_n = header_length(f);
    header.append((8 - header.size() % 8) % 8, ' ');
    std::vector<std::byte> out(8 + header.size());
    for (int i = 0; i < 8; ++i) out[std::size_t(i)] = std::byte((header.size() >> (8 * i)) & 0xff);
    std::memcpy(out.data() + 8, header.data(), header.size());
    out.insert(out.end(), f.begin() + std::ptrdiff_t(8 + old_n), f.end());
    return out;
}

std::string header_of(const std::vector<std::byte>& f) {
    return std::string(reinterpret_cast<const char*>(f.data()) + 8, header_length(f));
}

/// Runs `load`, requires an io_error, and returns its message.
template <class F>
std::string load_error(F&& load) {
    try {
        load();
    } catch (const io_error& e) {
        return e.what();
    }
    FAIL("the load succeeded");
    return {};
}

}  // namespace

// ==== real FrEIA files ===========================================================================

TEMPLATE_TEST_CASE("load: a FrEIA file is strict about keys by default", "[io][load]", float,
                   double) {
    using N = FreiaNet::with_scalar<TestType>;
    const std::string path = test::fixture_path("actnorm_vec");
    N net = initialised<N>(5);
    const state before = state_of(net);

    SECTION("the test.* tensors are unexpected keys: strict by default") {
        const std::string msg = load_error([&] { load_safetensors(net, path); });
        INFO(msg);
        CHECK_THAT(msg, Contains(path));
        CHECK_THAT(msg, Contains("tensor 'test."));
        CHECK_THAT(msg, Contains("unexpected"));
        CHECK(state_of(net) == before);
    }
    SECTION("accepted with {.strict = false} or with the prefix ignored") {
        N a, b;
        load_safetensors(a, path, {.strict = false});
        load_safetensors(b, path, {.ignore_prefixes = {"test."}});
        CHECK(state_of(a) == state_of(b));
        CHECK(state_of(a) != before);
        // The values are the file's, converted to the Scalar.
        const auto file = io::safetensors_file::read(path);
        a.visit([&](const std::string& key, const tensor_ref<TestType>& t) {
            INFO(key);
            if (t.flag) {
                CHECK(*t.flag == true);  // stored as I64 1
                return;
            }
            const auto want = file.to_vector<double>(file.at(key));
            REQUIRE(want.size() == std::size_t(t.shape.numel()));
            for (std::size_t i = 0; i < want.size(); ++i) CHECK(t.real[i] == TestType(want[i]));
        });
    }
}

TEST_CASE("load: a FrEIA file for another architecture names the missing key", "[io][load]") {
    // permute_random_vec holds only module_list.0.perm / perm_inv of a (5,) network.
    using N = FreiaNet::with_scalar<double>;
    N net = initialised<N>(5);
    const state before = state_of(net);
    const std::string path = test::fixture_path("permute_random_vec");
    const std::string msg =
        load_error([&] { load_safetensors(net, path, {.strict = false}); });
    INFO(msg);
    CHECK_THAT(msg, Contains(path));
    CHECK_THAT(msg, Contains("tensor 'module_list.0.subnet1.0.weight'"));
    CHECK_THAT(msg, Contains("missing"));
    CHECK(state_of(net) == before);
}

// ==== hand-made files: every failure names the key, and nothing changes ========================

TEMPLATE_TEST_CASE("load: bad tensors are io_errors naming the key; the network is untouched",
                   "[io][load]", float, double) {
    using N = Net::with_scalar<TestType>;
    N source = initialised<N>(2);
    N net = initialised<N>(1);
    const state before = state_of(net);
    // Every entry of the file differs from the network's, so a partial commit would show.
    {
        const state other = state_of(source);
        REQUIRE(other.size() == before.size());
        for (const auto& [key, value] : before) {
            INFO(key);
            if (key.ends_with("is_initialized")) continue;  // true in both
            REQUIRE(other.at(key) != value);
        }
    }
    auto tensors = tensors_of(source);
    REQUIRE(tensors.size() == 13);
    const std::string name = "hand-made.safetensors";
    // Checked at the end by every section but the successful loads (no early return: Catch
    // would not discover the sections after it).
    bool unchanged = true;
    auto load = [&](const std::vector<io::tensor_to_write>& t, const load_options& opt = {}) {
        load_state_dict(net, io::safetensors_file::parse(io::serialize_safetensors(t), name), opt);
    };

    SECTION("the unmodified file loads: the cases below fail for their one defect only") {
        load(tensors);
        CHECK(state_of(net) == state_of(source));
        unchanged = false;
    }
    SECTION("missing key") {
        // The last key the network visits: every earlier one was staged already.
        std::erase_if(tensors, [](const auto& t) { return t.name == "module_list.2.perm_inv"; });
        const std::string msg = load_error([&] { load(tensors); });
        INFO(msg);
        CHECK_THAT(msg, Contains(name));
        CHECK_THAT(msg, Contains("tensor 'module_list.2.perm_inv'"));
        CHECK_THAT(msg, Contains("missing"));
        CHECK_THAT(msg, Contains("[6]"));
    }
    SECTION("unexpected key: rejected by default, accepted with {.strict = false}") {
        const std::vector<double> extra{1.0, 2.0};
        tensors.push_back(io::make_tensor("module_list.3.weight", {2}, extra));
        const std::string msg = load_error([&] { load(tensors); });
        INFO(msg);
        CHECK_THAT(msg, Contains(name));
        CHECK_THAT(msg, Contains("tensor 'module_list.3.weight'"));
        CHECK_THAT(msg, Contains("unexpected"));
        CHECK(state_of(net) == before);
        load(tensors, {.strict = false});
        CHECK(state_of(net) == state_of(source));
        unchanged = false;
    }
    SECTION("wrong shape: names the key and both shapes") {
        // loc of shape (6,) instead of FrEIA's (1, 6): same number of elements, still refused.
        entry(tensors, "module_list.1.loc").shape = {6};
        const std::string msg = load_error([&] { load(tensors); });
        INFO(msg);
        CHECK_THAT(msg, Contains(name));
        CHECK_THAT(msg, Contains("tensor 'module_list.1.loc'"));
        CHECK_THAT(msg, Contains("has shape [6]"));
        CHECK_THAT(msg, Contains("expects [1, 6]"));
    }
    SECTION("wrong rank-0 / rank-1 shape of the flag") {
        const std::vector<bool> flags{true};
        entry(tensors, "module_list.1.is_initialized") =
            io::make_tensor("module_list.1.is_initialized", {1}, flags);
        const std::string msg = load_error([&] { load(tensors); });
        INFO(msg);
        CHECK_THAT(msg, Contains("tensor 'module_list.1.is_initialized'"));
        CHECK_THAT(msg, Contains("has shape [1]"));
        CHECK_THAT(msg, Contains("expects []"));
    }
    SECTION("unsupported dtype: floating data into the int64 permutation") {
        std::vector<double> perm(6);
        // Integral values, refused all the same: floating data never becomes an index.
        for (int i = 0; i < 6; ++i) perm[std::size_t(i)] = double(5 - i);
        entry(tensors, "module_list.2.perm") = io::make_tensor("module_list.2.perm", {6}, perm);
        const std::string msg = load_error([&] { load(tensors); });
        INFO(msg);
        CHECK_THAT(msg, Contains(name));
        CHECK_THAT(msg, Contains("tensor 'module_list.2.perm'"));
        CHECK_THAT(msg, Contains("F64"));
        CHECK_THAT(msg, Contains("int64"));
    }
    SECTION("unsupported dtype: floating data into the boolean flag") {
        const std::vector<float> one{1.0f};
        auto& t = entry(tensors, "module_list.1.is_initialized");
        t = io::make_tensor(t.name, {}, one);
        const std::string msg = load_error([&] { load(tensors); });
        INFO(msg);
        CHECK_THAT(msg, Contains("tensor 'module_list.1.is_initialized'"));
        CHECK_THAT(msg, Contains("F32"));
    }
    SECTION("a BOOL byte that is neither 0 nor 1") {
        auto& t = entry(tensors, "module_list.1.is_initialized");
        REQUIRE(t.dtype == io::dtype::boolean);
        t.data[0] = std::byte{2};
        const std::string msg = load_error([&] { load(tensors); });
        INFO(msg);
        CHECK_THAT(msg, Contains(name));
        CHECK_THAT(msg, Contains("tensor 'module_list.1.is_initialized'"));
    }
    if constexpr (std::is_same_v<TestType, float>) {
        SECTION("a double value beyond the float range") {
            const std::vector<double> loc{0, 0, 1e300, 0, 0, 0};
            entry(tensors, "module_list.1.loc") = io::make_tensor("module_list.1.loc", {1, 6}, loc);
            const std::string msg = load_error([&] { load(tensors); });
            INFO(msg);
            CHECK_THAT(msg, Contains(name));
            CHECK_THAT(msg, Contains("tensor 'module_list.1.loc'"));
        }
    }
    if (unchanged) CHECK(state_of(net) == before);
}

TEST_CASE("load: broken files are io_errors naming the file; the network is untouched",
          "[io][load]") {
    using N = Net::with_scalar<double>;
    N source = initialised<N>(2);
    N net = initialised<N>(1);
    const state before = state_of(net);
    temp_file good("good.safetensors");
    save_safetensors(source, good.path);
    const std::vector<std::byte> bytes = read_bytes(good.path);
    const std::uint64_t n = header_length(bytes);
    REQUIRE(8 + n < bytes.size());
    temp_file bad("bad.safetensors");
    const std::string path = bad.path.string();
    bool unchanged = true;
    auto load_bad = [&](const std::vector<std::byte>& b) {
        bad.write(b);
        return load_error([&] { load_safetensors(net, bad.path); });
    };

    SECTION("the unmodified file loads") {
        load_safetensors(net, good.path);
        CHECK(state_of(net) == state_of(source));
        unchanged = false;
    }
    SECTION("truncated inside the data area: the tensor that no longer fits is named") {
        auto b = bytes;
        b.resize(b.size() - 5);
        const std::string msg = load_bad(b);
        INFO(msg);
        CHECK_THAT(msg, Contains(path));
        CHECK_THAT(msg, Contains("tensor '"));
        CHECK_THAT(msg, Contains("data area"));
    }
    SECTION("truncated inside the header") {
        auto b = bytes;
        b.resize(8 + n / 2);
        const std::string msg = load_bad(b);
        INFO(msg);
        CHECK_THAT(msg, Contains(path));
        CHECK_THAT(msg, Contains("header length"));
    }
    SECTION("truncated inside the length field, and empty") {
        for (std::size_t size : {std::size_t(0), std::size_t(5)}) {
            auto b = bytes;
            b.resize(size);
            const std::string msg = load_bad(b);
            INFO(msg);
            CHECK_THAT(msg, Contains(path));
            CHECK_THAT(msg, Contains("too short"));
        }
    }
    SECTION("header length larger than the file") {
        auto b = bytes;
        const std::uint64_t too_long = b.size();
        for (int i = 0; i < 8; ++i) b[std::size_t(i)] = std::byte((too_long >> (8 * i)) & 0xff);
        const std::string msg = load_bad(b);
        INFO(msg);
        CHECK_THAT(msg, Contains(path));
        CHECK_THAT(msg, Contains("header length " + std::to_string(too_long)));
    }
    SECTION("malformed header JSON") {
        std::string h = header_of(bytes);
        const auto at = h.find("\"module_list.1.loc\"");
        REQUIRE(at != std::string::npos);
        h[at + std::strlen("\"module_list.1.loc\"")] = ';';  // the ':' after the key
        const std::string msg = load_bad(with_header(bytes, h));
        INFO(msg);
        CHECK_THAT(msg, Contains(path));
        CHECK_THAT(msg, Contains("not valid JSON"));
    }
    SECTION("a header that is JSON but not an object of entries") {
        const std::string msg = load_bad(with_header(bytes, "[1, 2, 3]"));
        INFO(msg);
        CHECK_THAT(msg, Contains(path));
        CHECK_THAT(msg, Contains("object"));
    }
    SECTION("data offsets outside the file") {
        auto header = nlohmann::json::parse(header_of(bytes));
        const std::uint64_t data_size = bytes.size() - 8 - n;
        auto& offsets = header.at("module_list.1.log_scale").at("data_offsets");
        const std::uint64_t len = offsets[1].get<std::uint64_t>() - offsets[0].get<std::uint64_t>();
        offsets = {data_size + 64, data_size + 64 + len};
        const std::string msg = load_bad(with_header(bytes, header.dump()));
        INFO(msg);
        CHECK_THAT(msg, Contains(path));
        CHECK_THAT(msg, Contains("tensor 'module_list.1.log_scale'"));
        CHECK_THAT(msg, Contains("data area"));
    }
    SECTION("data offsets that do not match dtype and shape") {
        auto header = nlohmann::json::parse(header_of(bytes));
        auto& offsets = header.at("module_list.2.perm").at("data_offsets");
        offsets[1] = offsets[1].get<std::uint64_t>() - 8;
        const std::string msg = load_bad(with_header(bytes, header.dump()));
        INFO(msg);
        CHECK_THAT(msg, Contains(path));
        CHECK_THAT(msg, Contains("tensor 'module_list.2.perm'"));
    }
    SECTION("a file that does not exist") {
        const auto missing = bad.path.string() + ".missing";
        const std::string msg = load_error([&] { load_safetensors(net, missing); });
        INFO(msg);
        CHECK_THAT(msg, Contains(missing));
    }
    if (unchanged) CHECK(state_of(net) == before);
}

// ==== round trips ===============================================================================

TEMPLATE_TEST_CASE("save_safetensors -> load_safetensors reproduces parameters and outputs exactly",
                   "[io][save]", float, double) {
    using N = typename Net::template with_scalar<TestType>;
    using M = row_matrix<TestType>;
    N saved = initialised<N>(3);
    // Non-trivial values everywhere, including FrEIA-style trained-looking ActNorm state.
    generator g(9);
    saved.visit([&](const std::string&, const tensor_ref<TestType>& t) {
        if (t.real)
            for (std::int64_t i = 0; i < t.shape.numel(); ++i)
                t.real[i] += TestType(0.3) * g.normal<TestType>();
    });
    temp_file file(std::string("round_trip_") + (std::is_same_v<TestType, float> ? "f" : "d"));
    save_safetensors(saved, file.path, {{"note", "inn test"}});

    const auto f = io::safetensors_file::read(file.path);
    CHECK(f.metadata().at("note") == "inn test");
    CHECK(f.tensors().size() == 13);
    CHECK(f.at("module_list.0.subnet1.0.weight").dtype ==
          (std::is_same_v<TestType, float> ? io::dtype::f32 : io::dtype::f64));
    CHECK(f.at("module_list.1.is_initialized").dtype == io::dtype::boolean);
    CHECK(f.at("module_list.1.is_initialized").shape.empty());
    CHECK(f.at("module_list.2.perm").dtype == io::dtype::i64);
    CHECK(f.at("module_list.1.loc").shape == std::vector<std::int64_t>{1, 6});

    N loaded(11);  // other weights and permutation; ActNorm not initialised
    REQUIRE(state_of(loaded) != state_of(saved));
    load_safetensors(loaded, file.path);
    CHECK(state_of(loaded) == state_of(saved));

    // Same outputs bit for bit; the loaded flag keeps ActNorm from re-initialising on this batch.
    const M x = test::random_batch<TestType>(5, 6, 21);
    auto [z1, ljd1] = saved.forward(x);
    auto [z2, ljd2] = loaded.forward(x);
    CHECK(z1 == z2);
    CHECK(ljd1 == ljd2);
    auto [x1, r1] = saved.inverse(z1);
    auto [x2, r2] = loaded.inverse(z1);
    CHECK(x1 == x2);
    CHECK(r1 == r2);
    CHECK(state_of(loaded) == state_of(saved));
}

TEST_CASE("save/load: the ActNorm flag survives in both states", "[io][save]") {
    using N = Net::with_scalar<double>;
    auto flag_of = [](N& net) {
        bool value = false;
        int count = 0;
        net.visit([&](const std::string& key, const tensor_ref<double>& t) {
            if (!t.flag) return;
            CHECK(key == "module_list.1.is_initialized");
            value = *t.flag;
            ++count;
        });
        REQUIRE(count == 1);
        return value;
    };
    temp_file file("flag.safetensors");

    SECTION("initialised -> uninitialised network") {
        N a = initialised<N>(4);
        N b(4);
        REQUIRE(flag_of(a));
        REQUIRE(!flag_of(b));
        save_safetensors(a, file.path);
        load_safetensors(b, file.path);
        CHECK(flag_of(b));
    }
    SECTION("uninitialised -> initialised network: the next forward initialises again") {
        N a(4);
        N b = initialised<N>(4);
        save_safetensors(a, file.path);
        load_safetensors(b, file.path);
        CHECK(!flag_of(b));
        CHECK(state_of(b) == state_of(a));
        const row_matrix<double> x = test::random_batch(9, 6, 3);
        a.forward(x);
        b.forward(x);
        CHECK(flag_of(b));
        CHECK(state_of(b) == state_of(a));
    }
}

TEST_CASE("save/load across precisions: double file into a float network rounds once",
          "[io][save]") {
    using D = Net::with_scalar<double>;
    using F = Net::with_scalar<float>;
    D d = initialised<D>(6);
    temp_file file("cross.safetensors");
    save_safetensors(d, file.path);
    F f(8);
    load_safetensors(f, file.path);
    std::map<std::string, std::vector<double>> want;
    d.visit([&](const std::string& key, const tensor_ref<double>& t) {
        if (t.real) want[key].assign(t.real, t.real + t.shape.numel());
    });
    std::size_t checked = 0;
    f.visit([&](const std::string& key, const tensor_ref<float>& t) {
        if (!t.real) return;
        INFO(key);
        const auto& w = want.at(key);
        for (std::size_t i = 0; i < w.size(); ++i) CHECK(t.real[i] == static_cast<float>(w[i]));
        ++checked;
    });
    CHECK(checked == want.size());
    // The float file loads back into the double network as the float values, exactly.
    temp_file back("cross_back.safetensors");
    save_safetensors(f, back.path);
    D d2(7);
    load_safetensors(d2, back.path);
    d2.visit([&](const std::string& key, const tensor_ref<double>& t) {
        if (!t.real) return;
        INFO(key);
        const auto& w = want.at(key);
        for (std::size_t i = 0; i < w.size(); ++i)
            CHECK(t.real[i] == double(static_cast<float>(w[i])));
    });
}

}  // namespace
