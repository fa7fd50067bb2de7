// Tests of the low-level safetensors reader/writer (include/inn/io/safetensors.hpp).
// Expected fixture values were read independently with Python's json + struct modules.

#include <inn/io/error.hpp>
#include <inn/io/safetensors.hpp>

#include <catch2/catch.hpp>

#if defined(__unix__)
#include <csignal>
#include <sys/resource.h>
#endif

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

// Everything in this file has internal linkage: test files reuse names (subnets,
// node structs) that would otherwise collide across translation units (ODR).
namespace {

namespace {

namespace fs = std::filesystem;
using Catch::Contains;
using inn::io::dtype;
using inn::io::safetensors_file;
using inn::io::tensor_to_write;

fs::path fixture_dir() {
#ifdef INN_TEST_DATA_DIR
    return fs::path(INN_TEST_DATA_DIR) / "freia";
#else
    return fs::path(__FILE__).parent_path() / "data" / "freia";
#endif
}

std::vector<std::byte> to_bytes(std::string_view s) {
    std::vector<std::byte> out;
    for (const char c : s) {
        out.push_back(static_cast<std::byte>(c));
    }
    return out;
}

// A safetensors image built by hand: length prefix (the real one unless given), header text,
// data bytes.
std::vector<std::byte> make_file(std::string_view header, const std::vector<std::byte>& data = {},
                                 std::optional<std::uint64_t> declared = std::nullopt) {
    const std::uint64_t n = declared.value_or(header.size());
    std::vector<std::byte> out(8);
    for (int i = 0; i < 8; ++i) {
        out[static_cast<std::size_t>(i)] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
    }
    const auto h = to_bytes(header);
    out.insert(out.end(), h.begin(), h.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

template <class T> void put(std::vector<std::byte>& data, std::size_t offset, T value) {
    static_assert(std::endian::native == std::endian::little, "test assumes a little-endian host");
    if (data.size() < offset + sizeof(T)) {
        data.resize(offset + sizeof(T));
    }
    std::memcpy(data.data() + offset, &value, sizeof(T));
}

safetensors_file parse(std::string_view header, const std::vector<std::byte>& data = {}) {
    return safetensors_file::parse(make_file(header, data), "buf.safetensors");
}

// Parses and converts everything; anything but success or io_error fails the test.
void parse_and_convert(std::vector<std::byte> bytes) {
    try {
        const auto f = safetensors_file::parse(std::move(bytes), "mutant");
        for (const auto& t : f.tensors()) {
            try {
                (void)f.to_vector<double>(t);
            } catch (const inn::io_error&) {
            }
            try {
                (void)f.to_vector<std::int64_t>(t);
            } catch (const inn::io_error&) {
            }
        }
    } catch (const inn::io_error&) {
    }
}

} // namespace

TEST_CASE("safetensors: dtype names and sizes", "[safetensors]") {
    CHECK(inn::io::to_string(dtype::f64) == "F64");
    CHECK(inn::io::to_string(dtype::boolean) == "BOOL");
    CHECK(inn::io::to_string(dtype::bf16) == "BF16");
    CHECK(inn::io::to_string(dtype::f8_e4m3) == "F8_E4M3");
    CHECK(inn::io::element_size(dtype::f64) == 8);
    CHECK(inn::io::element_size(dtype::f16) == 2);
    CHECK(inn::io::element_size(dtype::boolean) == 1);
    for (const auto& e : inn::io::detail::dtype_table) {
        CHECK(inn::io::dtype_from_string(e.name) == e.type);
    }
    CHECK_FALSE(inn::io::dtype_from_string("F128").has_value());
    CHECK_FALSE(inn::io::dtype_from_string("f64").has_value());
}

TEST_CASE("safetensors: reads the fixed_linear FrEIA fixture", "[safetensors]") {
    const auto f = safetensors_file::read(fixture_dir() / "fixed_linear.safetensors");
    CHECK_THAT(f.source(), Contains("fixed_linear.safetensors"));

    REQUIRE(f.metadata().count("architecture") == 1);
    CHECK_THAT(f.metadata().at("architecture"), Contains("\"container\":\"sequence\""));
    CHECK(f.metadata().at("case_name") == "fixed_linear");
    CHECK(f.metadata().at("dtype") == "float64");

    // Header order, as json.loads sees it.
    const std::vector<std::string> expected_order{
        "module_list.0.M",  "module_list.0.M_inv",  "module_list.0.b", "module_list.0.logDetM",
        "test.log_jac_det", "test.log_jac_det_rev", "test.x.0",        "test.x_rev.0",
        "test.z.0"};
    std::vector<std::string> order;
    for (const auto& t : f.tensors()) {
        order.push_back(t.name);
    }
    CHECK(order == expected_order);

    const auto& m = f.at("module_list.0.M");
    CHECK(m.dtype == dtype::f64);
    CHECK(m.shape == std::vector<std::int64_t>{6, 6});
    CHECK(m.begin == 0);
    CHECK(m.end == 288);
    CHECK(m.numel() == 36);
    const std::vector<double> m_expected{
        0.84802593329784,     0.14768399150206646,   -0.7245135277479444,   -0.08834192751962373,
        -0.06127555175358553, 0.48664977953158794,   -0.4402949246783592,   0.7729596348297102,
        -0.4071524538363857,  -0.3643723377746277,   0.0011246963776191594, 0.4807234578580519,
        0.032732303058534966, 0.4175611077551277,    1.3207850700013888,    0.02264839249418936,
        -0.2508395860809023,  0.2756353249942444,    -0.06097577505261029,  1.309079270956119,
        -0.3999032934233526,  1.2239615568975424,    -0.6541336642140141,   0.6112966350612954,
        0.2996690482930482,   0.18135951014368595,   -0.4322129844840302,   -0.295499675116751,
        2.329212303221641,    -0.006778740950643301, 0.499579560278746,     -0.6773357512482531,
        -0.5734793967512819,  -0.005742592461834035, 0.03818783597367156,   1.6970252015884106};
    CHECK(f.to_vector<double>(m) == m_expected);

    // 0-d tensor: shape [], one element.
    const auto& logdet = f.at("module_list.0.logDetM");
    CHECK(logdet.shape.empty());
    CHECK(logdet.numel() == 1);
    CHECK(logdet.end - logdet.begin == 8);
    CHECK(f.to_vector<double>(logdet) == std::vector<double>{2.278046813709839});
    double scalar = 0;
    f.copy_to(logdet, std::span<double>(&scalar, 1));
    CHECK(scalar == 2.278046813709839);
    const auto as_float = f.to_vector<float>(logdet);
    CHECK(as_float[0] == static_cast<float>(2.278046813709839));

    CHECK(f.find("module_list.0.b") != nullptr);
    CHECK(f.find("module_list.0.b")->shape == std::vector<std::int64_t>{1, 6});
    CHECK(f.find("no.such.tensor") == nullptr);
    CHECK_THROWS_AS(f.at("no.such.tensor"), inn::io_error);
    CHECK_THROWS_WITH(f.at("no.such.tensor"), Contains("missing tensor 'no.such.tensor' in") &&
                                                  Contains("fixed_linear.safetensors"));
    CHECK_THROWS_WITH(f.to_vector<std::int64_t>(m),
                      Contains("module_list.0.M") && Contains("cannot convert dtype F64"));
}

TEST_CASE("safetensors: reads float32 and int64 fixture data at 4-byte offsets", "[safetensors]") {
    const auto f = safetensors_file::read(fixture_dir() / "erqs_vec_cond_float32.safetensors");
    CHECK(f.tensors().size() == 15);

    const auto& bins = f.at("module_list.0.bins");
    CHECK(bins.dtype == dtype::i64);
    CHECK(bins.shape.empty());
    CHECK(f.to_vector<std::int64_t>(bins) == std::vector<std::int64_t>{8});
    CHECK(f.to_vector<double>(bins) == std::vector<double>{8.0});
    CHECK_THROWS_WITH(f.to_vector<bool>(bins),
                      Contains("module_list.0.bins") && Contains("neither 0 nor 1"));
    CHECK(f.to_vector<bool>(f.at("module_list.0.identity_tails")) == std::vector<bool>{false});

    const auto& mbs = f.at("module_list.0.min_bin_sizes");
    CHECK(mbs.dtype == dtype::f32);
    CHECK(mbs.begin == 36); // not 8-byte aligned in the file
    CHECK(f.to_vector<float>(mbs) == std::vector<float>{0.1f, 0.1f});
    CHECK(f.to_vector<double>(mbs) ==
          std::vector<double>{0.10000000149011612, 0.10000000149011612});

    const std::vector<double> c_expected{
        1.4318302869796753,   -0.9613254070281982,   0.8874067664146423,  1.3103852272033691,
        -0.7829965353012085,  1.2667604684829712,    -0.8496074676513672, -1.5993537902832031,
        -1.238318681716919,   -0.059121329337358475, 1.3330999612808228,  -0.5522633194923401,
        1.143430233001709,    -0.17495040595531464,  1.6527955532073975,  -0.22956092655658722,
        0.2080787718296051,   0.6188482046127319,    0.7359169721603394,  -1.618666172027588,
        -0.018192674964666367};
    const auto& c = f.at("test.c.0");
    CHECK(c.shape == std::vector<std::int64_t>{7, 3});
    CHECK(f.to_vector<double>(c) == c_expected);
    const auto cf = f.to_vector<float>(c);
    REQUIRE(cf.size() == c_expected.size());
    for (std::size_t i = 0; i < cf.size(); ++i) {
        CHECK(cf[i] == static_cast<float>(c_expected[i]));
    }
}

TEST_CASE("safetensors: integer fixtures (permutation, ActNorm flag)", "[safetensors]") {
    const auto p = safetensors_file::read(fixture_dir() / "permute_random_vec.safetensors");
    CHECK(p.to_vector<std::int64_t>(p.at("module_list.0.perm")) ==
          std::vector<std::int64_t>{3, 4, 1, 0, 2});
    CHECK(p.to_vector<std::int64_t>(p.at("module_list.0.perm_inv")) ==
          std::vector<std::int64_t>{3, 2, 4, 0, 1});

    const auto a = safetensors_file::read(fixture_dir() / "actnorm_vec.safetensors");
    const auto& flag = a.at("module_list.1.is_initialized");
    CHECK(flag.dtype == dtype::i64);
    CHECK(flag.shape.empty());
    CHECK(a.to_vector<bool>(flag) == std::vector<bool>{true});
    const auto loc = a.to_vector<double>(a.at("module_list.1.loc"));
    REQUIRE(loc.size() == 6);
    CHECK(loc[0] == 0.13533425278515018);
    CHECK(loc[2] == -0.13271537189492205);
}

TEST_CASE("safetensors: every FrEIA fixture parses, tiles its data area and converts",
          "[safetensors]") {
    std::size_t files = 0;
    for (const auto& entry : fs::directory_iterator(fixture_dir())) {
        if (entry.path().extension() != ".safetensors") {
            continue;
        }
        ++files;
        INFO(entry.path().string());
        const auto f = safetensors_file::read(entry.path());
        CHECK(f.metadata().count("architecture") == 1);
        CHECK_FALSE(f.tensors().empty());
        std::size_t covered = 0;
        for (const auto& t : f.tensors()) {
            covered += t.end - t.begin;
            const auto v = f.to_vector<double>(t);
            CHECK(static_cast<std::int64_t>(v.size()) == t.numel());
            CHECK(f.raw(t).size() == t.end - t.begin);
            CHECK(t.dtype != dtype::boolean);
        }
        // FrEIA files have no gaps: the tensors cover the whole data area exactly.
        const auto file_size = fs::file_size(entry.path());
        std::uint64_t header_len = 0;
        {
            std::ifstream in(entry.path(), std::ios::binary);
            unsigned char len[8] = {};
            in.read(reinterpret_cast<char*>(len), 8);
            for (int i = 7; i >= 0; --i) {
                header_len = (header_len << 8) | len[i];
            }
        }
        CHECK(header_len % 8 == 0);
        CHECK(8 + header_len + covered == file_size);
    }
    CHECK(files == 110);
}

TEST_CASE("safetensors: hand-built file with odd, unaligned offsets and all dtypes",
          "[safetensors]") {
    // Offsets follow each other byte by byte, so most tensors start at odd addresses.
    std::vector<std::byte> data;
    put<std::uint8_t>(data, 0, 1); // b: BOOL [3] at [0, 3)
    put<std::uint8_t>(data, 1, 0);
    put<std::uint8_t>(data, 2, 1);
    put<double>(data, 3, -1.5e-300); // s: F64 []
    put<float>(data, 11, 3.25f);     // f: F32 [2]
    put<float>(data, 15, -0.0f);
    put<std::int32_t>(data, 19, -123456);                                  // i: I32 [1]
    put<std::int64_t>(data, 23, std::numeric_limits<std::int64_t>::min()); // l: I64 [2, 1]
    put<std::int64_t>(data, 31, 42);
    put<std::uint16_t>(data, 39, 0x3c00); // h: F16 [2]: 1.0, -2.0
    put<std::uint16_t>(data, 41, 0xc000);
    put<std::uint16_t>(data, 43, 0x3f80);                 // g: BF16 []: 1.0
    put<std::int16_t>(data, 45, -7);                      // w: I16 [1]
    put<std::uint8_t>(data, 47, 200);                     // u: U8 [1]
    put<std::int8_t>(data, 48, -100);                     // c: I8 [1]
    put<std::uint16_t>(data, 49, 65535);                  // v: U16 [1]
    put<std::uint32_t>(data, 51, 4000000000u);            // x: U32 [1]
    put<std::uint64_t>(data, 55, std::uint64_t{1} << 63); // y: U64 [1]
    REQUIRE(data.size() == 63);
    const std::string header = R"({"b":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]},)"
                               R"("s":{"dtype":"F64","shape":[],"data_offsets":[3,11]},)"
                               R"("f":{"dtype":"F32","shape":[2],"data_offsets":[11,19]},)"
                               R"("i":{"dtype":"I32","shape":[1],"data_offsets":[19,23]},)"
                               R"("l":{"dtype":"I64","shape":[2,1],"data_offsets":[23,39]},)"
                               R"("h":{"dtype":"F16","shape":[2],"data_offsets":[39,43]},)"
                               R"("g":{"dtype":"BF16","shape":[],"data_offsets":[43,45]},)"
                               R"("w":{"dtype":"I16","shape":[1],"data_offsets":[45,47]},)"
                               R"("u":{"dtype":"U8","shape":[1],"data_offsets":[47,48]},)"
                               R"("c":{"dtype":"I8","shape":[1],"data_offsets":[48,49]},)"
                               R"("v":{"dtype":"U16","shape":[1],"data_offsets":[49,51]},)"
                               R"("x":{"dtype":"U32","shape":[1],"data_offsets":[51,55]},)"
                               R"("y":{"dtype":"U64","shape":[1],"data_offsets":[55,63]}})";
    const auto f = parse(header, data);
    REQUIRE(f.tensors().size() == 13);
    CHECK(f.tensors()[0].name == "b");
    CHECK(f.tensors()[12].name == "y");

    CHECK(f.to_vector<bool>(f.at("b")) == std::vector<bool>{true, false, true});
    CHECK(f.to_vector<std::int64_t>(f.at("b")) == std::vector<std::int64_t>{1, 0, 1});
    CHECK(f.to_vector<double>(f.at("b")) == std::vector<double>{1, 0, 1});
    CHECK(f.to_vector<double>(f.at("s")) == std::vector<double>{-1.5e-300});
    CHECK(f.to_vector<float>(f.at("s")) == std::vector<float>{-0.0f}); // underflows to -0
    CHECK(f.to_vector<float>(f.at("f")) == std::vector<float>{3.25f, -0.0f});
    CHECK(std::signbit(f.to_vector<double>(f.at("f"))[1]));
    CHECK(f.to_vector<std::int64_t>(f.at("i")) == std::vector<std::int64_t>{-123456});
    CHECK(f.to_vector<std::int64_t>(f.at("l")) ==
          std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(), 42});
    CHECK(f.to_vector<double>(f.at("l")) == std::vector<double>{-9223372036854775808.0, 42.0});
    CHECK(f.to_vector<float>(f.at("h")) == std::vector<float>{1.0f, -2.0f});
    CHECK(f.to_vector<double>(f.at("g")) == std::vector<double>{1.0});
    CHECK(f.to_vector<std::int64_t>(f.at("w")) == std::vector<std::int64_t>{-7});
    CHECK(f.to_vector<std::int64_t>(f.at("u")) == std::vector<std::int64_t>{200});
    CHECK(f.to_vector<std::int64_t>(f.at("c")) == std::vector<std::int64_t>{-100});
    CHECK(f.to_vector<std::int64_t>(f.at("v")) == std::vector<std::int64_t>{65535});
    CHECK(f.to_vector<std::int64_t>(f.at("x")) == std::vector<std::int64_t>{4000000000});
    CHECK(f.to_vector<double>(f.at("y")) == std::vector<double>{9223372036854775808.0});
    CHECK_THROWS_WITH(f.to_vector<std::int64_t>(f.at("y")),
                      Contains("tensor 'y'") && Contains("outside the range of int64"));

    // raw() gives the stored bytes untouched.
    const auto r = f.raw(f.at("i"));
    REQUIRE(r.size() == 4);
    std::int32_t back = 0;
    std::memcpy(&back, r.data(), 4);
    CHECK(back == -123456);
}

TEST_CASE("safetensors: half, bfloat16 and float8 decoding", "[safetensors]") {
    std::vector<std::byte> data;
    const std::uint16_t halves[] = {0x3c00, 0xc000, 0x7c00, 0xfc00, 0x0001, 0x7bff, 0x8000, 0x3555};
    for (std::size_t i = 0; i < 8; ++i) {
        put<std::uint16_t>(data, 2 * i, halves[i]);
    }
    put<std::uint16_t>(data, 16, 0x7e00); // NaN
    put<std::uint16_t>(data, 18, 0x3f80); // bf16 1.0
    put<std::uint16_t>(data, 20, 0xc049); // bf16 -3.140625
    put<std::uint16_t>(data, 22, 0x0001); // bf16 smallest subnormal 2^-133
    const std::uint8_t e4m3[] = {0x38, 0x7e, 0x01, 0xb8, 0x7f};
    const std::uint8_t e5m2[] = {0x3c, 0x7c, 0x01, 0xc0};
    const std::uint8_t e8m0[] = {127, 128, 0, 255};
    for (std::size_t i = 0; i < 5; ++i) {
        put<std::uint8_t>(data, 24 + i, e4m3[i]);
    }
    for (std::size_t i = 0; i < 4; ++i) {
        put<std::uint8_t>(data, 29 + i, e5m2[i]);
        put<std::uint8_t>(data, 33 + i, e8m0[i]);
    }
    const auto f = parse(R"({"h":{"dtype":"F16","shape":[9],"data_offsets":[0,18]},)"
                         R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[18,24]},)"
                         R"("e4":{"dtype":"F8_E4M3","shape":[5],"data_offsets":[24,29]},)"
                         R"("e5":{"dtype":"F8_E5M2","shape":[4],"data_offsets":[29,33]},)"
                         R"("e8":{"dtype":"F8_E8M0","shape":[4],"data_offsets":[33,37]}})",
                         data);
    const auto h = f.to_vector<double>(f.at("h"));
    const double inf = std::numeric_limits<double>::infinity();
    CHECK(h[0] == 1.0);
    CHECK(h[1] == -2.0);
    CHECK(h[2] == inf);
    CHECK(h[3] == -inf);
    CHECK(h[4] == std::ldexp(1.0, -24));
    CHECK(h[5] == 65504.0);
    CHECK(h[6] == 0.0);
    CHECK(std::signbit(h[6]));
    CHECK(h[7] == 0x1.554p-2); // 0.333251953125
    CHECK(std::isnan(h[8]));

