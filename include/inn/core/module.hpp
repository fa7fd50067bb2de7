#pragma once
// The module contract: one contract for the host, other memory spaces and gradients.
//
// A module is written in two layers, like FrEIA's class + constructor call:
//
//   * the *spec*: the type users put in an architecture, e.g. `GLOWCouplingBlock<subnet, {.clamp = 1}>`.
//     It has a constexpr shape rule `static shape_result output_shapes(const signature&)` (FrEIA's
//     `output_dims` plus the constructor's checks) and a member template `bind<Scalar, signature>`
//     (or `bind<Scalar, signature, Space>` for a module that runs in other memory spaces too);
//   * the *bound module* `Spec::bind<S, sig>`: the object that owns parameters and runs. Its shapes
//     are compile-time constants, so its loops and Eigen maps have static sizes. It provides
//
//       explicit bind(generator&);                       // parameters initialised like FrEIA's
//       void forward(const run_args<S>&) const;          // x -> z, adds log|det J| to args.ljd
//       void inverse(const run_args<S>&) const;          // z -> x, adds log|det J^-1|
//     and optionally
//       static constexpr index_t scratch_size(pass, index_t batch);  // scalars of scratch
//       template <class V> void visit(V&&, const std::string& prefix);  // state_dict entries
//       void prepare();                // caches and checks that depend only on parameters
//       void backward(const backward_args<S>&) const;    // vector-Jacobian products
//       static constexpr index_t saved_per_sample;       // kept from forward for backward
//       bool initialized() const;      // with initialize(): state set from the first batch
//       void initialize(const run_args<S>&);             //   (ActNorm), all-or-nothing
//       static constexpr inverse_kind inversion;         // default exact
//       static constexpr view_kind view;                 // only moves data (below)
//       static constexpr bool batch_parallel;            // default true (below)
//       void affine_form(pass, affine_gather<S>&) const; // element-wise modules (below)
//
// forward/inverse are const and do no per-call bookkeeping: whatever depends only on the
// parameters (exp of a log-scale, a Householder product, the check that a loaded permutation is
// one) is computed in prepare(), which the network calls on the caller's thread once after
// every change of the parameters (construction, loading, an optimiser step, a visit that may
// write) and before any call splits its batch across threads. prepare() throws
// `parameter_error` naming the key for parameters the module cannot run with; loading then
// fails and leaves the network unchanged. A module never allocates in forward/inverse/backward;
// temporary space comes from `args.scratch`, sized by scratch_size for that pass.
//
// With `net.set_threads(n)` the samples of a batch run on several threads at once, each with
// its own scratch; a module whose call cannot be split (IResNetLayer draws its probes per call)
// declares `batch_parallel = false` and then sees whole batches on one thread.
//
// An element-wise module (each output element an affine map of one input element, the same for
// every sample, a log-determinant independent of the data: PermuteRandom, ActNorm,
// LearnedElementwiseScaling, the i-RevNet reshuffles) may describe each direction as data with
// affine_form (core/affine_gather.hpp), after prepare() and giving the numbers forward/inverse
// give, to rounding. The network then runs a chain of such modules as one composed pass
// (graph/fusion.hpp); forward/inverse remain what runs everywhere else.

#include <concepts>
#include <span>
#include <string>
#include <string_view>

#include "affine_gather.hpp"
#include "errors.hpp"
#include "memory_space.hpp"
#include "parameters.hpp"
#include "random.hpp"
#include "signature.hpp"
#include "tensor_view.hpp"
#include "type_name.hpp"

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
/// every sample of the one input (output), in port order, and the network may lay them out in
/// the same memory and skip the module (graph/memory_plan.hpp). It must still run correctly
/// when called: the network calls it where the layout cannot be shared.
enum class view_kind {
    none,
    outputs_in_input,  // out[s] = columns [sum of sizes of out[<s], ...) of in[0] (Split, Flatten)
    inputs_in_output,  // in[i] = columns [sum of sizes of in[<i], ...) of out[0] (Concat)
};

