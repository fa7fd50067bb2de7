#pragma once
// Checkpoints: a network's parameters, an optimiser's state and optionally a learning-rate
// schedule's, in one safetensors file, so that training stops and resumes exactly where it was:
// a resumed run continues bit for bit as if it had never stopped (same data, same threads).
//
//   inn::train::save_checkpoint(net, opt, "run.safetensors");    // or (net, opt, sched, path)
//   ...
//   Net net;  inn::train::trainer t{net};  inn::train::Adam opt{net};
//   inn::train::load_checkpoint(net, opt, "run.safetensors");    // restores all three
//
// Layout (S = the network's scalar: F32 for float, F64 for double):
//
//   <state_dict key>                        every parameter and buffer of the network, as
//                                           inn::save_safetensors writes them (FrEIA's keys)
//   optimizer.step                          I64 []  steps taken
//   optimizer.<hyper-parameter>             F64 []  lr, beta1, beta2, eps, weight_decay (Adam,
//                                           AdamW); lr, momentum, dampening, weight_decay (SGD)
//   optimizer.<switch>                      BOOL [] amsgrad, maximize (Adam, AdamW);
//                                           nesterov, maximize (SGD)
//   optimizer.state.<key>.exp_avg           S, the parameter's shape     (Adam, AdamW)
//   optimizer.state.<key>.exp_avg_sq        S                            (Adam, AdamW)
//   optimizer.state.<key>.max_exp_avg_sq    S                            (amsgrad only)
//   optimizer.state.<key>.momentum_buffer   S                            (SGD, momentum != 0)
//   scheduler.last_epoch                    I64 []  (with a schedule)
//   scheduler.step_size                     I64 []  (StepLR)
//   scheduler.gamma, .base_lr, .last_lr     F64 []
//   __metadata__                            format = "inn.checkpoint.v1",
//                                           optimizer = "Adam" | "AdamW" | "SGD",
//                                           scheduler = "StepLR" | "ExponentialLR" (if any)
//
// <key> runs over the trainable parameters (optimiser's parameters(), visit order). The names
// follow torch's optimizer.state_dict() (exp_avg, momentum_buffer, ...); as torch's
// load_state_dict, loading restores the hyper-parameters too (the learning rate a schedule
// had reached, for one).
//
// Loading is all-or-nothing: the file must hold exactly this layout for this network and
// this optimiser (and schedule): a missing or unexpected key, a wrong shape, another
// optimiser's or schedule's state, or invalid hyper-parameters are an io_error naming the file
// and the key, and then the network, the optimiser and the schedule are all left unchanged.

#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/errors.hpp"
#include "../io/safetensors.hpp"
#include "../io/state_dict.hpp"
#include "parameter_list.hpp"

namespace inn::train {

/// An optimiser a checkpoint can hold: Adam, AdamW, SGD, or one of the same shape.
template <class Opt>
concept CheckpointOptimizer = requires(Opt& o, const Opt& c) {
    typename Opt::scalar;
    { Opt::kind } -> std::convertible_to<std::string_view>;
    { c.parameters() } -> std::same_as<const parameter_list<typename Opt::scalar>&>;
    c.check();
};

/// A schedule a checkpoint can hold: StepLR, ExponentialLR, or one of the same shape.
template <class Sched>
concept CheckpointSchedule = requires(const Sched& s) {
    { Sched::kind } -> std::convertible_to<std::string_view>;
    s.check();
};

/// The tensors and metadata of a checkpoint, before they become a file.
struct checkpoint_contents {
    std::vector<io::tensor_to_write> tensors;
    std::map<std::string, std::string> metadata;
};

namespace internal {

inline constexpr std::string_view checkpoint_format = "inn.checkpoint.v1";
inline constexpr std::string_view optimizer_prefix = "optimizer.";
inline constexpr std::string_view scheduler_prefix = "scheduler.";

/// Appends an optimiser's or a schedule's state to a checkpoint (visit_state protocol).
template <Scalar S>
struct state_saver {
    std::string prefix;
    const parameter_list<S>* params = nullptr;  // for per_parameter
    std::vector<io::tensor_to_write>* out = nullptr;

    void count(std::string_view name, const std::int64_t& v) {
        out->push_back(io::make_tensor<std::int64_t>(prefix + std::string(name), {},
                                                     std::span<const std::int64_t>(&v, 1)));
    }
    void real(std::string_view name, const double& v) {
        out->push_back(io::make_tensor<double>(prefix + std::string(name), {},
                                               std::span<const double>(&v, 1)));
    }
    void flag(std::string_view name, const bool& v) {
        out->push_back(io::make_tensor<bool>(prefix + std::string(name), {},
                                             std::span<const bool>(&v, 1)));
    }
    void per_parameter(std::string_view name, const std::vector<S>& v) {
        for (const auto& e : params->entries())
            out->push_back(io::make_tensor<S>(
                prefix + "state." + e.key + "." + std::string(name), e.shape.as_vector(),
                std::span<const S>(v.data() + e.offset, std::size_t(e.size))));
    }
};

/// Reads an optimiser's or a schedule's state from a checkpoint into a staging copy, checking
/// every key and shape (visit_state protocol).
template <Scalar S>
struct state_loader {
    const io::safetensors_file* file = nullptr;
    std::string prefix;
    std::string_view owner;  // "Adam", "StepLR": for messages
    const parameter_list<S>* params = nullptr;
    std::set<std::string, std::less<>>* consumed = nullptr;

