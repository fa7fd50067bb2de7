#pragma once
// The parts shared by compile-time error reporters (graph/diagnostics.hpp, nn/layer.hpp).
//
// C++20 static_assert messages must be literals, so the names of what is wrong (nodes, modules,
// subnets, shapes) travel as template arguments of a reporter whose own name says what is
// wrong; compilers print both.

namespace inn::error {

template <class...>
inline constexpr bool check_failed = false;

template <int V>
struct value {};  // an integer shown in a reporter's template arguments

}  // namespace inn::error