    CHECK(f.to_vector<float>(f.at("b")) ==
          std::vector<float>{1.0f, -3.140625f, std::ldexp(1.0f, -133)});

    const auto e4 = f.to_vector<double>(f.at("e4"));
    CHECK(e4[0] == 1.0);
    CHECK(e4[1] == 448.0);
    CHECK(e4[2] == std::ldexp(1.0, -9));
    CHECK(e4[3] == -1.0);
    CHECK(std::isnan(e4[4]));

    const auto e5 = f.to_vector<double>(f.at("e5"));
    CHECK(e5 == std::vector<double>{1.0, inf, std::ldexp(1.0, -16), -2.0});

    const auto e8 = f.to_vector<float>(f.at("e8"));
    CHECK(e8[0] == 1.0f);
    CHECK(e8[1] == 2.0f);
    CHECK(e8[2] == std::ldexp(1.0f, -127));
    CHECK(std::isnan(e8[3]));

    CHECK_THROWS_WITH(f.to_vector<bool>(f.at("e4")),
                      Contains("tensor 'e4'") && Contains("cannot convert dtype F8_E4M3"));
}

TEST_CASE("safetensors: checked conversions", "[safetensors]") {
    std::vector<std::byte> data;
    put<double>(data, 0, 1e300);
    put<double>(data, 8, 0.1);
    put<std::int64_t>(data, 16, (std::int64_t{1} << 53) + 1);
    put<std::int64_t>(data, 24, std::int64_t{1} << 60);
    put<std::int64_t>(data, 32, 5);
    put<std::uint8_t>(data, 40, 2);
    put<std::int32_t>(data, 41, (1 << 24) + 1);
    const auto f = parse(R"({"big":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},)"
                         R"("tenth":{"dtype":"F64","shape":[],"data_offsets":[8,16]},)"
                         R"("odd":{"dtype":"I64","shape":[],"data_offsets":[16,24]},)"
                         R"("pow":{"dtype":"I64","shape":[],"data_offsets":[24,32]},)"
                         R"("five":{"dtype":"I64","shape":[],"data_offsets":[32,40]},)"
                         R"("flag":{"dtype":"BOOL","shape":[],"data_offsets":[40,41]},)"
                         R"("i32":{"dtype":"I32","shape":[],"data_offsets":[41,45]}})",
                         data);
    CHECK(f.to_vector<double>(f.at("big")) == std::vector<double>{1e300});
    CHECK_THROWS_WITH(f.to_vector<float>(f.at("big")),
                      Contains("buf.safetensors") && Contains("tensor 'big'") &&
                          Contains("element 0") && Contains("outside the range of float"));
    CHECK(f.to_vector<float>(f.at("tenth")) == std::vector<float>{0.1f});
    CHECK_THROWS_WITH(f.to_vector<double>(f.at("odd")),
                      Contains("tensor 'odd'") && Contains("not exactly representable"));
    CHECK(f.to_vector<double>(f.at("pow")) == std::vector<double>{std::ldexp(1.0, 60)});
    CHECK(f.to_vector<float>(f.at("pow")) == std::vector<float>{std::ldexp(1.0f, 60)});
    CHECK_THROWS_WITH(f.to_vector<bool>(f.at("five")),
                      Contains("tensor 'five'") && Contains("neither 0 nor 1"));
    CHECK_THROWS_WITH(f.to_vector<double>(f.at("flag")),
                      Contains("tensor 'flag'") && Contains("not a valid boolean"));
    CHECK_THROWS_WITH(f.to_vector<float>(f.at("i32")),
                      Contains("tensor 'i32'") && Contains("not exactly representable"));
    CHECK(f.to_vector<double>(f.at("i32")) == std::vector<double>{16777217.0});
    CHECK_THROWS_WITH(f.to_vector<std::int64_t>(f.at("tenth")),
                      Contains("tensor 'tenth'") && Contains("cannot convert dtype F64 to int64"));

    std::vector<double> wrong(2);
    CHECK_THROWS_WITH(f.copy_to(f.at("tenth"), std::span<double>(wrong)),
                      Contains("tensor 'tenth'") && Contains("output buffer holds 2 elements"));

    // A tensor_info that does not describe this file's bytes is refused, not read out of bounds.
    inn::io::tensor_info forged{"forged", dtype::f64, {std::int64_t{1} << 61}, 0, 0};
    CHECK_THROWS_WITH(f.to_vector<double>(forged),
                      Contains("tensor 'forged'") && Contains("does not match"));
    forged.shape = {1};
    forged.end = 1000;
    CHECK_THROWS_WITH(f.raw(forged), Contains("tensor 'forged'") && Contains("outside"));
}

