#pragma once
// Index permutations kept as PyTorch keeps them: int64 buffers `perm` and its inverse, which a
// state_dict may replace. They are read as addresses, so a loaded pair is checked once, when it
// changes (the module's prepare(), hence at load), and never per call.

#include <cstdint>
#include <string>
#include <vector>

#include "../../core/errors.hpp"

namespace inn::detail {

/// Throws parameter_error unless `perm` is a permutation of [0, n) and `inverse` its inverse.
/// Allocates nothing when they are (it runs in prepare(), after every optimiser step): if every
/// perm[i] is in range and inverse[perm[i]] = i, perm is one-to-one, hence a permutation, and
/// inverse is its inverse. Only a failing pair is looked at again to say what is wrong.
inline void check_permutation_pair(const std::vector<std::int64_t>& perm,
                                   const std::vector<std::int64_t>& inverse,
                                   const std::string& perm_key, const std::string& inverse_key) {
    const auto n = std::int64_t(perm.size());
    bool ok = inverse.size() == perm.size();
    for (std::size_t i = 0; ok && i < perm.size(); ++i)
        ok = perm[i] >= 0 && perm[i] < n && inverse[std::size_t(perm[i])] == std::int64_t(i);
    if (ok) return;
    std::vector<bool> seen(perm.size(), false);
    for (std::size_t i = 0; i < perm.size(); ++i) {
        const std::int64_t p = perm[i];
        if (p < 0 || p >= n)
            throw parameter_error(perm_key, "[" + std::to_string(i) + "] = " + std::to_string(p) +
                                                " is outside [0, " + std::to_string(n) + ")");
        if (seen[std::size_t(p)])
            throw parameter_error(perm_key, "holds " + std::to_string(p) +
                                                " twice: it is not a permutation");
        seen[std::size_t(p)] = true;
    }
    for (std::size_t i = 0; i < perm.size(); ++i) {
        const std::int64_t q = inverse[std::size_t(perm[i])];
        if (q != std::int64_t(i))
            throw parameter_error(inverse_key,
                                  "is not the inverse of '" + perm_key + "': " + perm_key + "[" +
                                      std::to_string(i) + "] = " + std::to_string(perm[i]) +
                                      " but " + inverse_key + "[" + std::to_string(perm[i]) +
                                      "] = " + std::to_string(q));
    }
}

}  // namespace inn::detail
