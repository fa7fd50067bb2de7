#pragma once
// Parameters in and out of safetensors files, by FrEIA's state_dict keys.
//
//   inn::load_safetensors(net, "model.safetensors");              // strict: every key must match
//   auto r = inn::load_safetensors(net, path, {.strict = false});  // PyTorch's strict=False
//   // r.missing_keys: kept their values; r.unexpected_keys: in the file, not loaded
//   inn::save_safetensors(net, "out.safetensors");
//
// Loading is all-or-nothing: every tensor is checked and converted into staging storage first,
// and the network's tensors change only when all of them passed. A network with prepare()
// (re-derives caches, validates parameters) then checks the new values; if it refuses them,
// every tensor gets its previous value back and the load throws.
//
// A load that fails on a key says, beside the key, what the network and the file hold under
// that module's prefix (e.g. module_list.2.) and which FrEIA module the file's keys there look
// like: the usual mistake is a network whose modules are not those, or not in the order, of
// the Python model.

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/parameters.hpp"
#include "safetensors.hpp"

namespace inn {

struct load_options {
    /// Every key must match (PyTorch's strict=True): a tensor the network has and the file
    /// lacks ("missing"), or the file has and the network lacks ("unexpected"), is an io_error.
    /// With false both are accepted and reported in load_result; missing tensors keep their
    /// values. Shapes and dtypes must fit either way.
    bool strict = true;
    /// Keys starting with one of these are never "unexpected" (e.g. "test." in FrEIA fixtures).
    std::vector<std::string> ignore_prefixes = {};
};

/// What a load left out, with PyTorch's names. Empty after a strict load (which throws instead).
struct load_result {
    /// The network's tensors the file does not have, in visit order: they keep their values.
    std::vector<std::string> missing_keys;
    /// The file's tensors the network does not have (not loaded), in file order; keys under
    /// load_options::ignore_prefixes are not listed.
    std::vector<std::string> unexpected_keys;
};

namespace detail {

template <Scalar S>
struct staged_tensor {
    std::string key;
    tensor_ref<S> target;
    bool present = false;  // the file has it: committed with the load
    std::vector<S> real;
    std::vector<std::int64_t> integer;
    std::vector<bool> flags;
};

/// A copy of the values behind `t` (exactly one of the vectors is used).
template <Scalar S>
struct tensor_backup {
    std::vector<S> real;
    std::vector<std::int64_t> integer;
    std::vector<bool> flags;

