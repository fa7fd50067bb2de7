#pragma once
// The executor: the bound modules of a plan, the one block of memory they run in, and the loop
// that runs them in either direction. The public face is graph/network.hpp.
//
// Binding: module k (forward order) is `bind_in<Spec, S, signature, Space>`, checked against the
// BoundModule concept right there, so a custom module that misses a member fails with the
// concept's name and the node's, not deep inside a call.
//
// Per call the executor does no bookkeeping beyond one comparison: whatever depends only on the
// parameters is computed by the modules' prepare(), which runs on the caller's thread when the
// parameters' version has changed since the last call (any non-const access bumps it). Modules
// that initialise themselves from data (ActNorm) do so on the caller's thread, in a call that
// runs whole; if such a call fails, every module it initialised is restored.

#include <algorithm>
#include <array>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <boost/hana/at.hpp>
#include <boost/hana/equal.hpp>
#include <boost/hana/fold_left.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/index_if.hpp>
#include <boost/hana/optional.hpp>
#include <boost/hana/range.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>
#include <boost/hana/unpack.hpp>

#include "../core/errors.hpp"
#include "../core/module.hpp"
#include "../core/parameters.hpp"
#include "../core/workspace.hpp"
#include "../nn/kernels.hpp"
#include "diagnostics.hpp"
#include "fusion.hpp"
#include "memory_plan.hpp"
#include "plan.hpp"
#include "thread_pool.hpp"

namespace inn::error {

template <class Node, class ModuleSpec, class Space>
struct module_has_no_implementation_for_this_memory_space {
    static_assert(check_failed<Node, ModuleSpec, Space>,
                  "inn: the module of the node named above cannot run in this memory space: its "
                  "spec has no bind<Scalar, signature, Space> (see docs/design.md, 'Writing a "
                  "module', and docs/modules.md for which modules each backend has)");
};

template <class Node, class ModuleSpec>
struct module_has_no_bind {
    static_assert(check_failed<Node, ModuleSpec>,
                  "inn: the module of the node named above has no member template "
                  "`template <Scalar S, signature Sig> struct bind` that takes its signature "
                  "(see docs/tutorial.md, 'Custom modules', and docs/design.md, 'Writing a "
                  "module')");
};

template <class Node, class ModuleSpec, class Bound, class S, class Space>
struct module_does_not_satisfy_BoundModule {
    static_assert(BoundModule<Bound, S, Space>,
                  "inn: the bound module of the node named above does not satisfy "
                  "inn::BoundModule: it needs `explicit bind(generator&)` and const `forward` "
                  "and `inverse` taking `const run_args<S>&` (see docs/design.md, 'Writing a "
                  "module')");
};

}  // namespace inn::error