TEST_CASE("safetensors: round trip of every writable type, rank 0 and empty tensors",
          "[safetensors]") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const std::vector<double> d{0.1,
                                -0.0,
                                std::numeric_limits<double>::denorm_min(),
                                std::numeric_limits<double>::max(),
                                -std::numeric_limits<double>::infinity(),
                                1.0 / 3.0};
    const std::vector<float> fl{1.5f, -2.25f, std::numeric_limits<float>::denorm_min()};
    const std::vector<std::int64_t> l{std::numeric_limits<std::int64_t>::min(), -1, 0,
                                      std::numeric_limits<std::int64_t>::max()};
    const std::vector<std::int32_t> i32{-7, 2147483647};
    const std::vector<bool> b{true, false, false, true, true};
    const std::vector<std::uint8_t> u8{0, 255, 7};
    const std::vector<std::int16_t> i16{-32768, 32767};
    const std::vector<std::uint64_t> u64{12345678901234ull};
    const std::vector<double> scalar{nan};
    const std::vector<float> empty{};

    std::vector<tensor_to_write> ts;
    ts.push_back(inn::io::make_tensor("u8", {3}, u8)); // 1-byte type first in the caller's order
    ts.push_back(inn::io::make_tensor("d", {2, 3}, d));
    ts.push_back(inn::io::make_tensor("fl", {3, 1}, fl));
    ts.push_back(inn::io::make_tensor("l", {4}, l));
    ts.push_back(inn::io::make_tensor("i32", {1, 2}, i32));
    ts.push_back(inn::io::make_tensor("b", {5}, b));
    ts.push_back(inn::io::make_tensor("i16", {2}, i16));
    ts.push_back(inn::io::make_tensor("u64", {}, u64));
    ts.push_back(inn::io::make_tensor("scalar", {}, scalar));
    ts.push_back(inn::io::make_tensor("empty", {0, 4}, empty));
    ts.push_back(inn::io::make_tensor<double>("span", {2}, std::span<const double>(d.data(), 2)));
    CHECK(ts[0].dtype == dtype::u8);
    CHECK(ts[1].dtype == dtype::f64);
    CHECK(ts[2].dtype == dtype::f32);
    CHECK(ts[3].dtype == dtype::i64);
    CHECK(ts[4].dtype == dtype::i32);
    CHECK(ts[5].dtype == dtype::boolean);
    CHECK(ts[7].dtype == dtype::u64);

    const std::map<std::string, std::string> meta{{"architecture", "{\"x\": [1, 2]}"},
                                                  {"note", "ünïcödé \"quoted\"\n"}};
    const auto bytes = inn::io::serialize_safetensors(ts, meta);
    const auto f = safetensors_file::parse(bytes, "roundtrip");

    CHECK(f.metadata().size() == 2);
    CHECK(f.metadata().at("architecture") == meta.at("architecture"));
    CHECK(f.metadata().at("note") == meta.at("note"));
    REQUIRE(f.tensors().size() == ts.size());
    for (std::size_t i = 0; i < ts.size(); ++i) {
        INFO(ts[i].name);
        const auto& t = f.tensors()[i]; // header keeps the caller's order
        CHECK(t.name == ts[i].name);
        CHECK(t.dtype == ts[i].dtype);
        CHECK(t.shape == ts[i].shape);
        const auto r = f.raw(t);
        CHECK(std::vector<std::byte>(r.begin(), r.end()) == ts[i].data);
    }
    const auto d_back = f.to_vector<double>(f.at("d"));
    REQUIRE(d_back.size() == d.size());
    for (std::size_t i = 0; i < d.size(); ++i) {
        CHECK(std::bit_cast<std::uint64_t>(d_back[i]) == std::bit_cast<std::uint64_t>(d[i]));
    }
    CHECK(f.to_vector<float>(f.at("fl")) == fl);
    CHECK(f.to_vector<std::int64_t>(f.at("l")) == l);
    CHECK(f.to_vector<std::int64_t>(f.at("i32")) == std::vector<std::int64_t>{-7, 2147483647});
    CHECK(f.to_vector<bool>(f.at("b")) == b);
    CHECK(f.to_vector<std::int64_t>(f.at("u8")) == std::vector<std::int64_t>{0, 255, 7});
    CHECK(f.to_vector<std::int64_t>(f.at("i16")) == std::vector<std::int64_t>{-32768, 32767});
    CHECK(f.to_vector<std::int64_t>(f.at("u64")) == std::vector<std::int64_t>{12345678901234});
    CHECK(std::isnan(f.to_vector<double>(f.at("scalar")).at(0)));
    CHECK(f.at("scalar").numel() == 1);
    CHECK(f.at("empty").numel() == 0);
    CHECK(f.to_vector<float>(f.at("empty")).empty());
    CHECK(f.to_vector<double>(f.at("span")) == std::vector<double>{d[0], d[1]});

    // Re-serialising what was read reproduces the file byte for byte.
    std::vector<tensor_to_write> again;
    for (const auto& t : f.tensors()) {
        const auto r = f.raw(t);
        again.push_back({t.name, t.dtype, t.shape, {r.begin(), r.end()}});
    }
    const std::map<std::string, std::string> meta_again(f.metadata().begin(), f.metadata().end());
    CHECK(inn::io::serialize_safetensors(again, meta_again) == bytes);
}

