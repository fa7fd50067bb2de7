#pragma once
// The trainable parameters of a network as optimisers see them: every trainable real tensor, in
// visit (state_dict) order, with where its values and its gradient live and where it starts in
// one flat array of all their scalars. Optimisers keep their state (moments, momentum buffers)
// in flat arrays laid out so; gradient clipping and checkpoints walk the same list.
//
// Building the list visits the network once and allocates (the keys); afterwards it reads
// pointers only, so an optimiser step or a clipping call allocates nothing. The list points
// into the network: the network must outlive it and stay where it is. A network that was moved
// from, or that another network was moved into (network::storage_epoch), makes every use throw
// usage_error; one moved into another object is not followed.

#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/errors.hpp"
#include "../core/parameters.hpp"

namespace inn::train {

/// What optimisers need of a network: a scalar type, visit(), and the change notification.
template <class Net>
concept TrainableNetwork = requires(Net& net) {
    typename Net::scalar;
    net.parameters_changed();
    { net.moved_from() } -> std::convertible_to<bool>;
};

/// The trainable real tensors of one network, in visit order, with their offsets in a flat
/// array of all their scalars.
template <Scalar S>
class parameter_list {
  public:
    /// One trainable tensor.
    struct entry {
        std::string key;         // its state_dict key
        tensor_shape shape;
        S* value = nullptr;      // numel() values, in the network
        S** grad_slot = nullptr; // where the network keeps its gradient pointer (null: none)
        index_t offset = 0;      // where it starts in the flat arrays
        index_t size = 0;        // numel()

        /// The gradient while a trainer has attached one, else null.
        S* grad() const { return *grad_slot; }
    };

    /// Visits `net` once (a visit counts as a parameter change). Throws usage_error for a
    /// trainable tensor that lives in another memory space or offers no gradient slot.
    template <TrainableNetwork Net>
        requires std::same_as<typename Net::scalar, S>
    explicit parameter_list(Net& net)
        : net_(&net), changed_(&notify_change<Net>),
          moved_([](const void* n) { return bool(static_cast<const Net*>(n)->moved_from()); }),
          epoch_(&epoch_of<Net>), epoch0_(epoch_of<Net>(&net)) {
        if (net.moved_from())
            throw usage_error("inn: an optimiser was given a network that was moved from");
        net.visit([&](const std::string& key, const tensor_ref<S>& t) {
            if (!t.trainable) return;
            if (!t.real)
                throw usage_error("inn: trainable parameter '" + key +
                                  "' does not live in host memory; the optimisers update host "
                                  "parameters only");
            if (!t.grad_slot)
                throw usage_error("inn: trainable parameter '" + key +
                                  "' has no gradient slot (its module's visit must pass "
                                  "parameter<S>::ref())");
            const auto n = index_t(t.shape.numel());
            entries_.push_back({key, t.shape, t.real, t.grad_slot, scalars_, n});
            scalars_ += n;
        });
    }

    std::span<const entry> entries() const { return entries_; }
    /// Scalars of all trainable tensors together (the length of an optimiser's flat arrays).
    index_t scalars() const { return scalars_; }
    /// Whether this list was built from `net` (the object at that address).
    bool refers_to(const void* net) const { return net == net_; }

    /// Throws usage_error if the network was moved from since.
    void check_usable(std::string_view who) const {
        if (moved_(net_))
            throw usage_error("inn: " + std::string(who) +
                              ": its network was moved from; build it again for the network "
                              "that now holds the parameters");
        if (epoch_(net_) != epoch0_)
            throw usage_error("inn: " + std::string(who) +
                              ": another network was moved into its network since it was "
                              "built, so the parameters it points to are gone; build it again");
    }
    /// Throws usage_error naming the first parameter without gradient storage: gradients exist
    /// only while a trainer is attached to the network.
    void require_gradients(std::string_view who) const {
        check_usable(who);
        for (const entry& e : entries_)
            if (!e.grad())
                throw usage_error("inn: " + std::string(who) + ": parameter '" + e.key +
                                  "' has no gradient storage; gradients exist while a trainer "
                                  "is attached to the network (inn::train::trainer t{net}) and "
                                  "hold dL/dθ after its step()");
    }
    /// Tells the network that the values of these (trainable) tensors changed: its modules are
    /// prepared again before the next call.
    void parameters_changed() const { changed_(net_); }

  private:
    // Optimisers write trainable tensors only: a network that can be told so keeps what it
    // derived from the others (network::trainable_parameters_changed).
    template <class Net>
    static void notify_change(void* net) {
        if constexpr (requires(Net& n) { n.trainable_parameters_changed(); })
            static_cast<Net*>(net)->trainable_parameters_changed();
        else
            static_cast<Net*>(net)->parameters_changed();
    }

    template <class Net>
    static std::uint64_t epoch_of(const void* net) {
        if constexpr (requires(const Net& n) { n.storage_epoch(); })
            return static_cast<const Net*>(net)->storage_epoch();
        else
            return 0;
    }

    std::vector<entry> entries_;
    index_t scalars_ = 0;
    void* net_;
    void (*changed_)(void*);
    bool (*moved_)(const void*);
    std::uint64_t (*epoch_)(const void*);
    std::uint64_t epoch0_;
};

/// Deduces the scalar: `parameter_list params{net};`.
template <TrainableNetwork Net>
parameter_list(Net&) -> parameter_list<typename Net::scalar>;

// ---- optimiser state, for checkpoints ---------------------------------------------------------
//
// Optimisers and schedules expose what a checkpoint must hold through
// `template <class V> void visit_state(V&& v)`, which calls, in a fixed order,
//
//   v.count(name, std::int64_t&)        an integer: the step count, a schedule's epoch
//   v.real(name, double&)               a hyper-parameter (lr, eps, ...)
//   v.flag(name, bool&)                 a switch (amsgrad, nesterov, ...)
//   v.per_parameter(name, std::vector<S>&)
//                                       state with one value per trainable scalar, flat in
//                                       parameter_list order (Adam's exp_avg, SGD's momentum)
//
// A saving visitor reads, a loading visitor writes (resizing per-parameter vectors to the
// list's scalars()). Which per-parameter arrays are visited may depend on the switches visited
// before them (max_exp_avg_sq only with amsgrad), so a loading visitor sets those first.
// train/checkpoint.hpp documents the file layout.

}  // namespace inn::train