namespace inn::graph {

namespace hana = boost::hana;

/// The node type at forward position K (Desc::nodes is a hana tuple of the node types).
template <class Desc, int K>
using node_at =
    typename decltype(+hana::at_c<std::size_t(Desc::plan.forward_order[K])>(Desc::nodes))::type;
template <class Desc, int K>
using module_spec_at = typename node_at<Desc, K>::module;

/// Stands in for a module that failed its checks, so that one mistake gives one error.
struct unbound_module {
    template <class... A>
    explicit unbound_module(A&&...) {}
    void forward(const auto&) const {}
    void inverse(const auto&) const {}
};

template <Scalar S, class Desc, int K, MemorySpace Space>
struct module_at_impl {
    // Named constant first: passing the array element straight as a class-type template
    // argument crashes GCC 12.
    static constexpr signature sig = Desc::plan.sig[Desc::plan.forward_order[K]];
    using spec = module_spec_at<Desc, K>;
    using bound = bind_in<spec, S, sig, Space>;
    static constexpr bool available = !std::is_void_v<bound>;
    static constexpr bool satisfies = [] {
        if constexpr (!available && std::is_same_v<Space, host>) {
            // no bind at all (a bind for another memory space would not help here)
            (void)error::module_has_no_bind<node_at<Desc, K>, spec>{};
            return false;
        } else if constexpr (!available) {
            (void)error::module_has_no_implementation_for_this_memory_space<node_at<Desc, K>,
                                                                             spec, Space>{};
            return false;
        } else {
            (void)error::module_does_not_satisfy_BoundModule<node_at<Desc, K>, spec, bound, S,
                                                             Space>{};
            return BoundModule<bound, S, Space>;
        }
    }();
    using type = std::conditional_t<satisfies, bound, unbound_module>;
};
/// The bound module at forward position K.
template <Scalar S, class Desc, int K, MemorySpace Space = host>
using module_at = typename module_at_impl<S, Desc, K, Space>::type;

/// 0, 1, ..., n_modules - 1 of a description, as hana integral constants.
template <class Desc>
constexpr auto module_positions =
    hana::make_range(hana::int_c<0>, hana::int_c<Desc::plan.n_modules>);

/// The bound module types in forward order, as a hana tuple of types.
template <Scalar S, class Desc, MemorySpace Space>
constexpr auto module_types = hana::unpack(module_positions<Desc>, [](auto... k) {
    return hana::tuple_t<module_at<S, Desc, decltype(k)::value, Space>...>;
});

/// Position of node type T in a hana tuple of node types, -1 if absent.
template <class T, class Nodes>
constexpr int position_in(const Nodes& nodes) {
    return hana::maybe(-1, [](auto i) { return int(i); },
                       hana::index_if(nodes, hana::equal.to(hana::type_c<T>)));
}
/// Position of node type T in the node list of a description, -1 if absent.
template <class T, class Desc>
constexpr int index_in() {
    return position_in<T>(Desc::nodes);
}

/// The shape of output `Slot` of `Node` (for an OutputNode: the shape it receives).
template <class Desc, class Node, int Slot>
struct node_output {
    static constexpr int i = index_in<Node, Desc>();
    static_assert(i >= 0, "inn: output_shape of a node that is not in this network");
    static constexpr dims value =
        Desc::plan.node[i].kind == node_kind::output
            ? Desc::plan.edge_shape[Desc::plan.edge_of(Desc::plan.node[i].in[0])]
            : Desc::plan.outs[i][Slot];
    using shape = shape_of<value>;
};

/// The values of one module's tensors, to put back when a call that initialised it fails.
template <Scalar S>
class tensor_snapshot {
  public:
    template <class B>
    explicit tensor_snapshot(B& module) {
        visit_tensors(module,
                      [&](const std::string&, const tensor_ref<S>& t) {
                          const auto n = std::size_t(t.shape.numel());
                          if (t.real) reals_.emplace_back(t.real, std::vector<S>(t.real, t.real + n));
                          if (t.integer)
                              ints_.emplace_back(t.integer,
                                                 std::vector<std::int64_t>(t.integer, t.integer + n));
                          if (t.flag) flags_.emplace_back(t.flag, *t.flag);
                      },
                      std::string());
    }
    void restore() const {
        for (const auto& [p, v] : reals_) std::copy(v.begin(), v.end(), p);
        for (const auto& [p, v] : ints_) std::copy(v.begin(), v.end(), p);
        for (const auto& [p, v] : flags_) *p = v;
    }

  private:
    std::vector<std::pair<S*, std::vector<S>>> reals_;
    std::vector<std::pair<std::int64_t*, std::vector<std::int64_t>>> ints_;
    std::vector<std::pair<bool*, bool>> flags_;
};

/// The bound modules and their buffers; runs the plan in either direction.
template <Scalar S, class Desc, MemorySpace Space = host>
class executor {
  public:
    static constexpr const auto& plan = Desc::plan;
    static constexpr int n_modules = plan.n_modules;
    static constexpr auto module_types = graph::module_types<S, Desc, Space>;
    using modules_type =
        typename decltype(hana::unpack(module_types, hana::template_<hana::tuple>))::type;

    explicit executor(generator& g)
        : modules_(hana::unpack(module_types, [&](auto... m) {
              // Braced initialisation evaluates left to right: modules draw from `g` in
              // FrEIA's order.
              return modules_type{typename decltype(m)::type(g)...};
          })) {}