TEST_CASE("safetensors: writer layout (padding, alignment, no gaps)", "[safetensors]") {
    const std::vector<std::uint8_t> one{1};
    const std::vector<float> three{1, 2, 3};
    const std::vector<double> two{4, 5};
    const std::vector<std::int16_t> s{9};
    std::vector<tensor_to_write> ts;
    ts.push_back(inn::io::make_tensor("a_byte", {1}, one));
    ts.push_back(inn::io::make_tensor("b_float", {3}, three));
    ts.push_back(inn::io::make_tensor("c_double", {2}, two));
    ts.push_back(inn::io::make_tensor("d_short", {}, s));
    const auto bytes = inn::io::serialize_safetensors(ts);

    std::uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    CHECK(n % 8 == 0);
    const std::string header(reinterpret_cast<const char*>(bytes.data() + 8), n);
    CHECK(header.front() == '{');
    CHECK(header.find("__metadata__") == std::string::npos); // empty metadata is omitted
    const auto last = header.find_last_not_of(' ');
    CHECK(header[last] == '}');
    CHECK(n - last - 1 < 8);

    const auto f = safetensors_file::parse(bytes, "layout");
    std::size_t total = 0;
    for (const auto& t : f.tensors()) {
        INFO(t.name);
        CHECK((8 + n + t.begin) % inn::io::element_size(t.dtype) == 0);
        total += t.end - t.begin;
    }
    CHECK(f.at("c_double").begin == 0); // widest first
    CHECK(f.at("b_float").begin == 16);
    CHECK(f.at("d_short").begin == 28);
    CHECK(f.at("a_byte").begin == 30);
    CHECK(8 + n + total == bytes.size()); // no gaps, no trailing bytes

    // An empty file is valid too.
    const auto empty = inn::io::serialize_safetensors({});
    CHECK(empty.size() == 16);
    CHECK(safetensors_file::parse(empty, "empty").tensors().empty());
}

