#pragma once

// Low-level reader and writer for the safetensors format
// (https://github.com/huggingface/safetensors), independent of any network type.
//
// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON header (possibly padded with
// spaces), then the data area. The header maps tensor names to
// {"dtype", "shape", "data_offsets": [begin, end)} (offsets relative to the data area) and may
// hold "__metadata__": {string: string}. Tensor data is little-endian, row-major and not
// necessarily aligned, so every load goes through memcpy.
//
// Reader policy (what parse() accepts):
//  * every entry is checked: field types, known dtype, non-negative dims whose product fits in
//    64 bits, ordered offsets inside the data area, byte size == numel * element size;
//  * duplicate keys anywhere in the header are rejected (JSON would silently keep one of them);
//  * overlapping tensors are rejected (two names aliasing the same bytes is a corrupt or
//    hostile file); zero-sized tensors never overlap anything;
//  * gaps between tensors and trailing bytes after the last tensor are accepted, unlike the
//    reference Rust implementation, because they are harmless to a reader;
//  * unknown fields inside an entry are ignored, for forward compatibility;
//  * JSON nesting deeper than 64 levels is rejected (the format needs 3).
//  * a raw NUL byte in the header is rejected (nlohmann's lexer would stop reading there).
//
// Writer policy: header entries keep the caller's order; "__metadata__" comes first and is
// omitted when empty; the header is padded with spaces to a multiple of 8. The data area is laid
// out without gaps (the reference readers reject gaps), widest element type first, so that
// every tensor starts at a file offset that is a multiple of its own element size (8-byte types
// at multiples of 8).

#include <inn/io/error.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace inn::io {

// All element types the safetensors specification defines with a whole number of bytes.
// f8_e4m3 is torch's float8_e4m3fn (no infinities), f8_e8m0 is the exponent-only scale type.
enum class dtype {
    boolean,
    u8,
    i8,
    f8_e5m2,
    f8_e4m3,
    f8_e8m0,
    i16,
    u16,
    f16,
    bf16,
    i32,
    u32,
    f32,
    f64,
    i64,
    u64,
};

namespace detail {

struct dtype_entry {
    dtype type;
    std::string_view name;
    std::size_t size;
};

inline constexpr std::array<dtype_entry, 16> dtype_table{{
    {dtype::boolean, "BOOL", 1},
    {dtype::u8, "U8", 1},
    {dtype::i8, "I8", 1},
    {dtype::f8_e5m2, "F8_E5M2", 1},
    {dtype::f8_e4m3, "F8_E4M3", 1},
    {dtype::f8_e8m0, "F8_E8M0", 1},
    {dtype::i16, "I16", 2},
    {dtype::u16, "U16", 2},
    {dtype::f16, "F16", 2},
    {dtype::bf16, "BF16", 2},
    {dtype::i32, "I32", 4},
    {dtype::u32, "U32", 4},
    {dtype::f32, "F32", 4},
    {dtype::f64, "F64", 8},
    {dtype::i64, "I64", 8},
    {dtype::u64, "U64", 8},
}};

inline const dtype_entry& entry_of(dtype t) {
    for (const auto& e : dtype_table) {
        if (e.type == t) {
            return e;
        }
    }
    // Only reachable with an enum value cast from an out-of-range integer.
    throw io_error("safetensors",
                   "invalid inn::io::dtype value " + std::to_string(static_cast<int>(t)));
}

} // namespace detail

// "F64", "BOOL", ... exactly as spelled in safetensors headers.
inline std::string_view to_string(dtype t) { return detail::entry_of(t).name; }

// Bytes per element.
inline std::size_t element_size(dtype t) { return detail::entry_of(t).size; }

// Inverse of to_string; nullopt for names this reader does not know.
inline std::optional<dtype> dtype_from_string(std::string_view name) {
    for (const auto& e : detail::dtype_table) {
        if (e.name == name) {
            return e.type;
        }
    }
    return std::nullopt;
}

inline bool is_floating(dtype t) {
    switch (t) {
    case dtype::f8_e5m2:
    case dtype::f8_e4m3:
    case dtype::f8_e8m0:
    case dtype::f16:
    case dtype::bf16:
    case dtype::f32:
    case dtype::f64:
        return true;
    default:
        return false;
    }
}