    executor(const executor&) = default;
    executor& operator=(const executor&) = default;
    // A moved-from executor keeps no buffers and no workers; the network refuses calls on it.
    executor(executor&& o) noexcept
        : modules_(std::move(o.modules_)), buffer_(std::move(o.buffer_)), offset_(o.offset_),
          stride_(o.stride_), memory_(o.memory_), scratch_offset_(o.scratch_offset_),
          slice_scratch_(o.slice_scratch_), capacity_(std::exchange(o.capacity_, 0)),
          pool_(std::move(o.pool_)), fused_(std::move(o.fused_)), version_(o.version_),
          prepared_(o.prepared_), fixed_version_(o.fixed_version_),
          fixed_prepared_(o.fixed_prepared_), pending_init_(o.pending_init_), fuse_(o.fuse_),
          bf16_weights_(o.bf16_weights_), bf16_copies_(o.bf16_copies_),
          packed_weights_(o.packed_weights_) {}
    executor& operator=(executor&& o) noexcept {
        if (this != &o) {
            modules_ = std::move(o.modules_);
            buffer_ = std::move(o.buffer_);
            offset_ = o.offset_;
            stride_ = o.stride_;
            memory_ = o.memory_;
            scratch_offset_ = o.scratch_offset_;
            slice_scratch_ = o.slice_scratch_;
            capacity_ = std::exchange(o.capacity_, 0);
            pool_ = std::move(o.pool_);
            fused_ = std::move(o.fused_);
            version_ = o.version_;
            prepared_ = o.prepared_;
            fixed_version_ = o.fixed_version_;
            fixed_prepared_ = o.fixed_prepared_;
            pending_init_ = o.pending_init_;
            fuse_ = o.fuse_;
            bf16_weights_ = o.bf16_weights_;
            bf16_copies_ = o.bf16_copies_;
            packed_weights_ = o.packed_weights_;
            streamed_ = streamed_list(); // pointers into the modules before the move
        }
        return *this;
    }

    /// The modules, for reading. The non-const form may change parameters, so it marks them
    /// changed: the next call prepares the modules again.
    const modules_type& modules() const { return modules_; }
    modules_type& modules() {
        parameters_changed();
        return modules_;
    }

    /// Tells the executor that parameters changed behind its back.
    void parameters_changed() {
        ++version_;
        ++fixed_version_;
    }
    /// Tells the executor that only trainable tensors changed (an optimiser step): the copies
    /// of fixed weights (a soft permutation's packed matrix) stay as they are.
    void trainable_parameters_changed() { ++version_; }

    /// Runs every module's prepare() now (on this thread) unless nothing changed since the last
    /// time. Throws parameter_error naming the node and the full state_dict key.
    template <class Prefix>
    void prepare(const Prefix& prefix) {
        if (prepared_ == version_) return;
        const bool fixed_changed = fixed_prepared_ != fixed_version_;
        for_each_module_impl([&](auto k, auto& m) {
            try {
                prepare_module(m, fixed_changed);
            } catch (const parameter_error& e) {
                throw parameter_error(prefix(k.value) + "." + e.key(), e.problem(),
                                      "node '" + std::string(Desc::node_name(plan.forward_order[k.value])) + "'");
            }
        });
        bool waiting = false;
        for_each_module_impl([&](auto, const auto& m) { waiting = waiting || awaits_data_init(m); });
        pending_init_ = waiting;
        // The weights' bfloat16 copies follow their values (or are dropped when not wanted).
        if (bf16_weights_ || bf16_copies_)
            for_each_module_impl([&](auto, auto& m) {
                visit_tensors(
                    m,
                    [&](const std::string&, const tensor_ref<S>& t) {
                        if (!t.bf16 || !t.real || t.shape.rank != 2 ||
                            (!fixed_changed && !t.trainable))
                            return;
                        if (bf16_weights_) // W [out, in], packed as the products read it
                            nn::kernels::pack_bf16(t.real, index_t(t.shape.extent[0]),
                                                   index_t(t.shape.extent[1]), *t.bf16);
                        else
                            std::vector<std::uint16_t>().swap(*t.bf16);
                    },
                    std::string());
            });
        bf16_copies_ = bf16_weights_;
        // Streamed weights packed for the register tiles (nn::kernels::pack_weights), but not
        // those a trainer has attached a gradient to: they change every step, and repacking
        // them would cost more than the products gain.
        if (!streamed_.found) { // once: a visit builds key strings, which allocate
            for_each_module_impl([&](auto, auto& m) {
                visit_tensors(m,
                              [&](const std::string&, const tensor_ref<S>& t) {
                                  if (t.packed && t.real && t.shape.rank == 2)
                                      streamed_.weights.push_back(
                                          {t.real, t.packed, t.grad_slot, t.trainable,
                                           index_t(t.shape.extent[0]), index_t(t.shape.extent[1])});
                                  if (t.remake)
                                      streamed_.forms.push_back({t.remake, t.owner});
                              },
                              std::string());
            });
            streamed_.found = true;
        }
        for (const auto& w : streamed_.weights) {
            if (!w.trainable && !fixed_changed)
                continue; // its values and copy are as they were
            if (!packed_weights_ || (w.grad_slot && *w.grad_slot)) {
                w.packed->clear();
                continue;
            }
            w.packed->resize(nn::kernels::packed_size<S>(w.in, w.out));
            nn::kernels::pack_weights(w.real, w.in, w.out, w.packed->data());
        }
        // Forms made from several tensors (the small MLPs' ReLU units): each owner decides
        // which it keeps (with gradients attached, one for training).
        for (const auto& f : streamed_.forms)
            f.remake(f.owner);
        if constexpr (fusion.n_groups > 0) compose_fused();
        prepared_ = version_;
        fixed_prepared_ = fixed_version_;
    }