TEST_CASE("safetensors: write_safetensors and read through the file system", "[safetensors]") {
    const auto dir = fs::temp_directory_path() / "inn_test_safetensors_format";
    fs::create_directories(dir);
    const auto path = dir / "written.safetensors";
    const std::vector<double> v{1, 2, 3, 4, 5, 6};
    const std::vector<tensor_to_write> ts{inn::io::make_tensor("w", {2, 3}, v)};
    inn::io::write_safetensors(path, ts, {{"architecture", "{}"}});
    const auto f = safetensors_file::read(path);
    CHECK(f.source() == path.string());
    CHECK(f.metadata().at("architecture") == "{}");
    CHECK(f.to_vector<double>(f.at("w")) == v);
    fs::remove(path);

    CHECK_THROWS_WITH(safetensors_file::read(dir / "missing.safetensors"),
                      Contains("missing.safetensors") && Contains("does not exist"));
    CHECK_THROWS_WITH(safetensors_file::read(dir),
                      Contains("inn_test_safetensors_format") && Contains("not a regular file"));
    CHECK_THROWS_WITH(inn::io::write_safetensors(dir / "no" / "such" / "dir.safetensors", ts),
                      Contains("dir.safetensors") && Contains("cannot open file for writing"));
    fs::remove_all(dir);
}