namespace detail {

// Product of the dims, or nullopt if a dim is negative or the product of the non-zero dims does
// not fit in int64 (so that strides computed from any prefix of the shape cannot overflow).
inline std::optional<std::int64_t> checked_numel(std::span<const std::int64_t> shape) {
    std::int64_t product = 1;
    bool has_zero = false;
    for (const std::int64_t d : shape) {
        if (d < 0) {
            return std::nullopt;
        }
        if (d == 0) {
            has_zero = true;
            continue;
        }
        if (product > std::numeric_limits<std::int64_t>::max() / d) {
            return std::nullopt;
        }
        product *= d;
    }
    return has_zero ? 0 : product;
}

inline std::string shape_string(std::span<const std::int64_t> shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i != 0) {
            s += ", ";
        }
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

inline std::string offsets_string(std::uint64_t begin, std::uint64_t end) {
    return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

inline std::string number_string(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

template <std::unsigned_integral U> constexpr U byteswap(U v) noexcept {
    U r = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i) {
        r = static_cast<U>((r << 8) | (v & 0xffu));
        v = static_cast<U>(v >> 8);
    }
    return r;
}

template <std::unsigned_integral U> U load_le(const std::byte* p) noexcept {
    U v;
    std::memcpy(&v, p, sizeof(U));
    if constexpr (std::endian::native == std::endian::big) {
        v = byteswap(v);
    }
    return v;
}

template <std::unsigned_integral U> void store_le(std::byte* p, U v) noexcept {
    if constexpr (std::endian::native == std::endian::big) {
        v = byteswap(v);
    }
    std::memcpy(p, &v, sizeof(U));
}

inline float half_to_float(std::uint16_t h) noexcept {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exp = (h >> 10) & 0x1fu;
    const std::uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        // zero or subnormal: mant * 2^-24, exact in float
        const float mag = std::ldexp(static_cast<float>(mant), -24);
        return sign != 0 ? -mag : mag;
    }
    if (exp == 0x1f) {
        return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
    }
    return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

inline float bf16_to_float(std::uint16_t b) noexcept {
    return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

// float8 e4m3fn: bias 7, no infinities, S.1111.111 is NaN.
inline float f8_e4m3_to_float(std::uint8_t b) noexcept {
    const bool negative = (b & 0x80u) != 0;
    const int exp = (b >> 3) & 0xf;
    const int mant = b & 0x7;
    float mag;
    if (exp == 0xf && mant == 0x7) {
        mag = std::numeric_limits<float>::quiet_NaN();
    } else if (exp == 0) {
        mag = std::ldexp(static_cast<float>(mant), -9);
    } else {
        mag = std::ldexp(static_cast<float>(8 + mant), exp - 10);
    }
    return negative ? -mag : mag;
}

// float8 e5m2 is the upper byte of an IEEE half.
inline float f8_e5m2_to_float(std::uint8_t b) noexcept {
    return half_to_float(static_cast<std::uint16_t>(b << 8));
}

// float8 e8m0: unsigned power of two 2^(b - 127); 0xff is NaN.
inline float f8_e8m0_to_float(std::uint8_t b) noexcept {
    if (b == 0xff) {
        return std::numeric_limits<float>::quiet_NaN();
    }
    return std::ldexp(1.0f, static_cast<int>(b) - 127);
}

// Whether an integer of magnitude `mag` survives a round trip through a binary floating type
// with `digits` mantissa bits.
inline bool exact_in_mantissa(std::uint64_t mag, int digits) noexcept {
    if (mag == 0) {
        return true;
    }
    mag >>= std::countr_zero(mag);
    return mag < (std::uint64_t{1} << digits);
}

template <class T>
concept element_value = std::same_as<T, float> || std::same_as<T, double> ||
    std::same_as<T, std::int64_t> || std::same_as<T, bool>;

template <class T>
concept writable_value = std::same_as<T, float> || std::same_as<T, double> ||
    std::same_as<T, std::int64_t> || std::same_as<T, std::int32_t> ||
    std::same_as<T, std::int16_t> || std::same_as<T, std::int8_t> ||
    std::same_as<T, std::uint8_t> || std::same_as<T, std::uint16_t> ||
    std::same_as<T, std::uint32_t> || std::same_as<T, std::uint64_t> || std::same_as<T, bool>;

template <element_value T> constexpr std::string_view value_type_name() {
    if constexpr (std::same_as<T, float>) {
        return "float";
    } else if constexpr (std::same_as<T, double>) {
        return "double";
    } else if constexpr (std::same_as<T, std::int64_t>) {
        return "int64";
    } else {
        return "bool";
    }
}

// Floating data never converts to integers or bool: that would silently drop information.
template <element_value T> bool convertible(dtype t) {
    if constexpr (std::same_as<T, float> || std::same_as<T, double>) {
        return true;
    } else {
        return !is_floating(t);
    }
}

// Builds a JSON DOM from nlohmann's SAX events, rejecting duplicate keys (nlohmann's own DOM
// parser keeps the last one silently) and excessive nesting, and recording the order of the
// top-level keys (nlohmann::json objects are sorted; ordered_json is quadratic in the key count).
class header_builder {
  public:
    using json = nlohmann::json;
    static constexpr std::size_t max_depth = 64;

    json root;
    std::vector<std::string> top_level_keys;
    std::string error; // set when a callback stops the parse

    bool null() { return put(nullptr); }
    bool boolean(bool v) { return put(v); }
    bool number_integer(json::number_integer_t v) { return put(v); }
    bool number_unsigned(json::number_unsigned_t v) { return put(v); }
    bool number_float(json::number_float_t v, const json::string_t&) { return put(v); }
    bool string(json::string_t& v) { return put(std::move(v)); }
    bool binary(json::binary_t&) {
        error = "binary values are not JSON";
        return false;
    }
    bool start_object(std::size_t) { return open(json::object()); }
    bool start_array(std::size_t) { return open(json::array()); }
    bool end_object() { return close(); }
    bool end_array() { return close(); }

    bool key(json::string_t& k) {
        auto& obj = stack_.back()->get_ref<json::object_t&>();
        auto [it, inserted] = obj.emplace(k, nullptr);
        if (!inserted) {
            error = "duplicate key \"" + k + "\"";
            return false;
        }
        if (stack_.size() == 1) {
            top_level_keys.push_back(k);
        }
        slot_ = &it->second;
        return true;
    }

    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) {
        error = ex.what();
        return false;
    }

  private:
    std::vector<json*> stack_;
    json* slot_ = nullptr; // where the value after the last key goes

    template <class V> json* place(V&& v) {
        if (stack_.empty()) {
            root = json(std::forward<V>(v));
            return &root;
        }
        json& top = *stack_.back();
        if (top.is_array()) {
            top.push_back(json(std::forward<V>(v)));
            return &top.back();
        }
        *slot_ = json(std::forward<V>(v));
        return slot_;
    }

    template <class V> bool put(V&& v) {
        place(std::forward<V>(v));
        return true;
    }

    bool open(json&& container) {
        if (stack_.size() >= max_depth) {
            error = "JSON nested deeper than " + std::to_string(max_depth) + " levels";
            return false;
        }
        stack_.push_back(place(std::move(container)));
        return true;
    }

    bool close() {
        stack_.pop_back();
        return true;
    }
};

} // namespace detail

struct tensor_info {
    std::string name;
    io::dtype dtype = io::dtype::f64;
    std::vector<std::int64_t> shape; // [] is a rank-0 scalar with one element
    std::size_t begin = 0, end = 0;  // byte range [begin, end) relative to the data area