    /// Products of up to nn::kernels::bf16_max_batch samples read bfloat16 copies of their
    /// weights (network::use_bf16_weights); made at the next call's prepare.
    void use_bf16_weights(bool on) {
        if (on != bf16_weights_) parameters_changed();
        bf16_weights_ = on;
    }
    bool bf16_weights() const { return bf16_weights_; }

    /// Whether streamed weights keep a packed copy for the products of three or more samples
    /// (network::use_packed_weights); made or dropped at the next call's prepare.
    void use_packed_weights(bool on) {
        if (on != packed_weights_) parameters_changed();
        packed_weights_ = on;
    }
    bool packed_weights() const { return packed_weights_; }

    /// Sizes every buffer for `max_batch` samples: the only allocation of a network's life after
    /// construction (and set_threads).
    void reserve(index_t max_batch) {
        if (max_batch <= capacity_) return;
        // Every buffer starts on a 64-byte boundary, so results do not depend on where the
        // buffers happen to land (Eigen's kernels take different paths for aligned data).
        // The layout the switches ask for (all on unless a benchmark measures one off).
        // Laid out first, committed once the memory is there: a failed allocation (bad_alloc)
        // leaves the network as it was.
        const auto& t = nn::kernels::tuning();
        const memory_plan<plan>* chosen = &layouts[t.views ? 1 : 0][t.share_buffers ? 1 : 0];
        std::array<index_t, std::size_t(memory.max_edges)> region{};
        index_t total = 0;
        for (int c = 0; c < chosen->n_colours; ++c) {
            region[std::size_t(c)] = total;
            total += round_up(max_batch * chosen->width[c]);
        }
        const index_t scratch_offset = total;
        // One scratch area per thread, each for the largest slice it can be given.
        const int parts = threads();
        const index_t slice_scratch =
            round_up(scratch_size(parts > 1 ? slice_rows(max_batch, parts) : max_batch));
        total += slice_scratch * parts;
        buffer_.resize(total);
        memory_ = chosen;
        fuse_ = t.fuse_elementwise;
        for (int e = 0; e < plan.n_edges; ++e) {
            offset_[std::size_t(e)] =
                region[std::size_t(chosen->colour[chosen->root[e]])] + chosen->column[e];
            stride_[std::size_t(e)] = chosen->stride(e);
        }
        scratch_offset_ = scratch_offset;
        slice_scratch_ = slice_scratch;
        capacity_ = max_batch;
    }
    index_t capacity() const { return capacity_; }