#if defined(__unix__)
// A full disk, as the file-size limit makes it: the write fails part way.
TEST_CASE("safetensors: a failed write leaves the file it would replace as it was",
          "[safetensors]") {
    const auto dir = fs::temp_directory_path() / "inn_test_safetensors_atomic";
    fs::remove_all(dir);
    fs::create_directories(dir);
    const auto path = dir / "checkpoint.safetensors";
    const std::vector<double> old_values{1, 2, 3};
    const std::vector<tensor_to_write> old_ts{inn::io::make_tensor("w", {3}, old_values)};
    inn::io::write_safetensors(path, old_ts);
    const auto old_size = fs::file_size(path);
    const std::vector<double> big(4096, 0.5);
    const std::vector<tensor_to_write> big_ts{inn::io::make_tensor("w", {4096}, big)};

    rlimit saved{};
    REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    rlimit small = saved;
    small.rlim_cur = 1024;
    auto* const previous = std::signal(SIGXFSZ, SIG_IGN);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
    std::string error;
    try {
        inn::io::write_safetensors(path, big_ts);
    } catch (const inn::io::io_error& e) {
        error = e.what();
    }
    setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, previous);
    CHECK_THAT(error, Contains("checkpoint.safetensors") && Contains("write failed") &&
                          Contains("unchanged"));
    CHECK(fs::file_size(path) == old_size);
    const auto f = safetensors_file::read(path);
    CHECK(f.to_vector<double>(f.at("w")) == old_values);
    CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);

    // Through a symbolic link the link stays and its target is replaced.
    const auto link = dir / "latest.safetensors";
    fs::create_symlink(path, link);
    inn::io::write_safetensors(link, big_ts);
    CHECK(fs::is_symlink(link));
    const auto g = safetensors_file::read(path);
    CHECK(g.to_vector<double>(g.at("w")) == big);

    // What is not a regular file is written in place, never replaced (a device such as
    // /dev/null would be, by the rename): a directory cannot be opened, and stays.
    CHECK_THROWS_WITH(inn::io::write_safetensors(dir, big_ts), Contains("cannot open or write"));
    CHECK(fs::is_directory(dir));
    fs::remove_all(dir);
}
#endif