    const io::tensor_info& entry(const std::string& key, const std::vector<std::int64_t>& shape) {
        const io::tensor_info* t = file->find(key);
        if (!t)
            throw io_error(file->source(), key,
                           "missing: " + std::string(owner) +
                               "'s state needs it (is this a checkpoint of this network with "
                               "this optimiser and its settings?)");
        if (t->shape != shape)
            throw io_error(file->source(), key,
                           "has shape " + io::detail::shape_string(t->shape) + ", " +
                               std::string(owner) + " expects " + io::detail::shape_string(shape));
        consumed->insert(key);
        return *t;
    }
    void count(std::string_view name, std::int64_t& v) {
        const std::string key = prefix + std::string(name);
        file->copy_to(entry(key, {}), std::span<std::int64_t>(&v, 1));
        if (v < 0) throw io_error(file->source(), key, "is negative (" + std::to_string(v) + ")");
        // Counters go on from here (steps, epochs, ++ each): one near int64's end could not,
        // and no run takes 2^62 steps.
        if (v > std::numeric_limits<std::int64_t>::max() / 2)
            throw io_error(file->source(), key,
                           "is " + std::to_string(v) + ", beyond any count a run reaches (2^62)");
    }
    void real(std::string_view name, double& v) {
        file->copy_to(entry(prefix + std::string(name), {}), std::span<double>(&v, 1));
    }
    void flag(std::string_view name, bool& v) {
        file->copy_to(entry(prefix + std::string(name), {}), std::span<bool>(&v, 1));
    }
    void per_parameter(std::string_view name, std::vector<S>& v) {
        v.resize(std::size_t(params->scalars()));
        for (const auto& e : params->entries()) {
            const std::string key = prefix + "state." + e.key + "." + std::string(name);
            file->copy_to(entry(key, e.shape.as_vector()),
                          std::span<S>(v.data() + e.offset, std::size_t(e.size)));
        }
    }
};

template <class Net, class Opt>
void check_pairing(Net& net, const Opt& opt, std::string_view who) {
    if (!opt.parameters().refers_to(&net))
        throw usage_error("inn: " + std::string(who) +
                          ": the optimiser was made for another network");
    opt.parameters().check_usable(who);
}

template <class Net, CheckpointOptimizer Opt, class Sched>
checkpoint_contents make_checkpoint(Net& net, Opt& opt, Sched* sched) {
    using S = typename Net::scalar;
    check_pairing(net, opt, "make_checkpoint");
    checkpoint_contents c;
    std::as_const(net).visit([&](const std::string& key, const tensor_ref<S>& t) {
        const auto shape = t.shape.as_vector();
        const auto n = std::size_t(t.shape.numel());
        if (t.real)
            c.tensors.push_back(io::make_tensor(key, shape, std::span<const S>(t.real, n)));
        else if (t.integer)
            c.tensors.push_back(
                io::make_tensor(key, shape, std::span<const std::int64_t>(t.integer, n)));
        else if (t.flag)
            c.tensors.push_back(io::make_tensor(key, shape, std::span<const bool>(t.flag, n)));
        else
            throw usage_error("inn: make_checkpoint: tensor '" + key +
                              "' does not live in host memory");
    });
    opt.visit_state(state_saver<S>{std::string(optimizer_prefix), &opt.parameters(), &c.tensors});
    c.metadata["format"] = std::string(checkpoint_format);
    c.metadata["optimizer"] = std::string(Opt::kind);
    if constexpr (!std::is_void_v<Sched>) {
        sched->visit_state(state_saver<S>{std::string(scheduler_prefix), nullptr, &c.tensors});
        c.metadata["scheduler"] = std::string(Sched::kind);
    }
    return c;
}

inline std::string metadata_value(const io::safetensors_file& file, std::string_view key) {
    const auto it = file.metadata().find(key);
    return it == file.metadata().end() ? std::string() : it->second;
}

template <class Net, CheckpointOptimizer Opt, class Sched>
void load_checkpoint(Net& net, Opt& opt, Sched* sched, const io::safetensors_file& file) {
    using S = typename Net::scalar;
    static_assert(std::same_as<typename Opt::scalar, S>,
                  "inn: load_checkpoint: the optimiser's scalar is not the network's");
    check_pairing(net, opt, "load_checkpoint");
    const std::string& source = file.source();
    const std::string format = metadata_value(file, "format");
    if (format != checkpoint_format)
        throw io_error(source, "not an inn checkpoint: __metadata__ \"format\" is \"" + format +
                                   "\", expected \"" + std::string(checkpoint_format) +
                                   "\" (a plain state_dict loads with inn::load_safetensors)");
    const std::string opt_kind = metadata_value(file, "optimizer");
    if (opt_kind != Opt::kind)
        throw io_error(source, "the checkpoint holds the state of optimiser \"" + opt_kind +
                                   "\", not of \"" + std::string(Opt::kind) + "\"");
    const std::string sched_kind = metadata_value(file, "scheduler");
    if constexpr (std::is_void_v<Sched>) {
        if (!sched_kind.empty())
            throw io_error(source, "the checkpoint holds the state of schedule \"" +
                                       sched_kind + "\": pass the schedule to load_checkpoint");
    } else {
        if (sched_kind.empty())
            throw io_error(source, "the checkpoint holds no schedule state, but schedule \"" +
                                       std::string(Sched::kind) + "\" was given to restore");
        if (sched_kind != Sched::kind)
            throw io_error(source, "the checkpoint holds the state of schedule \"" + sched_kind +
                                       "\", not of \"" + std::string(Sched::kind) + "\"");
    }

    // Stage the optimiser's (and schedule's) state in copies; commit only when everything fits.
    std::set<std::string, std::less<>> consumed;
    Opt staged = opt;
    staged.visit_state(state_loader<S>{&file, std::string(optimizer_prefix), Opt::kind,
                                       &opt.parameters(), &consumed});
    try {
        staged.check();
    } catch (const data_error& e) {
        throw io_error(source, std::string("the optimiser's hyper-parameters are invalid: ") +
                                   e.what());
    }
    using staged_schedule = std::conditional_t<std::is_void_v<Sched>, int, Sched>;
    std::optional<staged_schedule> staged_sched;
    if constexpr (!std::is_void_v<Sched>) {
        staged_sched.emplace(*sched);
        staged_sched->visit_state(state_loader<S>{&file, std::string(scheduler_prefix),
                                                  Sched::kind, nullptr, &consumed});
        try {
            staged_sched->check();
        } catch (const data_error& e) {
            throw io_error(source, std::string("the schedule's settings are invalid: ") +
                                       e.what());
        }
    }
    for (const auto& t : file.tensors()) {
        const std::string_view name = t.name;
        if ((name.starts_with(optimizer_prefix) || name.starts_with(scheduler_prefix)) &&
            !consumed.contains(name))
            throw io_error(source, t.name,
                           "unexpected: the " + std::string(Opt::kind) +
                               " optimiser (with its settings) or the schedule has no such state");
    }
    // The network last: it checks its own keys and is left unchanged if they do not fit.
    load_state_dict(net, file,
                    {.strict = true,
                     .ignore_prefixes = {std::string(optimizer_prefix),
                                         std::string(scheduler_prefix)}});
    opt = std::move(staged);
    if constexpr (!std::is_void_v<Sched>) *sched = std::move(*staged_sched);
}

}  // namespace internal

/// The checkpoint of `net` and `opt` (and `sched`) as tensors and metadata (save_checkpoint
/// writes them). usage_error if `opt` was made for another network.
template <class Net, CheckpointOptimizer Opt>
checkpoint_contents make_checkpoint(Net& net, Opt& opt) {
    return internal::make_checkpoint<Net, Opt, void>(net, opt, nullptr);
}
template <class Net, CheckpointOptimizer Opt, CheckpointSchedule Sched>
checkpoint_contents make_checkpoint(Net& net, Opt& opt, Sched& sched) {
    return internal::make_checkpoint(net, opt, &sched);
}

/// Writes the checkpoint of `net`, `opt` (and `sched`) to `path` (layout above).
template <class Net, CheckpointOptimizer Opt>
void save_checkpoint(Net& net, Opt& opt, const std::filesystem::path& path) {
    const checkpoint_contents c = make_checkpoint(net, opt);
    io::write_safetensors(path, c.tensors, c.metadata);
}
template <class Net, CheckpointOptimizer Opt, CheckpointSchedule Sched>
void save_checkpoint(Net& net, Opt& opt, Sched& sched, const std::filesystem::path& path) {
    const checkpoint_contents c = make_checkpoint(net, opt, sched);
    io::write_safetensors(path, c.tensors, c.metadata);
}

/// Restores `net`, `opt` (and `sched`) from a checkpoint, all or nothing (see above).
template <class Net, CheckpointOptimizer Opt>
void load_checkpoint(Net& net, Opt& opt, const io::safetensors_file& file) {
    internal::load_checkpoint<Net, Opt, void>(net, opt, nullptr, file);
}
template <class Net, CheckpointOptimizer Opt, CheckpointSchedule Sched>
void load_checkpoint(Net& net, Opt& opt, Sched& sched, const io::safetensors_file& file) {
    internal::load_checkpoint(net, opt, &sched, file);
}
template <class Net, CheckpointOptimizer Opt>
void load_checkpoint(Net& net, Opt& opt, const std::filesystem::path& path) {
    load_checkpoint(net, opt, io::safetensors_file::read(path));
}
template <class Net, CheckpointOptimizer Opt, CheckpointSchedule Sched>
void load_checkpoint(Net& net, Opt& opt, Sched& sched, const std::filesystem::path& path) {
    load_checkpoint(net, opt, sched, io::safetensors_file::read(path));
}

}  // namespace inn::train
