#pragma once
// Parameters in and out of safetensors files, by FrEIA's state_dict keys.
//
//   inn::load_safetensors(net, "model.safetensors");          // strict: every key must match
//   inn::load_safetensors(net, path, {.strict = false});      // ignore keys the net lacks
//   inn::save_safetensors(net, "out.safetensors");
//
// Loading is all-or-nothing: every tensor is checked and converted into staging storage first,
// and the network's parameters change only when all of them passed.

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "../core/parameters.hpp"
#include "safetensors.hpp"

namespace inn {

struct load_options {
    /// Reject keys in the file that the network does not have (PyTorch's strict=True).
    bool strict = true;
    /// Keys starting with one of these are never "unexpected" (e.g. "test." in FrEIA fixtures).
    std::vector<std::string> ignore_prefixes = {};
};

namespace detail {

template <Scalar S>
struct staged_tensor {
    std::string key;
    tensor_ref<S> target;
    std::vector<S> real;
    std::vector<std::int64_t> integer;
    std::vector<bool> flags;
};

inline bool ignored(const std::string& key, const load_options& opt) {
    for (const auto& p : opt.ignore_prefixes)
        if (key.compare(0, p.size(), p) == 0) return true;
    return false;
}

}  // namespace detail

/// Loads every parameter and buffer of `net` from an open safetensors file.
template <class Net>
void load_state_dict(Net& net, const io::safetensors_file& file, const load_options& opt = {}) {
    using S = typename Net::scalar;
    std::vector<detail::staged_tensor<S>> staged;
    std::set<std::string, std::less<>> expected;
    net.visit([&](const std::string& key, const tensor_ref<S>& t) {
        staged.push_back({key, t, {}, {}, {}});
        expected.insert(key);
    });
    for (auto& st : staged) {
        const io::tensor_info* info = file.find(st.key);
        if (!info)
            throw io_error(file.source(), st.key,
                           "missing: the network expects a tensor of shape " +
                               to_string(st.target.shape));
        tensor_shape want = st.target.shape;
        bool same = std::ssize(info->shape) == want.rank;
        for (int d = 0; same && d < want.rank; ++d)
            same = info->shape[std::size_t(d)] == want.extent[std::size_t(d)];
        if (!same) {
            tensor_shape got;
            got.rank = int(info->shape.size());
            for (std::size_t d = 0; d < info->shape.size() && d < got.extent.size(); ++d)
                got.extent[d] = info->shape[d];
            throw io_error(file.source(), st.key,
                           "has shape " + to_string(got) + ", the network expects " +
                               to_string(want));
        }
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
    }
    if (opt.strict)
        for (const auto& t : file.tensors())
            if (!expected.contains(t.name) && !detail::ignored(t.name, opt))
                throw io_error(file.source(), t.name,
                               "unexpected: the network has no parameter or buffer of that name "
                               "(load with {.strict = false} to ignore it)");
    // Everything checked: commit.
    for (auto& st : staged) {
        if (st.target.real)
            std::copy(st.real.begin(), st.real.end(), st.target.real);
        else if (st.target.integer)
            std::copy(st.integer.begin(), st.integer.end(), st.target.integer);
        else
            std::copy(st.flags.begin(), st.flags.end(), st.target.flag);
    }
}

/// Loads a FrEIA/PyTorch state_dict saved with safetensors (`save_file(model.state_dict(), path)`).
template <class Net>
void load_safetensors(Net& net, const std::filesystem::path& path, const load_options& opt = {}) {
    load_state_dict(net, io::safetensors_file::read(path), opt);
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
            tensors.push_back(io::make_tensor(key, shape, std::span<const std::int64_t>(t.integer, n)));
        else
            tensors.push_back(io::make_tensor(key, shape, std::span<const bool>(t.flag, n)));
    });
    io::write_safetensors(path, tensors, metadata);
}

}  // namespace inn