TEST_CASE("safetensors: writer rejects invalid tensors", "[safetensors]") {
    const std::vector<double> v{1, 2, 3};
    CHECK_THROWS_WITH(inn::io::make_tensor("m", {2, 2}, v),
                      Contains("tensor 'm'") && Contains("does not hold the 3 values"));
    CHECK_THROWS_WITH(inn::io::make_tensor("neg", {-1, -3}, v),
                      Contains("tensor 'neg'") && Contains("[-1, -3]"));

    std::vector<tensor_to_write> ts{inn::io::make_tensor("a", {3}, v),
                                    inn::io::make_tensor("a", {3}, v)};
    CHECK_THROWS_WITH(inn::io::serialize_safetensors(ts),
                      Contains("tensor 'a'") && Contains("appears twice"));
    ts[1].name = "__metadata__";
    CHECK_THROWS_WITH(inn::io::serialize_safetensors(ts),
                      Contains("tensor '__metadata__'") && Contains("reserved"));
    ts[1].name = "b";
    ts[1].data.pop_back();
    CHECK_THROWS_WITH(inn::io::serialize_safetensors(ts),
                      Contains("tensor 'b'") && Contains("holds 23 bytes") && Contains("needs"));
    ts[1] = inn::io::make_tensor("b", {3}, v);
    ts[1].shape = {-3};
    CHECK_THROWS_WITH(inn::io::serialize_safetensors(ts),
                      Contains("tensor 'b'") && Contains("invalid shape [-3]"));
    ts[1] = inn::io::make_tensor("bad\xff", {3}, v);
    CHECK_THROWS_WITH(inn::io::serialize_safetensors(ts),
                      Contains("serialize_safetensors") && Contains("not valid UTF-8"));
    ts.pop_back();
    CHECK_THROWS_WITH(inn::io::serialize_safetensors(ts, {{"k", "v\xc3"}}),
                      Contains("serialize_safetensors: __metadata__: the value of 'k'") &&
                          Contains("not valid UTF-8"));
    CHECK_NOTHROW(inn::io::serialize_safetensors(ts, {{"k", "v"}}));
}

TEST_CASE("safetensors: malformed files give io_error naming the source and the key",
          "[safetensors]") {
    const auto throws = [](const std::vector<std::byte>& bytes) {
        return safetensors_file::parse(bytes, "buf.safetensors");
    };

    SECTION("too short for the length field") {
        const auto b = to_bytes("abc");
        CHECK_THROWS_AS(throws(b), inn::io_error);
        CHECK_THROWS_WITH(throws(b), Contains("buf.safetensors") && Contains("header") &&
                                         Contains("3 bytes long, too short"));
        CHECK_THROWS_WITH(throws({}), Contains("header") && Contains("0 bytes long"));
    }
    SECTION("header length beyond the end of the file, including u64 overflow") {
        CHECK_THROWS_WITH(throws(make_file("{}", {}, 3)),
                          Contains("header") && Contains("header length 3 is larger than the 2"));
        CHECK_THROWS_WITH(throws(make_file("{}", {}, std::numeric_limits<std::uint64_t>::max())),
                          Contains("header") && Contains("18446744073709551615"));
        CHECK_THROWS_WITH(throws(make_file("{}", {}, std::uint64_t{1} << 63)),
                          Contains("header") && Contains("larger than"));
    }
    SECTION("header not JSON, not an object, duplicated or too deep") {
        CHECK_THROWS_WITH(throws(make_file("{\"a\":")),
                          Contains("header") && Contains("not valid JSON"));
        CHECK_THROWS_WITH(throws(make_file("")), Contains("header") && Contains("not valid JSON"));
        CHECK_THROWS_WITH(throws(make_file("{} x")), Contains("not valid JSON"));
        CHECK_THROWS_WITH(throws(make_file("{\"\xff\":1}")), Contains("not valid JSON"));
        CHECK_THROWS_WITH(throws(make_file("[1, 2]")),
                          Contains("header") && Contains("must be a JSON object, got array"));
        CHECK_THROWS_WITH(throws(make_file(std::string_view("{}\0", 3))),
                          Contains("header") && Contains("NUL byte at header offset 2"));
        const std::string dup = R"({"a":{"dtype":"F64","shape":[],"data_offsets":[0,8]},)"
                                R"("a":{"dtype":"F64","shape":[],"data_offsets":[0,8]}})";
        CHECK_THROWS_WITH(throws(make_file(dup, std::vector<std::byte>(8))),
                          Contains("header") && Contains("duplicate key \"a\""));
        const std::string dup_field =
            R"({"a":{"dtype":"F64","dtype":"I64","shape":[],"data_offsets":[0,8]}})";
        CHECK_THROWS_WITH(throws(make_file(dup_field, std::vector<std::byte>(8))),
                          Contains("duplicate key \"dtype\""));
        std::string deep = "{\"a\":{\"x\":" + std::string(100, '[') + std::string(100, ']') + "}}";
        CHECK_THROWS_WITH(throws(make_file(deep)), Contains("header") && Contains("nested"));
    }
    SECTION("entries with missing or mistyped fields") {
        struct bad_case {
            std::string header;
            std::string key;
            std::string says;
        };
        const std::vector<bad_case> cases{
            {R"({"t1":[1]})", "t1", "header entry must be a JSON object, got array"},
            {R"({"t2":{"shape":[],"data_offsets":[0,8]}})", "t2", "no \"dtype\" field"},
            {R"({"t3":{"dtype":"F64","data_offsets":[0,8]}})", "t3", "no \"shape\" field"},
            {R"({"t4":{"dtype":"F64","shape":[]}})", "t4", "no \"data_offsets\" field"},
            {R"({"t5":{"dtype":64,"shape":[],"data_offsets":[0,8]}})", "t5",
             "\"dtype\" must be a string, got number"},
            {R"({"t6":{"dtype":"F128","shape":[],"data_offsets":[0,8]}})", "t6",
             "unknown dtype \"F128\""},
            {R"({"t7":{"dtype":"F64","shape":8,"data_offsets":[0,8]}})", "t7",
             "\"shape\" must be an array"},
            {R"({"t8":{"dtype":"F64","shape":[1,-3],"data_offsets":[0,8]}})", "t8",
             "dimension 1 must be a non-negative integer below 2^63, got -3"},
            {R"({"t9":{"dtype":"F64","shape":[2.5],"data_offsets":[0,8]}})", "t9",
             "got non-integer number 2.5"},
            {R"({"t10":{"dtype":"F64","shape":["1"],"data_offsets":[0,8]}})", "t10", "got string"},
            {R"({"t11":{"dtype":"F64","shape":[9223372036854775808],"data_offsets":[0,8]}})", "t11",
             "below 2^63"},
            {R"({"t12":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
             "t12", "overflows 64 bits"},
            {R"({"t13":{"dtype":"F64","shape":[],"data_offsets":[0]}})", "t13",
             "must be a pair [begin, end]"},
            {R"({"t14":{"dtype":"F64","shape":[],"data_offsets":[0,8,16]}})", "t14",
             "got an array of 3 elements"},
            {R"({"t15":{"dtype":"F64","shape":[],"data_offsets":"0-8"}})", "t15",
             "must be a pair [begin, end] of byte offsets, got string"},
            {R"({"t16":{"dtype":"F64","shape":[],"data_offsets":[-8,0]}})", "t16",
             "must hold non-negative integers, got [-8, 0]"},
            {R"({"t17":{"dtype":"F64","shape":[],"data_offsets":[16,8]}})", "t17",
             "[16, 8] are reversed (begin > end)"},
            {R"({"t18":{"dtype":"F64","shape":[2],"data_offsets":[8,24]}})", "t18",
             "end past the data area, which holds 16 bytes"},
            {R"({"t19":{"dtype":"F64","shape":[],"data_offsets":[0,16]}})", "t19",
             "span 16 bytes but dtype F64 with shape [] needs 1 x 8 bytes"},
            {R"({"t20":{"dtype":"F32","shape":[3],"data_offsets":[0,10]}})", "t20",
             "needs 3 x 4 bytes"},
            {R"({"t21":{"dtype":"F64","shape":[],"data_offsets":[0,18446744073709551616]}})", "t21",
             "non-integer number"},
            {R"({"t22":{"dtype":"F64","shape":[],"data_offsets":null}})", "t22", "got null"},
        };
        for (const auto& c : cases) {
            INFO(c.header);
            CHECK_THROWS_WITH(throws(make_file(c.header, std::vector<std::byte>(16))),
                              Contains("buf.safetensors: tensor '" + c.key + "': ") &&
                                  Contains(c.says));
        }
    }
    SECTION("bad metadata") {
        CHECK_THROWS_WITH(throws(make_file(R"({"__metadata__":["a"]})")),
                          Contains("header") &&
                              Contains("__metadata__ must be an object of strings, got array"));
        CHECK_THROWS_WITH(throws(make_file(R"({"__metadata__":{"ok":"x","seed":3}})")),
                          Contains("header") &&
                              Contains("__metadata__ entry 'seed' must be a string, got number"));
    }
    SECTION("overlapping tensors") {
        const std::string h = R"({"first":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},)"
                              R"("second":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})";
        CHECK_THROWS_WITH(throws(make_file(h, std::vector<std::byte>(20))),
                          Contains("tensor 'second'") && Contains("overlap") &&
                              Contains("tensor 'first' [0, 16]"));
    }
}