    /// Threads that split each batch between them (1: run on the calling thread only). The
    /// workers are created here and live as long as the network; a call creates no thread.
    void set_threads(int threads) {
        threads = std::max(1, threads);
        if (threads == this->threads()) return;
        if (!pool_)
            pool_.p = std::make_unique<thread_pool>();
        const index_t cap = capacity_;
        try {
            pool_->resize(threads); // on failure: no workers left
            capacity_ = 0;
            if (cap > 0)
                reserve(cap); // scratch for every thread
        } catch (...) {
            // Slices must never outnumber the scratch areas: one thread, with buffers for it
            // where the memory allows (else none: the next call sizes or refuses them).
            pool_->resize(1);
            capacity_ = 0;
            try {
                if (cap > 0)
                    reserve(cap);
            } catch (...) {
            }
            throw;
        }
    }
    int threads() const { return pool_ ? pool_->size() : 1; }

    /// Scalars of scratch one thread needs for `batch` samples (the largest any module asks).
    static constexpr index_t scratch_size(index_t batch) {
        return hana::fold_left(module_types, index_t(0), [&](index_t m, auto t) {
            using B = typename decltype(t)::type;
            return std::max({m, scratch_size_of<B>(pass::forward, batch),
                             scratch_size_of<B>(pass::inverse, batch)});
        });
    }

    view<S, Space> edge(int e) {
        return {buffer_.data() + offset_[std::size_t(e)], stride_[std::size_t(e)]};
    }

    /// Whether threads may split a batch: no module declares `batch_parallel = false`.
    static constexpr bool batch_parallel = hana::unpack(module_types, [](auto... t) {
        return (batch_parallel_of<typename decltype(t)::type>() && ...);
    });

    /// What each module declares of itself as a view, in forward order.
    static constexpr std::array<view_kind, std::size_t(n_modules)> views =
        hana::unpack(module_types, [](auto... t) {
            return std::array<view_kind, std::size_t(n_modules)>{
                view_of<typename decltype(t)::type>()...};
        });
    /// Which modules describe themselves as affine gathers (host only), and which are views
    /// that leave elements in place, in forward order; from them the chains that run as one
    /// pass (graph/fusion.hpp).
    static constexpr std::array<bool, std::size_t(n_modules)> affine_modules =
        hana::unpack(module_types, [](auto... t) {
            return std::array<bool, std::size_t(n_modules)>{
                (std::is_same_v<Space, host> &&
                 AffineElementwise<typename decltype(t)::type, S>)...};
        });
    static constexpr std::array<bool, std::size_t(n_modules)> identity_modules =
        hana::unpack(module_types, [](auto... t) {
            return std::array<bool, std::size_t(n_modules)>{
                (view_of<typename decltype(t)::type>() != view_kind::none)...};
        });
    static constexpr fusion_plan<plan> fusion{affine_modules.data(), identity_modules.data()};
    /// Where the buffers between modules live (graph/memory_plan.hpp), computed at compile
    /// time; `layouts[views][sharing]` with either analysis off, for measuring them. A fused
    /// chain's input and output are kept apart in all of them.
    static constexpr memory_plan<plan> memory{views.data(), true, true, {}, fusion};
    static constexpr memory_plan<plan> layouts[2][2] = {
        {{views.data(), false, false, {}, fusion}, {views.data(), false, true, {}, fusion}},
        {{views.data(), true, false, {}, fusion}, memory}};

    /// Whether chains run fused (the switch fuse_elementwise, read by reserve).
    bool fusing() const { return fuse_; }

    /// Runs every module; `ljd` (batch entries) must be zeroed by the caller, and the modules
    /// prepared. With threads, the batch is cut into one slice of samples per thread and each
    /// thread runs the whole plan on its slice, in its own scratch area (modules see a smaller
    /// batch; samples are independent). An exception in any slice is rethrown here once all
    /// slices have stopped.
    template <bool Forward>
    void run(index_t batch, bool jac, S* ljd) {
        if (pending_init_) {
            run_initialising<Forward>(batch, jac, ljd);
            return;
        }
        const int parts = threads();
        if (parts == 1 || !splittable(batch)) {
            run_rows<Forward>(0, batch, jac, ljd, scratch(0));
            return;
        }
        struct context {
            executor* self;
            index_t batch, rows;
            bool jac;
            S* ljd;
        } ctx{this, batch, slice_rows(batch, parts), jac, ljd};
        pool_->run(
            [](void* p, int part) {
                auto& c = *static_cast<context*>(p);
                const index_t b0 = std::min(c.batch, part * c.rows);
                const index_t n = std::min(c.batch - b0, c.rows);
                if (n > 0)
                    c.self->template run_rows<Forward>(b0, n, c.jac, c.ljd + b0,
                                                       c.self->scratch(part));
            },
            &ctx);
    }