    // Product of the dims (1 for rank 0); -1 if the shape is invalid (negative dim or overflow),
    // which cannot happen for entries produced by safetensors_file::parse.
    std::int64_t numel() const { return detail::checked_numel(shape).value_or(-1); }
};

class safetensors_file {
  public:
    using metadata_map = std::map<std::string, std::string, std::less<>>;

    static safetensors_file read(const std::filesystem::path& path) {
        const std::string source = path.string();
        std::error_code ec;
        const auto status = std::filesystem::status(path, ec);
        if (ec || !std::filesystem::exists(status)) {
            throw io_error(source, "cannot open file: it does not exist or is not accessible");
        }
        if (!std::filesystem::is_regular_file(status)) {
            throw io_error(source, "cannot open file: not a regular file");
        }
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            throw io_error(source, "cannot open file for reading");
        }
        in.seekg(0, std::ios::end);
        const std::streamoff size = in.tellg();
        in.seekg(0, std::ios::beg);
        if (!in || size < 0) {
            throw io_error(source, "cannot determine the file size");
        }
        std::vector<std::byte> bytes(static_cast<std::size_t>(size));
        in.read(reinterpret_cast<char*>(bytes.data()), size);
        if (in.gcount() != size) {
            throw io_error(source, "read error: got " + std::to_string(in.gcount()) + " of " +
                                       std::to_string(size) + " bytes");
        }
        return parse(std::move(bytes), source);
    }

    static safetensors_file parse(std::vector<std::byte> bytes, std::string source) {
        safetensors_file f;
        f.bytes_ = std::move(bytes);
        f.source_ = std::move(source);
        f.parse_header();
        return f;
    }

    const std::vector<tensor_info>& tensors() const { return tensors_; }

    const tensor_info* find(std::string_view name) const {
        const auto it = index_.find(name);
        return it == index_.end() ? nullptr : &tensors_[it->second];
    }

    const tensor_info& at(std::string_view name) const {
        if (const tensor_info* t = find(name)) {
            return *t;
        }
        throw io_error("missing tensor '" + std::string(name) + "' in " + source_);
    }

    const metadata_map& metadata() const { return metadata_; }

    const std::string& source() const { return source_; }

    // The tensor's bytes, exactly as stored (little-endian, possibly unaligned).
    std::span<const std::byte> raw(const tensor_info& t) const {
        if (t.begin > t.end || t.end > data_size_) {
            throw io_error(source_, t.name,
                           "byte range " + detail::offsets_string(t.begin, t.end) +
                               " lies outside the " + std::to_string(data_size_) +
                               "-byte data area");
        }
        return {bytes_.data() + data_start_ + t.begin, t.end - t.begin};
    }