/// What a call asks of a module, for sizing its scratch.
enum class pass { forward, inverse, backward };

/// One call of a bound module. `in` are the tensors this direction reads (forward: x, inverse:
/// z), `out` the tensors it writes; all have `batch` samples. The module adds its
/// log-determinant to `ljd[0..batch)` when `jac` is set and may skip that work otherwise.
template <Scalar S, MemorySpace Space = host>
struct run_args {
    index_t batch = 0;
    std::span<const cview<S, Space>> in;
    std::span<const view<S, Space>> out;
    std::span<const cview<S, Space>> cond;
    S* ljd = nullptr;
    bool jac = true;
    S* scratch = nullptr;
    /// Where these samples start in the caller's batch (threads run slices): sample b here is
    /// sample `first_sample + b` there, which is what error messages must say.
    index_t first_sample = 0;
    /// The stream and library handles of a device call (core/memory_space.hpp); unused on the
    /// host.
    const space_context_t<Space>* context = nullptr;
    /// The forward of a training step that keeps activations (train::store) for a module that
    /// declares `static constexpr index_t saved_per_sample`: where it may keep that many
    /// scalars per sample (rows that far apart, from this call's first sample) for its
    /// backward, which gets them back as backward_args::saved. Null otherwise.
    S* saved = nullptr;
};

/// The vector-Jacobian product of one module's forward map y, ljd = f(x; c, θ), for a loss L:
/// given dL/dy and dL/d(ljd), writes dL/dx, adds dL/dc into `grad_cond` (a condition may feed
/// several modules) and, when `param_grads` is set, adds dL/dθ into each trainable parameter's
/// gradient (`grad_of(p)`). Inputs are the forward call's tensors.
template <Scalar S, MemorySpace Space = host>
struct backward_args {
    index_t batch = 0;
    std::span<const cview<S, Space>> in;         // x, as the forward call read it
    std::span<const cview<S, Space>> out;        // y = f(x)
    std::span<const cview<S, Space>> cond;
    std::span<const cview<S, Space>> grad_out;   // dL/dy
    const S* grad_ljd = nullptr;                 // dL/d log|det J| per sample; null: zero
    std::span<const view<S, Space>> grad_in;     // dL/dx, written
    std::span<const view<S, Space>> grad_cond;   // dL/dc, accumulated; empty: not wanted
    S* scratch = nullptr;
    /// What this module's forward kept in run_args::saved, or null (the memory-efficient mode,
    /// or a module that keeps nothing): the module then recomputes what it needs.
    const S* saved = nullptr;
    bool param_grads = true;
    /// Threads accumulate parameter gradients into copies of their own, `grad_shift` scalars
    /// after the parameter's own gradient, and the network adds them up in a fixed order.
    index_t grad_shift = 0;
    index_t first_sample = 0;

    /// Where to add dL/dp (null when `p` has no gradient attached).
    S* grad_of(const parameter<S>& p) const {
        return param_grads && p.grad ? p.grad + grad_shift : nullptr;
    }
};

template <class M>
concept ModuleSpec = requires(const signature& s) {
    { M::output_shapes(s) } -> std::same_as<shape_result>;
};

/// What the network needs of a bound module; checked where modules are bound (graph/executor.hpp),
/// so a custom module that misses something fails with this concept's name and the module's.
/// A host module initialises its parameters from a generator; a module of another space is
/// built from its host twin, as its backend says (backends/cuda: from the context and the host
/// module).
template <class B, class S, class Space = host>
concept BoundModule = (!std::same_as<Space, host> || std::constructible_from<B, generator&>) &&
                      requires(const B& b, const run_args<S, Space>& a) {
                          b.forward(a);
                          b.inverse(a);
                      };

/// A bound module that can compute gradients (the training executor requires it).
template <class B, class S, class Space = host>
concept DifferentiableModule =
    BoundModule<B, S, Space> && requires(const B& b, const backward_args<S, Space>& a) {
        b.backward(a);
    };