    /// Applies `f(index, module)` to every module in forward order (index: an integral
    /// constant). The non-const form marks the parameters changed.
    template <class F>
    void for_each_module(F&& f) {
        parameters_changed();
        for_each_module_impl(f);
    }
    template <class F>
    void for_each_module(F&& f) const {
        hana::for_each(module_positions<Desc>, [&](auto k) { f(k, hana::at(modules_, k)); });
    }

  private:
    template <class F>
    void for_each_module_impl(F&& f) {
        hana::for_each(module_positions<Desc>, [&](auto k) { f(k, hana::at(modules_, k)); });
    }

    static constexpr index_t round_up(index_t n) {
        constexpr index_t align = 64 / index_t(sizeof(S));
        return (n + align - 1) / align * align;
    }
    S* scratch(int part) { return buffer_.data() + scratch_offset_ + part * slice_scratch_; }
    /// Samples [b0, b0 + n) of edge e.
    view<S, Space> edge_rows(int e, index_t b0) {
        const index_t stride = stride_[std::size_t(e)];
        return {buffer_.data() + offset_[std::size_t(e)] + b0 * stride, stride};
    }

    template <bool Forward>
    void run_rows(index_t b0, index_t batch, bool jac, S* ljd, S* scratch) {
        hana::for_each(module_positions<Desc>, [&](auto k) {
            step<Forward, decltype(k)::value, false>(b0, batch, jac, ljd, scratch);
        });
    }

    // The first call after construction (or after loading an uninitialised state) of a network
    // with data-initialised modules: whole, on this thread; all-or-nothing.
    template <bool Forward>
    void run_initialising(index_t batch, bool jac, S* ljd) {
        std::vector<tensor_snapshot<S>> undo;
        try {
            hana::for_each(module_positions<Desc>, [&](auto k) {
                step<Forward, decltype(k)::value, true>(0, batch, jac, ljd, scratch(0), &undo);
            });
        } catch (...) {
            for (auto it = undo.rbegin(); it != undo.rend(); ++it) it->restore();
            throw;
        }
        initialisation_done();
    }

    template <bool Forward, int Step, bool Initialising>
    void step(index_t b0, index_t batch, bool jac, S* ljd, S* scratch,
              std::vector<tensor_snapshot<S>>* undo = nullptr) {
        constexpr int node = Forward ? plan.forward_order[Step] : plan.inverse_order[Step];
        constexpr int k = plan.module_index[node];  // its forward step
        constexpr int g = fusion.group[k];
        if constexpr (g >= 0 && !Initialising) {
            if (fuse_) {  // the chain's first module in this direction runs it all
                if constexpr (fusion.leader(g, Forward) == k) {
                    constexpr int x = plan.edge_of(plan.node[fusion.first_node(g)].in[0]);
                    constexpr int z = plan.edge[fusion.last_node(g)][0];
                    fused_[std::size_t(g)].run(Forward, batch, edge_rows(Forward ? x : z, b0),
                                               edge_rows(Forward ? z : x, b0), ljd, jac);
                }
                return;
            }
        }
        if (memory_->is_view[node]) return;  // its outputs are its inputs' memory
        // A FeedForwardNode is not inverted: in both directions it computes its output (a
        // condition) from its sources.
        constexpr bool computes = Forward || plan.node[node].kind == node_kind::feed_forward;
        const auto t = node_tensors<node, computes>([&](int e) { return edge_rows(e, b0); });
        call<node, computes, Initialising>({batch, t.in, t.out, t.cond, ljd, jac, scratch, b0},
                                           undo);
    }

  public:
    // ---- one module call, for this executor and the training executor (graph/backprop.hpp) ----