    // Converts the elements to T, checking every value that might not survive:
    //  * T = double/float: from every dtype. Integers must be exactly representable; F64 values
    //    beyond the float range are rejected when T = float (finer precision is rounded).
    //  * T = int64: from integer types and BOOL (U64 values above INT64_MAX are rejected).
    //  * T = bool: from BOOL and integer types holding only 0 and 1.
    //  BOOL bytes other than 0 and 1 are rejected for every T.
    template <detail::element_value T> void copy_to(const tensor_info& t, std::span<T> out) const {
        const std::size_t n = checked_count(t);
        if (n != out.size()) {
            throw io_error(source_, t.name,
                           "output buffer holds " + std::to_string(out.size()) +
                               " elements but the tensor has shape " +
                               detail::shape_string(t.shape) + " (" + std::to_string(n) +
                               " elements)");
        }
        convert_into(t, n, out.data());
    }

    template <detail::element_value T> std::vector<T> to_vector(const tensor_info& t) const {
        const std::size_t n = checked_count(t);
        if constexpr (std::same_as<T, bool>) {
            // std::vector<bool> has no contiguous storage to convert into.
            auto tmp = std::make_unique<bool[]>(n);
            convert_into(t, n, tmp.get());
            return std::vector<bool>(tmp.get(), tmp.get() + n);
        } else {
            std::vector<T> out(n);
            convert_into(t, n, out.data());
            return out;
        }
    }

  private:
    using json = nlohmann::json;

    std::vector<std::byte> bytes_;
    std::string source_;
    std::size_t data_start_ = 0;
    std::size_t data_size_ = 0;
    std::vector<tensor_info> tensors_;
    std::map<std::string, std::size_t, std::less<>> index_;
    metadata_map metadata_;

    [[noreturn]] void header_error(const std::string& problem) const {
        throw io_error(source_, "header: " + problem);
    }

    [[noreturn]] void entry_error(const std::string& key, const std::string& problem) const {
        throw io_error(source_, key, problem);
    }

    void parse_header() {
        if (bytes_.size() < 8) {
            header_error("file is " + std::to_string(bytes_.size()) +
                         " bytes long, too short for the 8-byte header length");
        }
        const std::uint64_t n = detail::load_le<std::uint64_t>(bytes_.data());
        const std::uint64_t available = bytes_.size() - 8;
        if (n > available) {
            header_error("header length " + std::to_string(n) + " is larger than the " +
                         std::to_string(available) + " bytes that follow the length field");
        }
        data_start_ = 8 + static_cast<std::size_t>(n);
        data_size_ = bytes_.size() - data_start_;

        const char* text = reinterpret_cast<const char*>(bytes_.data() + 8);
        // nlohmann's lexer takes a NUL byte for the end of input and would ignore what follows;
        // raw NUL is never valid JSON, so refuse it here.
        if (const void* nul = std::memchr(text, 0, static_cast<std::size_t>(n))) {
            header_error("not valid JSON: NUL byte at header offset " +
                         std::to_string(static_cast<const char*>(nul) - text));
        }
        detail::header_builder builder;
        bool ok = false;
        try {
            ok = json::sax_parse(text, text + n, &builder, nlohmann::json::input_format_t::json,
                                 true, false);
        } catch (const nlohmann::json::exception& e) {
            header_error(std::string("not valid JSON: ") + e.what());
        }
        if (!ok) {
            header_error("not valid JSON: " + builder.error);
        }
        if (!builder.root.is_object()) {
            header_error(std::string("must be a JSON object, got ") + builder.root.type_name());
        }

        for (const std::string& key : builder.top_level_keys) {
            const json& entry = builder.root.find(key).value();
            if (key == "__metadata__") {
                parse_metadata(entry);
            } else {
                tensors_.push_back(parse_entry(key, entry));
            }
        }
        for (std::size_t i = 0; i < tensors_.size(); ++i) {
            index_.emplace(tensors_[i].name, i);
        }
        check_overlaps();
    }

    void parse_metadata(const json& meta) {
        if (!meta.is_object()) {
            header_error(std::string("__metadata__ must be an object of strings, got ") +
                         meta.type_name());
        }
        for (const auto& [k, v] : meta.items()) {
            if (!v.is_string()) {
                header_error("__metadata__ entry '" + k + "' must be a string, got " +
                             v.type_name());
            }
            metadata_.emplace(k, v.get<std::string>());
        }
    }

    // A non-negative JSON integer, or nullopt.
    static std::optional<std::uint64_t> non_negative_integer(const json& v) {
        if (v.is_number_unsigned()) {
            return v.get<std::uint64_t>();
        }
        return std::nullopt;
    }

    static std::string describe(const json& v) {
        if (v.is_number_integer()) {
            return v.dump();
        }
        if (v.is_number_float()) {
            return "non-integer number " + v.dump();
        }
        return v.type_name();
    }

