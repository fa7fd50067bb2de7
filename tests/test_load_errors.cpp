// Loading and saving parameters (include/inn/io/state_dict.hpp) against real FrEIA files and
// hand-made ones: every way a file can fail to fit a network is an inn::io_error that names the
// file and, where there is one, the tensor key, and for a key that is missing, unexpected or of
// the wrong shape also what the network and the file hold under that module's prefix and which
// FrEIA module the file's keys there look like; a failed load leaves every parameter, buffer and
// flag exactly as it was, also when the network's prepare() refuses the loaded values;
// {.strict = false} accepts missing and unexpected keys as PyTorch does and reports them;
// save_safetensors -> load_safetensors reproduces parameters and outputs bit for bit in float
// and double, booleans (ActNorm's is_initialized) included.
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
#include <stdexcept>
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

/// The keys of a network, in visit order.
template <class N>
std::vector<std::string> keys_of(N& net) {
    std::vector<std::string> keys;
    net.visit([&](const std::string& key, const tensor_ref<typename N::scalar>&) {
        keys.push_back(key);
    });
    return keys;
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

TEST_CASE("load: a FrEIA file for another architecture names the missing key and the file's module",
          "[io][load]") {
    // permute_random_vec holds only module_list.0.perm / perm_inv of a (5,) network.
    using N = FreiaNet::with_scalar<double>;
    N net = initialised<N>(5);
    const state before = state_of(net);
    const std::string path = test::fixture_path("permute_random_vec");

    SECTION("strict: the first missing key, with what the network and the file hold there") {
        const std::string msg = load_error([&] { load_safetensors(net, path); });
        INFO(msg);
        CHECK_THAT(msg, Contains(path));
        CHECK_THAT(msg, Contains("tensor 'module_list.0.subnet1.0.weight'"));
        CHECK_THAT(msg, Contains("missing"));
        CHECK_THAT(msg, Contains("under 'module_list.0.' the network has: "));
        CHECK_THAT(msg, Contains("subnet1.0.weight [32, 3]"));
        CHECK_THAT(msg, Contains("subnet2.2.bias [6]"));
        CHECK_THAT(msg, Contains("under 'module_list.0.' the file holds: perm [5] I64, "
                                 "perm_inv [5] I64"));
        CHECK_THAT(msg, Contains("module_list.0 in the file holds PermuteRandom-like keys perm, "
                                 "perm_inv"));
        CHECK_THAT(msg, Contains("the network's module_list.0 is "
                                 "GLOWCouplingBlock/GINCouplingBlock-like"));
    }
    SECTION("{.strict = false}: nothing fits, so nothing changes, and every key is reported") {
        const load_result r =
            load_safetensors(net, path, {.strict = false, .ignore_prefixes = {"test."}});
        CHECK(r.missing_keys == keys_of(net));
        CHECK(r.unexpected_keys ==
              std::vector<std::string>{"module_list.0.perm", "module_list.0.perm_inv"});
    }
    CHECK(state_of(net) == before);
}

TEST_CASE("load: a FrEIA file for modules in another order names the module the file holds there",
          "[io][load]") {
    // actnorm_vec is GLOW then ActNorm; this network has them the other way round.
    using N = SequenceINN<Shape<6>, ActNorm, GLOWCouplingBlock<fc_load_errors>>;
    N net(3);
    const state before = state_of(net);
    const std::string path = test::fixture_path("actnorm_vec");
    const std::string msg = load_error([&] { load_safetensors(net, path); });
    INFO(msg);
    CHECK_THAT(msg, Contains("tensor 'module_list.0.log_scale': missing"));
    CHECK_THAT(msg, Contains("under 'module_list.0.' the network has: log_scale [1, 6], "
                             "loc [1, 6], is_initialized []"));
    CHECK_THAT(msg, Contains("subnet1.0.weight [32, 3] F64"));
    CHECK_THAT(msg, Contains("module_list.0 in the file holds "
                             "GLOWCouplingBlock/GINCouplingBlock-like keys subnet1.*, subnet2.*; "
                             "the network's module_list.0 is ActNorm-like"));
    CHECK(state_of(net) == before);
}

TEST_CASE("load: the module prefix of a key", "[io][load]") {
    CHECK(detail::module_prefix("module_list.0.subnet1.0.weight") == "module_list.0.");
    CHECK(detail::module_prefix("module_list.12.perm") == "module_list.12.");
    CHECK(detail::module_prefix("module_list.1.module_list.3.loc") ==
          "module_list.1.module_list.3.");
    CHECK(detail::module_prefix("module_list.1.module_list.3.F.0.bias") ==
          "module_list.1.module_list.3.");
    CHECK(detail::module_prefix("my_module_list.1.perm") == "my_module_list.1.");
    CHECK(detail::module_prefix("subnet.0.weight") == "subnet.0.");
    CHECK(detail::module_prefix("perm") == "");
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
        return load_state_dict(net, io::safetensors_file::parse(io::serialize_safetensors(t), name),
                               opt);
    };

    SECTION("the unmodified file loads: the cases below fail for their one defect only") {
        const load_result r = load(tensors);
        CHECK(r.missing_keys.empty());
        CHECK(r.unexpected_keys.empty());
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
        CHECK_THAT(msg, Contains("under 'module_list.2.' the network has: perm [6], perm_inv [6]"));
        CHECK_THAT(msg, Contains("under 'module_list.2.' the file holds: perm [6] I64\n"));
        CHECK_THAT(msg, Contains("the network's module_list.2 is PermuteRandom-like"));
    }
    SECTION("another module at the same position: the keys the file holds there, and its guess") {
        std::erase_if(tensors, [](const auto& t) { return t.name.starts_with("module_list.2."); });
        const std::vector<TestType> v{1, 2, 3, 4, 5, 6};
        const std::vector<bool> flag{true};
        tensors.push_back(io::make_tensor("module_list.2.log_scale", {1, 6}, v));
        tensors.push_back(io::make_tensor("module_list.2.loc", {1, 6}, v));
        tensors.push_back(io::make_tensor("module_list.2.is_initialized", {}, flag));
        const std::string msg = load_error([&] { load(tensors); });
        INFO(msg);
        const std::string dt = std::is_same_v<TestType, float> ? "F32" : "F64";
        CHECK_THAT(msg, Contains(name));
        CHECK_THAT(msg, Contains("tensor 'module_list.2.perm': missing"));
        CHECK_THAT(msg, Contains("under 'module_list.2.' the network has: perm [6], perm_inv [6]"));
        CHECK_THAT(msg, Contains("under 'module_list.2.' the file holds: log_scale [1, 6] " + dt +
                                 ", loc [1, 6] " + dt + ", is_initialized [] BOOL"));
        CHECK_THAT(msg, Contains("module_list.2 in the file holds ActNorm-like keys log_scale, "
                                 "loc, is_initialized; the network's module_list.2 is "
                                 "PermuteRandom-like"));
    }
    SECTION("unexpected key: rejected by default, accepted with {.strict = false}") {
        const std::vector<double> extra{1.0, 2.0};
        tensors.push_back(io::make_tensor("module_list.3.weight", {2}, extra));
        const std::string msg = load_error([&] { load(tensors); });
        INFO(msg);
        CHECK_THAT(msg, Contains(name));
        CHECK_THAT(msg, Contains("tensor 'module_list.3.weight'"));
        CHECK_THAT(msg, Contains("unexpected"));
        CHECK_THAT(msg, Contains("under 'module_list.3.' the network has: nothing"));
        CHECK_THAT(msg, Contains("under 'module_list.3.' the file holds: weight [2] F64"));
        CHECK(state_of(net) == before);
        const load_result r = load(tensors, {.strict = false});
        CHECK(r.missing_keys.empty());
        CHECK(r.unexpected_keys == std::vector<std::string>{"module_list.3.weight"});
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
        CHECK_THAT(msg, Contains("under 'module_list.1.' the network has: log_scale [1, 6], "
                                 "loc [1, 6], is_initialized []"));
        CHECK_THAT(msg, Contains(", loc [6] F"));
        CHECK_THAT(msg, Contains("module_list.1 in the file holds ActNorm-like keys"));
        // Both are ActNorm-like: no contradiction to point out.
        CHECK_THAT(msg, !Contains("the network's module_list.1"));
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

TEST_CASE("load: {.strict = false} accepts missing keys, keeps their values and reports both kinds",
          "[io][load]") {
    using N = Net::with_scalar<double>;
    N source = initialised<N>(2);
    N net = initialised<N>(1);
    const state before = state_of(net);
    const state loaded = state_of(source);
    // The permutation goes as a pair, so that the network keeps a consistent one.
    const std::vector<std::string> dropped{"module_list.1.loc", "module_list.2.perm",
                                           "module_list.2.perm_inv"};
    for (const auto& key : dropped) REQUIRE(loaded.at(key) != before.at(key));
    auto tensors = tensors_of(source);
    std::erase_if(tensors, [&](const auto& t) {
        return std::find(dropped.begin(), dropped.end(), t.name) != dropped.end();
    });
    tensors.push_back(io::make_tensor("module_list.3.weight", {2}, std::vector<double>{1, 2}));
    tensors.push_back(io::make_tensor("test.z.0", {1}, std::vector<double>{0}));
    const std::string name = "partial.safetensors";
    const auto file = io::safetensors_file::parse(io::serialize_safetensors(tensors), name);

    SECTION("strict (the default) refuses the first missing key and changes nothing") {
        const std::string msg = load_error([&] { load_state_dict(net, file); });
        INFO(msg);
        CHECK_THAT(msg, Contains(name));
        CHECK_THAT(msg, Contains("tensor 'module_list.1.loc': missing"));
        CHECK_THAT(msg, Contains("{.strict = false}"));
        CHECK(state_of(net) == before);
    }
    SECTION("not strict: the file's tensors are loaded, the missing ones keep their values") {
        const load_result r =
            load_state_dict(net, file, {.strict = false, .ignore_prefixes = {"test."}});
        CHECK(r.missing_keys == dropped);  // in visit order
        CHECK(r.unexpected_keys == std::vector<std::string>{"module_list.3.weight"});
        const state after = state_of(net);
        REQUIRE(after.size() == before.size());
        for (const auto& [key, value] : after) {
            INFO(key);
            const bool kept = std::find(dropped.begin(), dropped.end(), key) != dropped.end();
            CHECK(value == (kept ? before : loaded).at(key));
        }
    }
    SECTION("not strict, no ignored prefix: the test.* key is unexpected too, in file order") {
        const load_result r = load_state_dict(net, file, {.strict = false});
        CHECK(r.missing_keys == dropped);
        CHECK(r.unexpected_keys ==
              std::vector<std::string>{"module_list.3.weight", "test.z.0"});
    }
    SECTION("not strict still refuses a wrong shape, and changes nothing") {
        entry(tensors, "module_list.1.log_scale").shape = {6};
        const std::string msg = load_error([&] {
            load_state_dict(net,
                            io::safetensors_file::parse(io::serialize_safetensors(tensors), name),
                            {.strict = false});
        });
        INFO(msg);
        CHECK_THAT(msg, Contains("tensor 'module_list.1.log_scale': has shape [6]"));
        CHECK(state_of(net) == before);
    }
}

/// A network in miniature with prepare(), as the library's networks have: visit() over a real
/// parameter, an int64 permutation and a flag; prepare() checks the permutation (its message
/// names the key) and derives its inverse, a cache outside the state_dict.
struct checked_net {
    using scalar = double;
    parameter<double> weight{tensor_shape{2, 3}};
    index_buffer perm{4};
    bool flag = false;
    std::vector<std::int64_t> perm_inv;  // derived by prepare()
    int prepared = 0;                    // calls of prepare()

    template <class V>
    void visit(V&& v) {
        v(std::string("module_list.0.weight"), weight.ref());
        v(std::string("module_list.1.perm"), perm.ref<double>());
        v(std::string("module_list.2.is_initialized"),
          tensor_ref<double>{nullptr, nullptr, &flag, tensor_shape{}, false});
    }
    void prepare() {
        ++prepared;
        std::vector<std::int64_t> inv(perm.values.size(), -1);
        for (std::size_t i = 0; i < perm.values.size(); ++i) {
            const std::int64_t p = perm.values[i];
            if (p < 0 || p >= std::ssize(inv) || inv[std::size_t(p)] != -1)
                throw std::invalid_argument("module_list.1.perm: not a permutation (element " +
                                            std::to_string(i) + " is " + std::to_string(p) + ")");
            inv[std::size_t(p)] = std::int64_t(i);
        }
        perm_inv = inv;
    }
};

TEST_CASE("load: a network whose prepare() refuses the loaded values gets every tensor back",
          "[io][load]") {
    checked_net source, net;
    for (int i = 0; i < 6; ++i) {
        source.weight.values[i] = i + 1;
        net.weight.values[i] = -(i + 1);
    }
    source.perm.values = {2, 0, 3, 1};
    source.flag = true;
    net.perm.values = {3, 1, 0, 2};
    net.prepare();
    net.prepared = 0;
    const state before = state_of(net);
    REQUIRE(net.perm_inv == std::vector<std::int64_t>{2, 1, 3, 0});
    auto tensors = tensors_of(source);
    const std::string name = "checked.safetensors";
    auto load = [&](const load_options& opt = {}) {
        return load_state_dict(
            net, io::safetensors_file::parse(io::serialize_safetensors(tensors), name), opt);
    };

    SECTION("accepted values: committed; prepare() ran once, on them") {
        load();
        CHECK(state_of(net) == state_of(source));
        CHECK(net.prepared == 1);
        CHECK(net.perm_inv == std::vector<std::int64_t>{1, 3, 0, 2});
    }
    SECTION("a permutation with a duplicate: an io_error naming the file and the key") {
        entry(tensors, "module_list.1.perm") =
            io::make_tensor("module_list.1.perm", {4}, std::vector<std::int64_t>{0, 0, 1, 2});
        const std::string msg = load_error([&] { load(); });
        INFO(msg);
        CHECK_THAT(msg, Contains(name));
        CHECK_THAT(msg, Contains("module_list.1.perm: not a permutation (element 1 is 0)"));
        CHECK_THAT(msg, Contains("every tensor keeps its previous value"));
        CHECK(state_of(net) == before);
        // Refused, then run again on the restored values: the cache is theirs again.
        CHECK(net.prepared == 2);
        CHECK(net.perm_inv == std::vector<std::int64_t>{2, 1, 3, 0});
    }
    SECTION("the same with {.strict = false} and a missing key") {
        std::erase_if(tensors, [](const auto& t) { return t.name == "module_list.0.weight"; });
        entry(tensors, "module_list.1.perm") =
            io::make_tensor("module_list.1.perm", {4}, std::vector<std::int64_t>{0, 1, 2, -1});
        const std::string msg = load_error([&] { load({.strict = false}); });
        INFO(msg);
        CHECK_THAT(msg, Contains("element 3 is -1"));
        CHECK(state_of(net) == before);
    }
    SECTION("a file that does not fit fails before prepare() runs") {
        std::erase_if(tensors, [](const auto& t) { return t.name == "module_list.1.perm"; });
        const std::string msg = load_error([&] { load(); });
        INFO(msg);
        CHECK_THAT(msg, Contains("tensor 'module_list.1.perm': missing"));
        CHECK(net.prepared == 0);
        CHECK(state_of(net) == before);
    }
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
