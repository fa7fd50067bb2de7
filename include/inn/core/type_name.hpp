#pragma once
// The name of a type as a compile-time string, for node names in summaries and error messages.

#include <string_view>

namespace inn::detail {

template <class T>
constexpr std::string_view raw_type_name() {
#if defined(__clang__) || defined(__GNUC__)
    return __PRETTY_FUNCTION__;
#else
    return __FUNCSIG__;
#endif
}

template <class T>
constexpr std::string_view type_name() {
    std::string_view s = raw_type_name<T>();
#if defined(__clang__)
    constexpr std::string_view key = "T = ";
    auto b = s.find(key) + key.size();
    auto e = s.rfind(']');
#elif defined(__GNUC__)
    constexpr std::string_view key = "T = ";
    auto b = s.find(key) + key.size();
    auto e = s.find_first_of(";]", b);
#else
    auto b = s.find("type_name<") + 10;
    auto e = s.rfind(">(void)");
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