    const json& field(const std::string& key, const json& entry, const char* name) const {
        const auto it = entry.find(name);
        if (it == entry.end()) {
            entry_error(key, std::string("header entry has no \"") + name + "\" field");
        }
        return *it;
    }

    tensor_info parse_entry(const std::string& key, const json& entry) const {
        if (!entry.is_object()) {
            entry_error(key, std::string("header entry must be a JSON object, got ") +
                                 entry.type_name());
        }
        tensor_info t;
        t.name = key;

        const json& jd = field(key, entry, "dtype");
        if (!jd.is_string()) {
            entry_error(key, std::string("\"dtype\" must be a string, got ") + jd.type_name());
        }
        const auto& dname = jd.get_ref<const std::string&>();
        const auto dt = dtype_from_string(dname);
        if (!dt) {
            std::string known;
            for (const auto& e : detail::dtype_table) {
                known += known.empty() ? "" : ", ";
                known += e.name;
            }
            entry_error(key, "unknown dtype \"" + dname + "\" (known: " + known + ")");
        }
        t.dtype = *dt;

        const json& js = field(key, entry, "shape");
        if (!js.is_array()) {
            entry_error(key, std::string("\"shape\" must be an array of non-negative "
                                         "integers, got ") +
                                 js.type_name());
        }
        t.shape.reserve(js.size());
        for (std::size_t i = 0; i < js.size(); ++i) {
            const auto d = non_negative_integer(js[i]);
            if (!d || *d > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
                entry_error(key, "\"shape\" dimension " + std::to_string(i) +
                                     " must be a non-negative integer below 2^63, got " +
                                     describe(js[i]));
            }
            t.shape.push_back(static_cast<std::int64_t>(*d));
        }
        const auto numel = detail::checked_numel(t.shape);
        if (!numel) {
            entry_error(key, "shape " + detail::shape_string(t.shape) +
                                 " has too many elements (the product overflows 64 bits)");
        }

        const json& jo = field(key, entry, "data_offsets");
        if (!jo.is_array() || jo.size() != 2) {
            entry_error(key, std::string("\"data_offsets\" must be a pair [begin, end] of byte "
                                         "offsets, got ") +
                                 (jo.is_array()
                                      ? "an array of " + std::to_string(jo.size()) + " elements"
                                      : std::string(jo.type_name())));
        }
        const auto b = non_negative_integer(jo[0]);
        const auto e = non_negative_integer(jo[1]);
        if (!b || !e) {
            entry_error(key, "\"data_offsets\" must hold non-negative integers, got [" +
                                 describe(jo[0]) + ", " + describe(jo[1]) + "]");
        }
        if (*b > *e) {
            entry_error(key, "data_offsets " + detail::offsets_string(*b, *e) +
                                 " are reversed (begin > end)");
        }
        if (*e > data_size_) {
            entry_error(key, "data_offsets " + detail::offsets_string(*b, *e) +
                                 " end past the data area, which holds " +
                                 std::to_string(data_size_) + " bytes");
        }
        t.begin = static_cast<std::size_t>(*b);
        t.end = static_cast<std::size_t>(*e);

        // Compare by division: numel * element size may exceed 64 bits.
        const std::uint64_t bytes = *e - *b;
        const std::size_t es = element_size(t.dtype);
        if (bytes % es != 0 || bytes / es != static_cast<std::uint64_t>(*numel)) {
            entry_error(key, "data_offsets " + detail::offsets_string(*b, *e) + " span " +
                                 std::to_string(bytes) + " bytes but dtype " + std::string(dname) +
                                 " with shape " + detail::shape_string(t.shape) + " needs " +
                                 std::to_string(*numel) + " x " + std::to_string(es) + " bytes");
        }
        return t;
    }

    void check_overlaps() const {
        std::vector<const tensor_info*> order;
        order.reserve(tensors_.size());
        for (const auto& t : tensors_) {
            if (t.end > t.begin) {
                order.push_back(&t);
            }
        }
        std::sort(order.begin(), order.end(),
                  [](const tensor_info* a, const tensor_info* b) { return a->begin < b->begin; });
        for (std::size_t i = 1; i < order.size(); ++i) {
            const tensor_info& prev = *order[i - 1];
            const tensor_info& cur = *order[i];
            if (cur.begin < prev.end) {
                entry_error(cur.name, "data_offsets " + detail::offsets_string(cur.begin, cur.end) +
                                          " overlap those of tensor '" + prev.name + "' " +
                                          detail::offsets_string(prev.begin, prev.end));
            }
        }
    }