    /// The views of one node's tensors for one call (a class of its own: nvcc's front end
    /// crashes on a local class here).
    template <std::size_t NRead, std::size_t NWrite, std::size_t NCond>
    struct node_views {
        std::array<cview<S, Space>, NRead> in;
        std::array<view<S, Space>, NWrite> out;
        std::array<cview<S, Space>, NCond> cond;
    };

    /// The views of a node's tensors for one call in one direction: `in` what it reads (forward:
    /// its inputs, inverse: its outputs), `out` what it writes, `cond` its conditions; `edge(e)`
    /// gives the view of edge e.
    template <int Node, bool Forward, class Edge>
    static auto node_tensors(Edge&& edge) {
        constexpr const graph::node_info& n = plan.node[Node];
        constexpr int n_out = plan.outs[Node].count;
        constexpr int n_read = Forward ? n.n_in : n_out;
        constexpr int n_write = Forward ? n_out : n.n_in;
        node_views<std::size_t(n_read), std::size_t(n_write), std::size_t(n.n_cond)> t;
        for (int i = 0; i < n.n_in; ++i) {
            const view<S, Space> v = edge(plan.edge_of(n.in[i]));
            if constexpr (Forward)
                t.in[std::size_t(i)] = v;
            else
                t.out[std::size_t(i)] = v;
        }
        for (int s = 0; s < n_out; ++s) {
            const view<S, Space> v = edge(plan.edge[Node][s]);
            if constexpr (Forward)
                t.out[std::size_t(s)] = v;
            else
                t.in[std::size_t(s)] = v;
        }
        for (int c = 0; c < n.n_cond; ++c) t.cond[std::size_t(c)] = edge(plan.edge_of(n.cond[c]));
        return t;
    }

    /// Runs the module of `Node` in one direction; while `Initialising`, first initialises it
    /// from the data if it awaits that, remembering its state in `undo`. A sample_error gets
    /// the node's name.
    template <int Node, bool Forward, bool Initialising = false>
    void call(const run_args<S, Space>& args, std::vector<tensor_snapshot<S>>* undo = nullptr) {
        auto& m = hana::at_c<std::size_t(plan.module_index[Node])>(modules_);
        try {
            if constexpr (Initialising) {
                if constexpr (requires { m.initialize(args); }) {
                    if (awaits_data_init(m)) {
                        undo->emplace_back(m);
                        m.initialize(args);
                    }
                }
            }
            if constexpr (Forward)
                std::as_const(m).forward(args);
            else
                std::as_const(m).inverse(args);
        } catch (const sample_error& e) {
            throw sample_error(e.sample(), e.problem(), where(Node));
        }
    }

    /// The bound module of `Node` (for reading; calls go through call()).
    template <int Node>
    const auto& module_of() const {
        return hana::at_c<std::size_t(plan.module_index[Node])>(modules_);
    }

    /// The memory layout in use (views skip their modules).
    const memory_plan<plan>& layout() const { return *memory_; }
    bool pending_initialisation() const { return pending_init_; }
    /// After a call that ran the modules' initialize(): whether any still awaits data.
    void initialisation_done() {
        bool waiting = false;
        for_each_module_impl([&](auto, const auto& m) { waiting = waiting || awaits_data_init(m); });
        pending_init_ = waiting;
        // Fused chains compose the parameters the initialisation has just set.
        if constexpr (fusion.n_groups > 0) parameters_changed();
    }
    thread_pool* pool() const { return pool_ ? pool_.operator->() : nullptr; }

    // Samples per slice: an equal share, in multiples of 16 (whole SIMD groups of the
    // sample-vectorised kernels) once the batch is large enough for that.
    static constexpr index_t slice_rows(index_t batch, int parts) {
        const index_t share = (batch + parts - 1) / parts;
        return batch >= 32 ? (share + 15) / 16 * 16 : share;
    }
    // Whether a batch is worth splitting and may be split: small samples need enough of them to
    // pay for the hand-off; a module may opt out with `batch_parallel = false`.
    static bool splittable(index_t batch) {
        if constexpr (!batch_parallel) {
            return false;
        } else {
            constexpr index_t sample =
                plan.edge_shape[plan.n_inputs > 0 ? plan.input_edge[0] : 0].size();
            return batch >= 2 && (batch >= 32 || sample >= 256);
        }
    }