/// Where a backend (or a user) provides a module's implementation for a memory space without
/// editing the module: specialise it for the spec (partially, for a family) and the space, with a
/// member template `bind<S, Sig>`:
///
///   template <class Subnet, CouplingOptions O>
///   struct space_binding<GLOWCouplingBlock<Subnet, O>, cuda::device> {
///       template <Scalar S, signature Sig> using bind = cuda::glow_coupling<Subnet, O, S, Sig>;
///   };
///
/// A spec's own three-parameter `bind<S, Sig, Space>` is used first.
template <class Spec, class Space>
struct space_binding {};

namespace detail {
template <class Spec, class S, signature Sig, class Space>
concept binds_for_space = requires { typename Spec::template bind<S, Sig, Space>; };
// Through an alias: GCC 12 misparses `typename space_binding<...>::template bind<...>` inside a
// requires-expression.
template <class Spec, class Space, class S, signature Sig>
using space_bound_t = typename space_binding<Spec, Space>::template bind<S, Sig>;
template <class Spec, class S, signature Sig, class Space>
concept bound_elsewhere = requires { typename space_bound_t<Spec, Space, S, Sig>; };
template <class Spec, class S, signature Sig>
concept binds_for_host = requires { typename Spec::template bind<S, Sig>; };

template <class Spec, class S, signature Sig, class Space>
struct bound_in {
    using type = void;  // the spec has no binding for this space
};
template <class Spec, class S, signature Sig, class Space>
    requires binds_for_space<Spec, S, Sig, Space>
struct bound_in<Spec, S, Sig, Space> {
    using type = typename Spec::template bind<S, Sig, Space>;
};
template <class Spec, class S, signature Sig, class Space>
    requires(!binds_for_space<Spec, S, Sig, Space>) && bound_elsewhere<Spec, S, Sig, Space>
struct bound_in<Spec, S, Sig, Space> {
    using type = space_bound_t<Spec, Space, S, Sig>;
};
template <class Spec, class S, signature Sig>
    requires(!binds_for_space<Spec, S, Sig, host>) && (!bound_elsewhere<Spec, S, Sig, host>) &&
            binds_for_host<Spec, S, Sig>
struct bound_in<Spec, S, Sig, host> {
    using type = typename Spec::template bind<S, Sig>;
};
}  // namespace detail

/// The bound module of `Spec` for scalar S and signature Sig in memory space Space, or `void`
/// when the spec cannot run there.
template <ModuleSpec Spec, Scalar S, signature Sig, MemorySpace Space = host>
using bind_in = typename detail::bound_in<Spec, S, Sig, Space>::type;

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
constexpr index_t scratch_size_of(pass p, index_t batch) {
    if constexpr (requires { B::scratch_size(p, batch); })
        return B::scratch_size(p, batch);
    else if constexpr (requires { B::scratch_size(batch); })
        return B::scratch_size(batch);
    else
        return 0;
}

/// Scalars per sample a module keeps from a training forward for its backward (run_args::saved).
template <class B>
constexpr index_t saved_per_sample_of() {
    if constexpr (requires { B::saved_per_sample; })
        return B::saved_per_sample;
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

/// A bound module that describes itself as an affine gather (see affine_form above).
template <class B, class S>
concept AffineElementwise = requires(const B& b, affine_gather<S>& m) { b.affine_form(pass::forward, m); };

template <class B, class V>
void visit_tensors(B& module, V&& visitor, const std::string& prefix) {
    if constexpr (requires { module.visit(visitor, prefix); }) module.visit(visitor, prefix);
}

/// prepare() after any change of the parameters; before it prepare_fixed() where tensors that
/// no optimiser step changes (those without requires_grad, e.g. a soft permutation) changed
/// too: for work on them too costly to repeat at every training step.
template <class B>
void prepare_module(B& module, bool fixed_changed = true) {
    if constexpr (requires { module.prepare_fixed(); })
        if (fixed_changed) module.prepare_fixed();
    if constexpr (requires { module.prepare(); }) module.prepare();
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