    template <detail::element_value T, class S>
    T convert_value(S v, const tensor_info& t, std::size_t i) const {
        const auto bad = [&](const std::string& what) {
            throw io_error(source_, t.name,
                           "element " + std::to_string(i) + " " + what + " (converting " +
                               std::string(to_string(t.dtype)) + " to " +
                               std::string(detail::value_type_name<T>()) + ")");
        };
        if constexpr (std::floating_point<S> && !std::floating_point<T>) {
            // Unreachable: convertible<T> rejects these before any element is read.
            bad("is floating-point");
            return T{};
        } else if constexpr (std::same_as<S, float>) {
            return static_cast<T>(v); // widening or identity: exact
        } else if constexpr (std::same_as<S, double>) {
            if constexpr (std::same_as<T, float>) {
                if (std::isfinite(v) && std::fabs(v) > std::numeric_limits<float>::max()) {
                    bad("(" + detail::number_string(v) + ") is outside the range of float");
                }
            }
            return static_cast<T>(v);
        } else if constexpr (std::same_as<S, std::int64_t> || std::same_as<S, std::uint64_t>) {
            if constexpr (std::same_as<T, bool>) {
                if (v != 0 && v != 1) {
                    bad("(" + std::to_string(v) + ") is neither 0 nor 1");
                }
                return v == 1;
            } else if constexpr (std::same_as<T, std::int64_t>) {
                if constexpr (std::same_as<S, std::uint64_t>) {
                    if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
                        bad("(" + std::to_string(v) + ") is outside the range of int64");
                    }
                }
                return static_cast<std::int64_t>(v);
            } else {
                std::uint64_t mag;
                if constexpr (std::same_as<S, std::int64_t>) {
                    mag = v < 0 ? std::uint64_t{0} - static_cast<std::uint64_t>(v)
                                : static_cast<std::uint64_t>(v);
                } else {
                    mag = v;
                }
                if (!detail::exact_in_mantissa(mag, std::numeric_limits<T>::digits)) {
                    bad("(" + std::to_string(v) + ") is not exactly representable");
                }
                return static_cast<T>(v);
            }
        } else {
            static_assert(std::same_as<S, std::uint8_t>, "BOOL bytes");
            if (v > 1) {
                bad("is not a valid boolean (byte value " + std::to_string(v) + ")");
            }
            return static_cast<T>(v);
        }
    }

    // Element count of t, after checking that t describes valid bytes of this file (t may have
    // been built by the caller rather than by parse).
    std::size_t checked_count(const tensor_info& t) const {
        const std::span<const std::byte> bytes = raw(t);
        const std::int64_t numel = t.numel();
        const std::size_t es = element_size(t.dtype);
        if (numel < 0 || bytes.size() % es != 0 ||
            bytes.size() / es != static_cast<std::uint64_t>(numel)) {
            throw io_error(source_, t.name,
                           "byte range " + detail::offsets_string(t.begin, t.end) +
                               " does not match dtype " + std::string(to_string(t.dtype)) +
                               " with shape " + detail::shape_string(t.shape));
        }
        return static_cast<std::size_t>(numel);
    }

    template <detail::element_value T>
    void convert_into(const tensor_info& t, std::size_t n, T* out) const {
        if (!detail::convertible<T>(t.dtype)) {
            throw io_error(source_, t.name,
                           "cannot convert dtype " + std::string(to_string(t.dtype)) + " to " +
                               std::string(detail::value_type_name<T>()) +
                               " (floating data does not convert to integers or bool)");
        }
        const std::span<const std::byte> bytes = raw(t);
        const std::size_t es = element_size(t.dtype);
        if (n == 0) {
            return; // out may be null (empty vector), which memcpy must not see
        }
        const std::byte* p = bytes.data();

        // Same representation: one copy (the data may be unaligned, memcpy does not care).
        constexpr bool little = std::endian::native == std::endian::little;
        if constexpr (little && std::same_as<T, double>) {
            if (t.dtype == dtype::f64) {
                std::memcpy(out, p, bytes.size());
                return;
            }
        } else if constexpr (little && std::same_as<T, float>) {
            if (t.dtype == dtype::f32) {
                std::memcpy(out, p, bytes.size());
                return;
            }
        } else if constexpr (little && std::same_as<T, std::int64_t>) {
            if (t.dtype == dtype::i64) {
                std::memcpy(out, p, bytes.size());
                return;
            }
        }

        using detail::load_le;
        const auto each = [&](auto decode) {
            for (std::size_t i = 0; i < n; ++i) {
                out[i] = convert_value<T>(decode(p + i * es), t, i);
            }
        };
        switch (t.dtype) {
        case dtype::boolean:
            each([](const std::byte* q) { return std::to_integer<std::uint8_t>(*q); });
            break;
        case dtype::u8:
            each([](const std::byte* q) {
                return std::uint64_t{std::to_integer<std::uint8_t>(*q)};
            });
            break;
        case dtype::i8:
            each([](const std::byte* q) {
                return std::int64_t{static_cast<std::int8_t>(std::to_integer<std::uint8_t>(*q))};
            });
            break;
        case dtype::f8_e5m2:
            each([](const std::byte* q) {
                return detail::f8_e5m2_to_float(std::to_integer<std::uint8_t>(*q));
            });
            break;
        case dtype::f8_e4m3:
            each([](const std::byte* q) {
                return detail::f8_e4m3_to_float(std::to_integer<std::uint8_t>(*q));
            });
            break;
        case dtype::f8_e8m0:
            each([](const std::byte* q) {
                return detail::f8_e8m0_to_float(std::to_integer<std::uint8_t>(*q));
            });
            break;
        case dtype::i16:
            each([](const std::byte* q) {
                return std::int64_t{static_cast<std::int16_t>(load_le<std::uint16_t>(q))};
            });
            break;
        case dtype::u16:
            each([](const std::byte* q) { return std::uint64_t{load_le<std::uint16_t>(q)}; });
            break;
        case dtype::f16:
            each([](const std::byte* q) {
                return detail::half_to_float(load_le<std::uint16_t>(q));
            });
            break;
        case dtype::bf16:
            each([](const std::byte* q) {
                return detail::bf16_to_float(load_le<std::uint16_t>(q));
            });
            break;
        case dtype::i32:
            each([](const std::byte* q) {
                return std::int64_t{static_cast<std::int32_t>(load_le<std::uint32_t>(q))};
            });
            break;
        case dtype::u32:
            each([](const std::byte* q) { return std::uint64_t{load_le<std::uint32_t>(q)}; });
            break;
        case dtype::f32:
            each(
                [](const std::byte* q) { return std::bit_cast<float>(load_le<std::uint32_t>(q)); });
            break;
        case dtype::f64:
            each([](const std::byte* q) {
                return std::bit_cast<double>(load_le<std::uint64_t>(q));
            });
            break;
        case dtype::i64:
            each([](const std::byte* q) {
                return static_cast<std::int64_t>(load_le<std::uint64_t>(q));
            });
            break;
        case dtype::u64:
            each([](const std::byte* q) { return load_le<std::uint64_t>(q); });
            break;
        }
    }
};