    explicit tensor_backup(const tensor_ref<S>& t) {
        const auto n = std::size_t(t.shape.numel());
        if (t.real)
            real.assign(t.real, t.real + n);
        else if (t.integer)
            integer.assign(t.integer, t.integer + n);
        else
            flags.assign(t.flag, t.flag + n);
    }
    void restore(const tensor_ref<S>& t) const {
        if (t.real)
            std::copy(real.begin(), real.end(), t.real);
        else if (t.integer)
            std::copy(integer.begin(), integer.end(), t.integer);
        else
            std::copy(flags.begin(), flags.end(), t.flag);
    }
};

inline bool ignored(const std::string& key, const load_options& opt) {
    for (const auto& p : opt.ignore_prefixes)
        if (key.compare(0, p.size(), p) == 0) return true;
    return false;
}

// ---- diagnostics ---------------------------------------------------------------------------

/// The prefix of the FrEIA module a key belongs to: up to the last "module_list.<i>." in it
/// (SequenceINN and GraphINN name their modules so, nested ones nest), else up to its last '.'.
/// "module_list.0.subnet1.0.weight" -> "module_list.0.".
inline std::string module_prefix(std::string_view key) {
    constexpr std::string_view list = "module_list.";
    std::size_t end = std::string_view::npos;
    for (auto at = key.find(list); at != std::string_view::npos; at = key.find(list, at + 1)) {
        if (at != 0 && key[at - 1] != '.') continue;
        std::size_t j = at + list.size();
        while (j < key.size() && std::isdigit(static_cast<unsigned char>(key[j]))) ++j;
        if (j > at + list.size() && j + 1 < key.size() && key[j] == '.') end = j + 1;
    }
    if (end != std::string_view::npos) return std::string(key.substr(0, end));
    const auto dot = key.rfind('.');
    return dot == std::string_view::npos ? std::string() : std::string(key.substr(0, dot + 1));
}

/// State_dict keys of FrEIA's modules, by their first component: a module whose
/// keys have exactly these first components is probably that module.
struct known_module {
    std::string_view name;
    std::string_view keys;  // space-separated
};
inline constexpr std::array<known_module, 24> known_modules{{
    {"ActNorm", "log_scale loc is_initialized"},
    {"PermuteRandom", "perm perm_inv"},
    {"AllInOneBlock", "global_scale global_offset w_perm w_perm_inv subnet"},
    {"AllInOneBlock (Householder permutation)",
     "global_scale global_offset vk_householder w_0 subnet"},
    {"GLOWCouplingBlock/GINCouplingBlock", "subnet1 subnet2"},
    {"RNVPCouplingBlock", "subnet_s1 subnet_t1 subnet_s2 subnet_t2"},
    {"NICECouplingBlock", "F G"},
    {"AffineCouplingOneSided/ConditionalAffineTransform", "subnet"},
    {"RationalQuadraticSpline/LinearSpline", "spline_base subnet1 subnet2"},
    {"ElementwiseRationalQuadraticSpline",
     "spline_parameters bins min_bin_sizes default_domain identity_tails default_width"},
    {"ElementwiseRationalQuadraticSpline (conditional)",
     "bins min_bin_sizes default_domain identity_tails default_width subnet"},
    {"IRevNetDownsampling/IRevNetUpsampling", "downsample_kernel"},
    {"HaarDownsampling/HaarUpsampling", "haar_weights"},
    {"IResNetLayer", "residual"},
    {"InvAutoActTwoSided", "alpha_pos alpha_neg"},
    {"InvAutoAct", "alpha"},
    {"LearnedElementwiseScaling", "s"},
    {"InvAutoFC", "weights bias"},
    {"InvAutoConv2D", "bias conv2d"},
    {"OrthogonalTransform", "weights bias scaling"},
    {"HouseholderPerm", "Vs"},
    {"HouseholderPerm (fixed)", "Vs W weight"},
    {"FixedLinearTransform", "M M_inv b logDetM"},
    {"Fixed1x1Conv", "M M_inv logDetM"},
}};

/// The first components of keys relative to a module prefix, in order of first appearance,
/// with ".*" where a component has keys below it ("subnet1.*").
inline std::vector<std::string> first_components(const std::vector<std::string>& relative) {
    std::vector<std::string> names;
    std::vector<bool> nested;
    for (const auto& k : relative) {
        const auto dot = k.find('.');
        const std::string head = k.substr(0, dot);
        const auto at = std::find(names.begin(), names.end(), head);
        if (at == names.end()) {
            names.push_back(head);
            nested.push_back(dot != std::string::npos);
        } else if (dot != std::string::npos) {
            nested[std::size_t(at - names.begin())] = true;
        }
    }
    for (std::size_t i = 0; i < names.size(); ++i)
        if (nested[i]) names[i] += ".*";
    return names;
}

/// The FrEIA module whose keys these are (relative to its prefix), if any.
inline std::optional<std::string_view> module_like(const std::vector<std::string>& relative) {
    if (relative.empty()) return std::nullopt;
    std::set<std::string, std::less<>> have;
    for (const auto& k : relative) have.insert(k.substr(0, k.find('.')));
    for (const auto& m : known_modules) {
        std::set<std::string, std::less<>> want;
        for (std::size_t b = 0; b < m.keys.size();) {
            const auto e = std::min(m.keys.find(' ', b), m.keys.size());
            want.emplace(m.keys.substr(b, e - b));
            b = e + 1;
        }
        if (want == have) return m.name;
    }
    return std::nullopt;
}

inline std::string listing(const std::vector<std::string>& items) {
    constexpr std::size_t shown = 12;  // a subnet has many keys; the first ones tell the story
    if (items.empty()) return "nothing";
    std::string s;
    for (std::size_t i = 0; i < items.size() && i < shown; ++i) s += (i ? ", " : "") + items[i];
    if (items.size() > shown) s += ", ... (" + std::to_string(items.size() - shown) + " more)";
    return s;
}

/// Lines to append to the message of a load that failed on `key`: what the network (`network`:
/// its keys and shapes) and the file hold under that key's module prefix, and which FrEIA
/// modules those keys look like.
inline std::string module_context(
    std::string_view key, const std::vector<std::pair<std::string, std::string>>& network,
    const io::safetensors_file& file) {
    const std::string prefix = module_prefix(key);
    std::vector<std::string> net_items, net_keys, file_items, file_keys;
    for (const auto& [k, shape] : network) {
        if (!k.starts_with(prefix)) continue;
        net_keys.push_back(k.substr(prefix.size()));
        net_items.push_back(net_keys.back() + " " + shape);
    }
    for (const auto& t : file.tensors()) {
        if (!t.name.starts_with(prefix)) continue;
        file_keys.push_back(t.name.substr(prefix.size()));
        file_items.push_back(file_keys.back() + " " + io::detail::shape_string(t.shape) + " " +
                             std::string(io::to_string(t.dtype)));
    }
    const std::string where = prefix.empty() ? "at the top level" : "under '" + prefix + "'";
    std::string s = "\n  " + where + " the network has: " + listing(net_items) + "\n  " + where +
                    " the file holds: " + listing(file_items);

    const std::string module =
        prefix.empty() ? "the top level" : prefix.substr(0, prefix.size() - 1);
    const auto in_file = module_like(file_keys);
    const auto in_net = module_like(net_keys);
    if (in_file) {
        std::string names;
        for (const auto& n : first_components(file_keys)) names += (names.empty() ? "" : ", ") + n;
        s += "\n  " + module + " in the file holds " + std::string(*in_file) + "-like keys " +
             names;
        if (in_net && *in_net != *in_file)
            s += "; the network's " + module + " is " + std::string(*in_net) + "-like";
    } else if (in_net) {
        s += "\n  the network's " + module + " is " + std::string(*in_net) + "-like";
    }
    return s;
}

template <Scalar S>
std::string module_context(std::string_view key, const std::vector<staged_tensor<S>>& staged,
                           const io::safetensors_file& file) {
    std::vector<std::pair<std::string, std::string>> network;
    network.reserve(staged.size());
    for (const auto& st : staged) network.emplace_back(st.key, to_string(st.target.shape));
    return module_context(key, network, file);
}

}  // namespace detail

/// Loads every parameter and buffer of `net` from an open safetensors file. Throws io_error
/// (naming the file and the key) and leaves `net` unchanged if anything does not fit.
template <class Net>
load_result load_state_dict(Net& net, const io::safetensors_file& file,
                            const load_options& opt = {}) {
    using S = typename Net::scalar;
    std::vector<detail::staged_tensor<S>> staged;
    std::set<std::string, std::less<>> expected;
    net.visit([&](const std::string& key, const tensor_ref<S>& t) {
        staged.push_back({key, t, false, {}, {}, {}});
        expected.insert(key);
    });
    load_result result;
    for (auto& st : staged) {
        const io::tensor_info* info = file.find(st.key);
        if (!info) {
            if (opt.strict)
                throw io_error(file.source(), st.key,
                               "missing: the network expects a tensor of shape " +
                                   to_string(st.target.shape) +
                                   " (load with {.strict = false} to keep its value)" +
                                   detail::module_context(st.key, staged, file));
            result.missing_keys.push_back(st.key);
            continue;
        }
        tensor_shape want = st.target.shape;
        bool same = std::ssize(info->shape) == want.rank;
        for (int d = 0; same && d < want.rank; ++d)
            same = info->shape[std::size_t(d)] == want.extent[std::size_t(d)];
        if (!same)
            throw io_error(file.source(), st.key,
                           "has shape " + io::detail::shape_string(info->shape) +
                               ", the network expects " + to_string(want) +
                               detail::module_context(st.key, staged, file));
        auto n = std::size_t(want.numel());
        if (st.target.real) {
            st.real.resize(n);
            file.copy_to(*info, std::span<S>(st.real));
        } else if (st.target.integer) {
            st.integer.resize(n);
            file.copy_to(*info, std::span<std::int64_t>(st.integer));
        } else {
            // PyTorch bools may arrive as BOOL or, as in FrEIA's fixtures, as integers 0/1;
            // anything else is an error naming the key.
            auto v = std::make_unique<bool[]>(n);
            file.copy_to(*info, std::span<bool>(v.get(), n));
            st.flags.assign(v.get(), v.get() + n);
        }
        st.present = true;
    }
    for (const auto& t : file.tensors()) {
        if (expected.contains(t.name) || detail::ignored(t.name, opt)) continue;
        if (opt.strict)
            throw io_error(file.source(), t.name,
                           "unexpected: the network has no parameter or buffer of that name "
                           "(load with {.strict = false} to ignore it)" +
                               detail::module_context(t.name, staged, file));
        result.unexpected_keys.push_back(t.name);
    }

    // Everything checked: commit, keeping the previous values for a refusal by prepare().
    std::vector<detail::tensor_backup<S>> backup;
    if constexpr (requires { net.prepare(); }) {
        backup.reserve(staged.size());
        for (const auto& st : staged) backup.emplace_back(st.target);
    }
    for (auto& st : staged) {
        if (!st.present) continue;
        if (st.target.real)
            std::copy(st.real.begin(), st.real.end(), st.target.real);
        else if (st.target.integer)
            std::copy(st.integer.begin(), st.integer.end(), st.target.integer);
        else
            std::copy(st.flags.begin(), st.flags.end(), st.target.flag);
    }
    if constexpr (requires { net.prepare(); }) {
        const auto roll_back = [&] {
            for (std::size_t i = 0; i < staged.size(); ++i) backup[i].restore(staged[i].target);
            // prepare() may have re-derived part of its caches from the refused values: derive
            // them again from the restored ones. Should those be refused too, the network was
            // in that state before the load; the caller hears of the refusal below.
            try {
                net.prepare();
            } catch (...) {
            }
        };
        try {
            net.prepare();
        } catch (const std::exception& e) {
            roll_back();
            throw io_error(file.source(), std::string("the network refused the loaded values, so "
                                                      "every tensor keeps its previous value: ") +
                                              e.what());
        } catch (...) {
            roll_back();
            throw;
        }
    }
    return result;
}

/// Loads a FrEIA/PyTorch state_dict saved with safetensors (`save_file(model.state_dict(), path)`).
template <class Net>
load_result load_safetensors(Net& net, const std::filesystem::path& path,
                             const load_options& opt = {}) {
    return load_state_dict(net, io::safetensors_file::read(path), opt);
}

/// Writes every parameter and buffer of `net` under its state_dict key.
template <class Net>
void save_safetensors(Net& net, const std::filesystem::path& path,
                      const std::map<std::string, std::string>& metadata = {}) {
    using S = typename Net::scalar;
    std::vector<io::tensor_to_write> tensors;
    net.visit([&](const std::string& key, const tensor_ref<S>& t) {
        auto shape = t.shape.as_vector();
        auto n = std::size_t(t.shape.numel());
        if (t.real)
            tensors.push_back(io::make_tensor(key, shape, std::span<const S>(t.real, n)));
        else if (t.integer)
            tensors.push_back(
                io::make_tensor(key, shape, std::span<const std::int64_t>(t.integer, n)));
        else
            tensors.push_back(io::make_tensor(key, shape, std::span<const bool>(t.flag, n)));
    });
    io::write_safetensors(path, tensors, metadata);
}

}  // namespace inn
