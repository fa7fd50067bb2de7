#pragma once
// The name of a type as a compile-time string, for node names in summaries and error messages.
// GCC and Clang only (__PRETTY_FUNCTION__), like the rest of the library (nn/kernels/simd.hpp
// uses their vector extensions).

#include <string_view>

namespace inn::detail {

template <class T>
constexpr std::string_view raw_type_name() {
    return __PRETTY_FUNCTION__;
}

template <class T>
constexpr std::string_view type_name() {
    std::string_view s = raw_type_name<T>();
#if defined(__clang__)
    constexpr std::string_view key = "T = ";
    auto b = s.find(key) + key.size();
    auto e = s.rfind(']');
#else
    constexpr std::string_view key = "T = ";
    auto b = s.find(key) + key.size();
    auto e = s.find_first_of(";]", b);
#endif
    s = s.substr(b, e - b);
    // Node names are the user's struct names: drop the namespaces of the declaring scope.
    if (s.find('<') == std::string_view::npos) {
        auto colon = s.rfind("::");
        if (colon != std::string_view::npos) s = s.substr(colon + 2);
    }
    for (std::string_view p : {"struct ", "class "})
        if (s.substr(0, p.size()) == p) s = s.substr(p.size());
    return s;
}

}  // namespace inn::detail