// One tensor for serialize_safetensors: `data` holds the little-endian bytes, numel(shape) *
// element_size(dtype) of them.
struct tensor_to_write {
    std::string name;
    io::dtype dtype = io::dtype::f64;
    std::vector<std::int64_t> shape;
    std::vector<std::byte> data;
};

// The dtype a C++ element type is stored as.
template <detail::writable_value T> constexpr dtype dtype_of() {
    if constexpr (std::same_as<T, float>) {
        return dtype::f32;
    } else if constexpr (std::same_as<T, double>) {
        return dtype::f64;
    } else if constexpr (std::same_as<T, std::int64_t>) {
        return dtype::i64;
    } else if constexpr (std::same_as<T, std::int32_t>) {
        return dtype::i32;
    } else if constexpr (std::same_as<T, std::int16_t>) {
        return dtype::i16;
    } else if constexpr (std::same_as<T, std::int8_t>) {
        return dtype::i8;
    } else if constexpr (std::same_as<T, std::uint8_t>) {
        return dtype::u8;
    } else if constexpr (std::same_as<T, std::uint16_t>) {
        return dtype::u16;
    } else if constexpr (std::same_as<T, std::uint32_t>) {
        return dtype::u32;
    } else if constexpr (std::same_as<T, std::uint64_t>) {
        return dtype::u64;
    } else {
        return dtype::boolean;
    }
}

// Packs values (row-major) into a tensor_to_write; throws io_error if the shape does not hold
// exactly values.size() elements.
template <detail::writable_value T>
tensor_to_write make_tensor(std::string name, std::vector<std::int64_t> shape,
                            std::span<const T> values) {
    const auto numel = detail::checked_numel(shape);
    if (!numel || static_cast<std::uint64_t>(*numel) != values.size()) {
        throw io_error("make_tensor", name,
                       "shape " + detail::shape_string(shape) + " does not hold the " +
                           std::to_string(values.size()) + " values given");
    }
    tensor_to_write t{std::move(name), dtype_of<T>(), std::move(shape), {}};
    t.data.resize(values.size() * sizeof(T));
    std::byte* p = t.data.data();
    for (const T v : values) {
        if constexpr (std::same_as<T, bool>) {
            *p = v ? std::byte{1} : std::byte{0};
        } else {
            using U = std::make_unsigned_t<std::conditional_t<
                std::is_floating_point_v<T>,
                std::conditional_t<sizeof(T) == 8, std::int64_t, std::int32_t>, T>>;
            detail::store_le(p, std::bit_cast<U>(v));
        }
        p += sizeof(T);
    }
    return t;
}

// Convenience overload, so that a std::vector (including std::vector<bool>) deduces T.
template <detail::writable_value T>
tensor_to_write make_tensor(std::string name, std::vector<std::int64_t> shape,
                            const std::vector<T>& values) {
    if constexpr (std::same_as<T, bool>) {
        const auto tmp = std::make_unique<bool[]>(values.size());
        std::copy(values.begin(), values.end(), tmp.get());
        return make_tensor<bool>(std::move(name), std::move(shape),
                                 std::span<const bool>(tmp.get(), values.size()));
    } else {
        return make_tensor<T>(std::move(name), std::move(shape), std::span<const T>(values));
    }
}

