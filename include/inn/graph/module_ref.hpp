#pragma once
// `net.module<K>()`: a reference to the bound module of one node, for tests, tools and custom
// initialisation (not needed for ordinary use). It reads like the module (`->`), and assigning
// one from another node's copies that module's state — which is only meaningful between the
// same module type built for the same shapes, so anything else is a compile error naming both
// nodes.

#include <type_traits>

#include "diagnostics.hpp"

namespace inn::error {

template <class Node, class OtherNode>
struct module_assigned_from_a_node_of_another_module_type {
    static_assert(check_failed<Node, OtherNode>,
                  "inn: a module is assigned from a node with another module type (both nodes "
                  "are named above)");
};
template <class Node, class OtherNode>
struct module_assigned_from_a_node_whose_input_shape_differs {
    static_assert(check_failed<Node, OtherNode>,
                  "inn: a module is assigned from a node of the same module type whose input or "
                  "condition shape differs, so its parameters have other shapes (both nodes are "
                  "named above)");
};

}  // namespace inn::error

namespace inn::graph {

/// What `net.module<K>()` returns (a tool, see graph/network.hpp).
template <class Node, class Spec, class Bound>
class module_ref {
  public:
    using node = Node;
    using spec = Spec;
    using module_type = Bound;

    explicit module_ref(Bound& m) : m_(&m) {}
    module_ref(const module_ref&) = default;

    Bound* operator->() const { return m_; }
    Bound& operator*() const { return *m_; }
    Bound& get() const { return *m_; }

    /// Copies the state (parameters, buffers, caches) of the other node's module into this one.
    module_ref& operator=(const module_ref& other) {
        *m_ = *other.m_;
        return *this;
    }
    template <class OtherNode, class OtherSpec, class OtherBound>
    module_ref& operator=(const module_ref<OtherNode, OtherSpec, OtherBound>& other) {
        if constexpr (std::is_same_v<OtherBound, Bound>) {
            *m_ = *other;
        } else if constexpr (!std::is_same_v<OtherSpec, Spec>) {
            (void)error::module_assigned_from_a_node_of_another_module_type<Node, OtherNode>{};
        } else {
            (void)error::module_assigned_from_a_node_whose_input_shape_differs<Node, OtherNode>{};
        }
        return *this;
    }

  private:
    Bound* m_;
};

}  // namespace inn::graph
