#pragma once
// The module concept.
//
// A module is written in two layers, like FrEIA's class + constructor call:
//
//   * the *spec* — the type users put in an architecture, e.g. `GLOWCouplingBlock<subnet, {.clamp = 1}>`.
//     It has a constexpr shape rule `static shape_result output_shapes(const signature&)` (FrEIA's
//     `output_dims` plus the constructor's checks) and a member template `bind<Scalar, signature>`;
//   * the *bound module* `Spec::bind<S, sig>` — the object that owns parameters and runs. Its shapes
//     are compile-time constants, so its loops and Eigen maps have static sizes. It provides
//
//       explicit bind(generator&);                       // parameters initialised like FrEIA's
//       void forward(const run_args<S>&);                // x -> z, adds log|det J| to args.ljd
//       void inverse(const run_args<S>&);                // z -> x, adds log|det J^-1|
//       static constexpr index_t scratch_size(index_t batch);    // optional, scalars of scratch
//       template <class V> void visit(V&&, const std::string& prefix);  // optional, state_dict
//       static constexpr inverse_kind inversion;        // optional, default exact
//       static constexpr view_kind view;                // optional: only moves data (below)
//       void prepare();                                 // optional: refresh parameter caches
//       static constexpr bool batch_parallel;           // optional, default true (below)
//
// The graph computes every signature, binds every module, and hands each call views of the
// buffers it reads and writes. A module never allocates during forward/inverse; temporary space
// comes from `args.scratch`. With `net.set_threads(n)` the rows of a batch run on several
// threads at once, each with its own scratch: a module that writes its own members during a
// call must do that in `prepare()` (called once before the threads start; a call then finds
// nothing to refresh) or declare `batch_parallel = false` (the batch then runs on one thread).

#include <concepts>
#include <span>
#include <string>
#include <string_view>

#include "random.hpp"
#include "type_name.hpp"
#include "signature.hpp"
#include "tensor_view.hpp"

namespace inn {

/// How exactly a module (or network) inverts: `static_assert(net::inversion == inverse_kind::exact)`
/// forbids iterative or approximate inverses in a sampler.
enum class inverse_kind {
    exact,        // closed form, to rounding
    iterative,    // fixed-point or root-finding iteration (IResNetLayer)
    approximate,  // not a true inverse (InvAutoFC's transpose)
};

constexpr inverse_kind combine(inverse_kind a, inverse_kind b) { return a > b ? a : b; }

/// Modules that only move data may declare themselves views (`static constexpr view_kind view`
/// in the bound module): each output (or each input) is then a block of consecutive scalars of
/// every row of the one input (output), in port order, and the network may lay them out in the
/// same memory and skip the module (graph/memory_plan.hpp). It must still run correctly when
/// called: the network calls it where the layout cannot be shared.
enum class view_kind {
    none,
    outputs_in_input,  // out[s] = columns [sum of sizes of out[<s], ...) of in[0] (Split, Flatten)
    inputs_in_output,  // in[i] = columns [sum of sizes of in[<i], ...) of out[0] (Concat)
};

/// One call of a bound module. `in` are the tensors this direction reads (forward: x, inverse: z),
/// `out` the tensors it writes; both have `batch` rows. The module adds its log-determinant to
/// `ljd[0..batch)` when `jac` is set and may skip that work otherwise.
template <Scalar S>
struct run_args {
    index_t batch = 0;
    std::span<const cview<S>> in;
    std::span<const view<S>> out;
    std::span<const cview<S>> cond;
    S* ljd = nullptr;
    bool jac = true;
    S* scratch = nullptr;
};

template <class M>
concept ModuleSpec = requires(const signature& s) {
    { M::output_shapes(s) } -> std::same_as<shape_result>;
};

template <ModuleSpec M, Scalar S, signature Sig>
using bind_t = typename M::template bind<S, Sig>;

template <class B, class S>
concept BoundModule = std::constructible_from<B, generator&> && requires(B b, const run_args<S>& a) {
    b.forward(a);
    b.inverse(a);
};

/// The FrEIA class name of a module spec (`static constexpr std::string_view name`), else its type.
template <class M>
constexpr std::string_view module_name() {
    if constexpr (requires { M::name; })
        return M::name;
    else
        return detail::type_name<M>();
}

// ---- defaults for the optional parts of a bound module ------------------------------------------

template <class B>
constexpr index_t scratch_size_of(index_t batch) {
    if constexpr (requires { B::scratch_size(batch); })
        return B::scratch_size(batch);
    else
        return 0;
}

template <class B>
constexpr inverse_kind inversion_of() {
    if constexpr (requires { B::inversion; })
        return B::inversion;
    else
        return inverse_kind::exact;
}

template <class B>
constexpr bool batch_parallel_of() {
    if constexpr (requires { B::batch_parallel; })
        return B::batch_parallel;
    else
        return true;
}

template <class B>
constexpr view_kind view_of() {
    if constexpr (requires { B::view; })
        return B::view;
    else
        return view_kind::none;
}

template <class B, class V>
void visit_tensors(B& module, V&& visitor, const std::string& prefix) {
    if constexpr (requires { module.visit(visitor, prefix); }) module.visit(visitor, prefix);
}

/// Modules with state set from data (ActNorm) report whether they still await it.
template <class B>
bool awaits_data_init(const B& module) {
    if constexpr (requires { module.initialized(); })
        return !module.initialized();
    else
        return false;
}

}  // namespace inn