namespace detail {

// s as a JSON string literal; nullopt if s is not valid UTF-8.
inline std::optional<std::string> json_string(std::string_view s) {
    try {
        return nlohmann::json(std::string(s)).dump();
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
}

inline std::vector<std::byte> serialize(std::span<const tensor_to_write> tensors,
                                        const std::map<std::string, std::string>& metadata,
                                        std::string_view source) {
    // Validate first, so that no partial output is ever produced.
    std::map<std::string_view, std::size_t> seen;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        const tensor_to_write& t = tensors[i];
        if (t.name == "__metadata__") {
            throw io_error(source, t.name, "the name is reserved for the metadata");
        }
        if (!seen.emplace(t.name, i).second) {
            throw io_error(source, t.name, "the name appears twice");
        }
        const auto numel = checked_numel(t.shape);
        if (!numel) {
            throw io_error(source, t.name,
                           "invalid shape " + shape_string(t.shape) +
                               " (negative dimension or too many elements)");
        }
        const std::size_t es = element_size(t.dtype);
        if (t.data.size() % es != 0 || t.data.size() / es != static_cast<std::uint64_t>(*numel)) {
            throw io_error(source, t.name,
                           "holds " + std::to_string(t.data.size()) + " bytes but dtype " +
                               std::string(to_string(t.dtype)) + " with shape " +
                               shape_string(t.shape) + " needs " + std::to_string(*numel) + " x " +
                               std::to_string(es) + " bytes");
        }
    }

    // Widest elements first and no gaps: every tensor is aligned to its element size.
    std::vector<std::size_t> layout(tensors.size());
    for (std::size_t i = 0; i < layout.size(); ++i) {
        layout[i] = i;
    }
    std::stable_sort(layout.begin(), layout.end(), [&](std::size_t a, std::size_t b) {
        return element_size(tensors[a].dtype) > element_size(tensors[b].dtype);
    });
    std::vector<std::size_t> begin(tensors.size());
    std::size_t offset = 0;
    for (const std::size_t i : layout) {
        begin[i] = offset;
        offset += tensors[i].data.size();
    }

    std::string header = "{";
    if (!metadata.empty()) {
        header += "\"__metadata__\":{";
        bool first = true;
        for (const auto& [k, v] : metadata) {
            header += first ? "" : ",";
            first = false;
            const auto jk = json_string(k);
            const auto jv = json_string(v);
            if (!jk) {
                throw io_error(source, "__metadata__: a key is not valid UTF-8");
            }
            if (!jv) {
                throw io_error(source, "__metadata__: the value of '" + k + "' is not valid UTF-8");
            }
            header += *jk + ':' + *jv;
        }
        header += '}';
    }
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        const tensor_to_write& t = tensors[i];
        header += header.size() > 1 ? "," : "";
        const auto jname = json_string(t.name);
        if (!jname) {
            throw io_error(source, t.name, "the name is not valid UTF-8");
        }
        header += *jname;
        header += ":{\"dtype\":\"";
        header += to_string(t.dtype);
        header += "\",\"shape\":[";
        for (std::size_t d = 0; d < t.shape.size(); ++d) {
            header += d != 0 ? "," : "";
            header += std::to_string(t.shape[d]);
        }
        header += "],\"data_offsets\":[" + std::to_string(begin[i]) + "," +
                  std::to_string(begin[i] + t.data.size()) + "]}";
    }
    header += '}';
    header.append((8 - header.size() % 8) % 8, ' ');

    std::vector<std::byte> out(8 + header.size() + offset);
    store_le(out.data(), static_cast<std::uint64_t>(header.size()));
    std::memcpy(out.data() + 8, header.data(), header.size());
    std::byte* data = out.data() + 8 + header.size();
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        if (!tensors[i].data.empty()) {
            std::memcpy(data + begin[i], tensors[i].data.data(), tensors[i].data.size());
        }
    }
    return out;
}

} // namespace detail

// The complete file image. Throws io_error (naming the tensor) for duplicate or reserved names,
// invalid shapes, data of the wrong size, or names/metadata that are not valid UTF-8.
inline std::vector<std::byte>
serialize_safetensors(std::span<const tensor_to_write> tensors,
                      const std::map<std::string, std::string>& metadata = {}) {
    return detail::serialize(tensors, metadata, "serialize_safetensors");
}

inline void write_safetensors(const std::filesystem::path& path,
                              std::span<const tensor_to_write> tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
    const std::string source = path.string();
    const std::vector<std::byte> bytes = detail::serialize(tensors, metadata, source);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) {
        throw io_error(source, "cannot open file for writing");
    }
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
        throw io_error(source, "write failed (disk full or file not writable?)");
    }
}

} // namespace inn::io
