#pragma once

// safetensors_file: a whole safetensors file in memory, its validated header (io/header.hpp),
// and checked access to each tensor's elements (conversions: io/dtype.hpp). Tensor data is
// little-endian, row-major and not necessarily aligned, so every load goes through memcpy.

#include <inn/io/dtype.hpp>
#include <inn/io/error.hpp>
#include <inn/io/header.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace inn::io {

class safetensors_file {
  public:
    using metadata_map = io::metadata_map;

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
        file_header h = parse_header(f.bytes_, f.source_);
        f.data_start_ = h.data_start;
        f.data_size_ = h.data_size;
        f.tensors_ = std::move(h.tensors);
        f.metadata_ = std::move(h.metadata);
        for (std::size_t i = 0; i < f.tensors_.size(); ++i) {
            f.index_.emplace(f.tensors_[i].name, i);
        }
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
    std::vector<std::byte> bytes_;
    std::string source_;
    std::size_t data_start_ = 0;
    std::size_t data_size_ = 0;
    std::vector<tensor_info> tensors_;
    std::map<std::string, std::size_t, std::less<>> index_;
    metadata_map metadata_;

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
        detail::convert_elements(detail::conversion_source{source_, t.name, t.dtype}, raw(t), n,
                                 out);
    }
};

} // namespace inn::io
