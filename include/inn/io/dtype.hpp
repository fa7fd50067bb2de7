#pragma once

// The element types of safetensors files (names, sizes, byte order) and the checked conversion
// of stored elements to the types the library computes with (detail::convert_elements, used by
// safetensors_file::copy_to / to_vector, which document what converts to what).

#include <inn/io/error.hpp>

#include <array>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>

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

} // namespace detail

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

namespace detail {

// Where the elements being converted come from, for the error messages.
struct conversion_source {
    std::string_view file;   // file path or buffer name
    std::string_view tensor; // the tensor's key
    dtype type;              // its stored element type
};

template <element_value T, class S>
T convert_value(S v, const conversion_source& from, std::size_t i) {
    const auto bad = [&](const std::string& what) {
        throw io_error(from.file, from.tensor,
                       "element " + std::to_string(i) + " " + what + " (converting " +
                           std::string(to_string(from.type)) + " to " +
                           std::string(value_type_name<T>()) + ")");
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
                bad("(" + number_string(v) + ") is outside the range of float");
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
            if (!exact_in_mantissa(mag, std::numeric_limits<T>::digits)) {
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

// Converts n elements of type from.type, stored little-endian (possibly unaligned) in bytes, to
// out[0, n); bytes holds exactly n elements. Throws io_error naming the tensor and the element
// for every value that would not survive (see safetensors_file::copy_to).
template <element_value T>
void convert_elements(const conversion_source& from, std::span<const std::byte> bytes,
                      std::size_t n, T* out) {
    if (!convertible<T>(from.type)) {
        throw io_error(from.file, from.tensor,
                       "cannot convert dtype " + std::string(to_string(from.type)) + " to " +
                           std::string(value_type_name<T>()) +
                           " (floating data does not convert to integers or bool)");
    }
    const std::size_t es = element_size(from.type);
    if (n == 0) {
        return; // out may be null (empty vector), which memcpy must not see
    }
    const std::byte* p = bytes.data();

    // Same representation: one copy (the data may be unaligned, memcpy does not care).
    constexpr bool little = std::endian::native == std::endian::little;
    if constexpr (little && std::same_as<T, double>) {
        if (from.type == dtype::f64) {
            std::memcpy(out, p, bytes.size());
            return;
        }
    } else if constexpr (little && std::same_as<T, float>) {
        if (from.type == dtype::f32) {
            std::memcpy(out, p, bytes.size());
            return;
        }
    } else if constexpr (little && std::same_as<T, std::int64_t>) {
        if (from.type == dtype::i64) {
            std::memcpy(out, p, bytes.size());
            return;
        }
    }

    const auto each = [&](auto decode) {
        for (std::size_t i = 0; i < n; ++i) {
            out[i] = convert_value<T>(decode(p + i * es), from, i);
        }
    };
    switch (from.type) {
    case dtype::boolean:
        each([](const std::byte* q) { return std::to_integer<std::uint8_t>(*q); });
        break;
    case dtype::u8:
        each([](const std::byte* q) { return std::uint64_t{std::to_integer<std::uint8_t>(*q)}; });
        break;
    case dtype::i8:
        each([](const std::byte* q) {
            return std::int64_t{static_cast<std::int8_t>(std::to_integer<std::uint8_t>(*q))};
        });
        break;
    case dtype::f8_e5m2:
        each(
            [](const std::byte* q) { return f8_e5m2_to_float(std::to_integer<std::uint8_t>(*q)); });
        break;
    case dtype::f8_e4m3:
        each(
            [](const std::byte* q) { return f8_e4m3_to_float(std::to_integer<std::uint8_t>(*q)); });
        break;
    case dtype::f8_e8m0:
        each(
            [](const std::byte* q) { return f8_e8m0_to_float(std::to_integer<std::uint8_t>(*q)); });
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
        each([](const std::byte* q) { return half_to_float(load_le<std::uint16_t>(q)); });
        break;
    case dtype::bf16:
        each([](const std::byte* q) { return bf16_to_float(load_le<std::uint16_t>(q)); });
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
        each([](const std::byte* q) { return std::bit_cast<float>(load_le<std::uint32_t>(q)); });
        break;
    case dtype::f64:
        each([](const std::byte* q) { return std::bit_cast<double>(load_le<std::uint64_t>(q)); });
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

} // namespace detail

} // namespace inn::io
