#pragma once

// The JSON header of a safetensors file: parsing and validation (io::parse_header), and the
// description of one tensor it yields (io::tensor_info).
//
// Layout of a file: u64 little-endian header length N, N bytes of UTF-8 JSON header (possibly
// padded with spaces), then the data area. The header maps tensor names to
// {"dtype", "shape", "data_offsets": [begin, end)} (offsets relative to the data area) and may
// hold "__metadata__": {string: string}.
//
// Reader policy (what parse_header accepts):
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

#include <inn/io/dtype.hpp>
#include <inn/io/error.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace inn::io {

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

} // namespace detail

struct tensor_info {
    std::string name;
    io::dtype dtype = io::dtype::f64;
    std::vector<std::int64_t> shape; // [] is a rank-0 scalar with one element
    std::size_t begin = 0, end = 0;  // byte range [begin, end) relative to the data area

    // Product of the dims (1 for rank 0); -1 if the shape is invalid (negative dim or overflow),
    // which cannot happen for entries produced by parse_header.
    std::int64_t numel() const { return detail::checked_numel(shape).value_or(-1); }
};

using metadata_map = std::map<std::string, std::string, std::less<>>;

// What the header of a file says, validated against the file's size.
struct file_header {
    std::size_t data_start = 0;       // file offset of the data area (8 + header length)
    std::size_t data_size = 0;        // bytes from data_start to the end of the file
    std::vector<tensor_info> tensors; // in the header's order
    metadata_map metadata;            // "__metadata__", empty if absent
};

namespace detail {

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

// The checks of parse_header, with the file and its name at hand for the messages.
class header_parser {
  public:
    header_parser(std::span<const std::byte> bytes, std::string_view source)
        : bytes_(bytes), source_(source) {}

    file_header run() {
        parse_header();
        return std::move(header_);
    }

  private:
    using json = nlohmann::json;

    std::span<const std::byte> bytes_;
    std::string_view source_;
    file_header header_;

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
        header_.data_start = 8 + static_cast<std::size_t>(n);
        header_.data_size = bytes_.size() - header_.data_start;

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
                header_.tensors.push_back(parse_entry(key, entry));
            }
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
            header_.metadata.emplace(k, v.get<std::string>());
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
        if (*e > header_.data_size) {
            entry_error(key, "data_offsets " + detail::offsets_string(*b, *e) +
                                 " end past the data area, which holds " +
                                 std::to_string(header_.data_size) + " bytes");
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
        order.reserve(header_.tensors.size());
        for (const auto& t : header_.tensors) {
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
};

} // namespace detail

// Parses and validates the header of the complete file image `bytes`; throws io_error naming
// `source` (and the tensor, where there is one) for anything the policy above rejects.
inline file_header parse_header(std::span<const std::byte> bytes, std::string_view source) {
    return detail::header_parser(bytes, source).run();
}

} // namespace inn::io