  private:
    // Each chain's maps from its modules' forms (graph/fusion.hpp). Sized once: later calls
    // (an optimiser step's prepare) allocate nothing.
    void compose_fused() {
        for (int g = 0; g < fusion.n_groups; ++g)
            fused_[std::size_t(g)].begin(fusion.size(g), fusion.elementwise[g]);
        hana::for_each(module_positions<Desc>, [&](auto k) {
            constexpr int g = fusion.group[k.value];
            if constexpr (g >= 0 && fusion.member[k.value] >= 0) {
                const auto& m = hana::at(modules_, k);
                m.affine_form(pass::forward, fuse_form_[0]);
                m.affine_form(pass::inverse, fuse_form_[1]);
                fused_[std::size_t(g)].add(fusion.member[k.value], fuse_form_[0], fuse_form_[1]);
            }
        });
        for (auto& f : fused_) f.end();
    }

    static std::string where(int node) {
        return "node '" + std::string(Desc::node_name(node)) + "'";
    }

    modules_type modules_;
    aligned_buffer<S> buffer_;
    std::array<index_t, std::size_t(plan.n_edges) + 1> offset_{};
    std::array<index_t, std::size_t(plan.n_edges) + 1> stride_{};
    const memory_plan<plan>* memory_ = &memory;
    index_t scratch_offset_ = 0;
    index_t slice_scratch_ = 0;
    index_t capacity_ = 0;
    // Workers exist once set_threads(n > 1) asked for them; a copied network gets its own.
    struct pool_holder {
        std::unique_ptr<thread_pool> p;
        pool_holder() = default;
        pool_holder(const pool_holder& o)
            : p(o.p ? std::make_unique<thread_pool>(o.p->size()) : nullptr) {}
        pool_holder(pool_holder&&) noexcept = default;
        pool_holder& operator=(const pool_holder& o) {
            if (this != &o) p = o.p ? std::make_unique<thread_pool>(o.p->size()) : nullptr;
            return *this;
        }
        pool_holder& operator=(pool_holder&&) noexcept = default;
        thread_pool* operator->() const { return p.get(); }
        explicit operator bool() const { return bool(p); }
    } pool_;
    std::array<fused_chain<S>, std::size_t(fusion.n_groups)> fused_{};
    std::array<affine_gather<S>, 2> fuse_form_{};  // one module's forms, while composing
    std::uint64_t version_ = 1;   // bumped by every non-const access to the parameters
    std::uint64_t prepared_ = 0;  // the version the modules were last prepared for
    // The same for the tensors that are not trainable: an optimiser step leaves them alone.
    std::uint64_t fixed_version_ = 1;
    std::uint64_t fixed_prepared_ = 0;
    bool pending_init_ = false;   // a module awaits data initialisation (known once prepared)
    bool fuse_ = true;            // chains of element-wise modules run as one pass
    bool bf16_weights_ = false;   // streamed weights read from bfloat16 copies
    bool bf16_copies_ = false;    // the modules hold such copies now
    bool packed_weights_ = true;  // streamed weights keep a packed copy (no gradient attached)

    // The streamed weights of modules_, found at the first prepare. Pointers into modules_, so
    // a copied or moved executor does not take them: it finds its own.
    struct streamed_weight {
        const S* real;
        aligned_vector<S>* packed;
        S** grad_slot;
        bool trainable;
        index_t out, in;
    };
    struct derived_form {
        void (*remake)(void*);
        void* owner;
    };
    struct streamed_list {
        std::vector<streamed_weight> weights;
        std::vector<derived_form> forms;
        bool found = false;
        streamed_list() = default;
        streamed_list(const streamed_list&) {}
        streamed_list(streamed_list&&) noexcept {}
        streamed_list& operator=(const streamed_list&) { return *this = streamed_list(); }
        streamed_list& operator=(streamed_list&&) noexcept {
            weights.clear();
            forms.clear();
            found = false;
            return *this;
        }
    } streamed_;
};

}  // namespace inn::graph
