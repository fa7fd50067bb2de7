#pragma once

// Writing safetensors files: make_tensor packs C++ values, serialize_safetensors builds the file
// image, write_safetensors writes it.
//
// Writer policy: header entries keep the caller's order; "__metadata__" comes first and is
// omitted when empty; the header is padded with spaces to a multiple of 8. The data area is laid
// out without gaps (the reference readers reject gaps), widest element type first, so that
// every tensor starts at a file offset that is a multiple of its own element size (8-byte types
// at multiples of 8).

#include <inn/io/dtype.hpp>
#include <inn/io/error.hpp>
#include <inn/io/header.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace inn::io {

// One tensor for serialize_safetensors: `data` holds the little-endian bytes, numel(shape) *
// element_size(dtype) of them.
struct tensor_to_write {
    std::string name;
    io::dtype dtype = io::dtype::f64;
    std::vector<std::int64_t> shape;
    std::vector<std::byte> data;
};

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

/// Writes the file image to `path`: into a new file beside it, renamed over `path` once complete,
/// so that a failed or interrupted write (a full disk, a killed process) leaves an existing file
/// as it was - a checkpoint is not lost to the save that would replace it - and a reader never
/// sees half a file. A symbolic link is followed: its target is replaced. Something other than
/// a regular file (a device such as /dev/null, a pipe) is written in place. Throws io_error
/// naming the file.
inline void write_safetensors(const std::filesystem::path& path,
                              std::span<const tensor_to_write> tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
    namespace fs = std::filesystem;
    const std::string source = path.string();
    const std::vector<std::byte> bytes = detail::serialize(tensors, metadata, source);
    auto write = [&](const fs::path& to) {
        std::ofstream out(to, std::ios::binary | std::ios::trunc);
        if (!out) {
            return false;
        }
        out.write(reinterpret_cast<const char*>(bytes.data()),
                  static_cast<std::streamsize>(bytes.size()));
        out.close();
        return bool(out);
    };
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec); // through symbolic links
    if (fs::exists(status) && !fs::is_regular_file(status)) {
        if (!write(path)) {
            throw io_error(source, "cannot open or write to it");
        }
        return;
    }
    fs::path target = path;
    if (fs::is_symlink(fs::symlink_status(path, ec))) {
        target = fs::weakly_canonical(path, ec);
        if (ec) {
            throw io_error(source, "cannot follow the symbolic link: " + ec.message());
        }
    }
    // Unique among calls writing the same file at once: the time apart, and within one process
    // a stack address of this call's.
    fs::path part = target;
    part += ".part-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) +
            "-" + std::to_string(reinterpret_cast<std::uintptr_t>(&bytes));
    if (!write(part)) {
        const bool opened = fs::exists(part, ec);
        fs::remove(part, ec);
        throw io_error(source, opened ? "write failed (disk full or file not writable?); the file "
                                        "is unchanged"
                                      : "cannot open file for writing");
    }
    fs::rename(part, target, ec);
    if (ec) {
        const std::string why = ec.message();
        fs::remove(part, ec);
        throw io_error(source, "cannot replace the file (" + why + "); it is unchanged");
    }
}

} // namespace inn::io