TEST_CASE("safetensors: accepted irregularities (gaps, trailing bytes, padding, extras)",
          "[safetensors]") {
    std::vector<std::byte> data(40);
    put<double>(data, 5, 2.5);
    put<double>(data, 20, -4.0);
    // Gap at [0, 5) and [13, 20), trailing bytes after 28, zero-sized tensors sharing offsets,
    // an unknown field, whitespace and padding, metadata last.
    const std::string h = "  {\"x\" : {\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[5,13],"
                          "\"extra\":{\"nested\":[1,2]}},\n"
                          "\"y\":{\"data_offsets\":[20,28],\"shape\":[1,1],\"dtype\":\"F64\"},"
                          "\"e1\":{\"dtype\":\"I32\",\"shape\":[0],\"data_offsets\":[6,6]},"
                          "\"e2\":{\"dtype\":\"I32\",\"shape\":[3,0,2],\"data_offsets\":[6,6]},"
                          "\"__metadata__\":{}}       ";
    const auto f = parse(h, data);
    REQUIRE(f.tensors().size() == 4);
    CHECK(f.metadata().empty());
    CHECK(f.to_vector<double>(f.at("x")) == std::vector<double>{2.5});
    CHECK(f.to_vector<double>(f.at("y")) == std::vector<double>{-4.0});
    CHECK(f.at("e2").numel() == 0);
    CHECK(f.to_vector<std::int64_t>(f.at("e2")).empty());

    CHECK(parse("{}").tensors().empty());
}

TEST_CASE("safetensors: truncated and corrupted fixture bytes never escape io_error",
          "[safetensors]") {
    std::vector<std::byte> original;
    {
        const auto path = fixture_dir() / "householder_perm_5.safetensors";
        std::ifstream in(path, std::ios::binary);
        REQUIRE(in);
        original.resize(static_cast<std::size_t>(fs::file_size(path)));
        in.read(reinterpret_cast<char*>(original.data()),
                static_cast<std::streamsize>(original.size()));
    }
    for (std::size_t len = 0; len < original.size(); len += 7) {
        const std::vector<std::byte> cut(original.begin(),
                                         original.begin() + static_cast<std::ptrdiff_t>(len));
        CHECK_NOTHROW(parse_and_convert(cut));
    }
    const std::uint8_t replacements[] = {0x00, 0x22, 0x2d, 0x30, 0x39, 0x5b, 0x7b, 0xff};
    for (std::size_t pos = 0; pos < 600 && pos < original.size(); ++pos) {
        for (const std::uint8_t r : replacements) {
            auto mutant = original;
            mutant[pos] = std::byte{r};
            CHECK_NOTHROW(parse_and_convert(std::move(mutant)));
        }
    }
}

}  // namespace
