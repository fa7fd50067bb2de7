#pragma once
// A subnet's input cat(part, c_0, c_1, ...) on the device (the host's is in
// modules/coupling/base.hpp): the part itself when there is no condition, else one copy pass.

#include <span>

#include "../../../core/signature.hpp"
#include "../launch.hpp"
#include "../nn.hpp"

namespace inn::cuda {

/// Up to this many conditions per module on the device.
inline constexpr int max_conditions = 8;

// Column q of cat(part, c_0, ...), one scalar per index (a functor of the scalar only: see
// all_in_one_block.hpp).
template <Scalar S> struct concat_gather {
    const S* part;
    index_t part_stride, part_size, cond_size;
    const S* cond[max_conditions];
    index_t cond_stride[max_conditions];
    index_t cond_n[max_conditions]; // scalars per sample
    S* out;
    INN_HD void operator()(index_t idx) const {
        const index_t width = part_size + cond_size;
        const index_t b = fast_div(idx, width);
        index_t q = idx - b * width;
        S v;
        if (q < part_size) {
            v = part[b * part_stride + q];
        } else {
            q -= part_size;
            int j = 0;
            while (q >= cond_n[j]) {
                q -= cond_n[j];
                ++j;
            }
            v = cond[j][b * cond_stride[j] + q];
        }
        out[idx] = v;
    }
};

template <Scalar S, signature Sig> struct condition_concat {
    static constexpr int n_cond = Sig.conditions.count;
    static constexpr index_t cond_size =
        index_t(Sig.conditions.total_channels()) * Sig.in().spatial_size();

    static constexpr bool in_place(index_t part_size) {
        return n_cond == 0 || (part_size == 0 && n_cond == 1);
    }
    static constexpr index_t scratch_size(index_t part_size, index_t batch) {
        return in_place(part_size) ? 0 : (part_size + cond_size) * batch;
    }

    static dcview<S> make(const context& ctx, dcview<S> part, index_t part_size,
                          std::span<const dcview<S>> cond, index_t batch, S* buf) {
        if (in_place(part_size))
            return n_cond == 0 ? part : cond[0];
        if constexpr (n_cond > 0) {
            static_assert(n_cond <= max_conditions,
                          "inn::cuda: a module with more than 8 conditions is not on the device");
            concat_gather<S> g{part.data, part.stride, part_size, cond_size, {}, {}, {}, buf};
            for (int j = 0; j < n_cond; ++j) {
                g.cond[j] = cond[std::size_t(j)].data;
                g.cond_stride[j] = cond[std::size_t(j)].stride;
                g.cond_n[j] = Sig.conditions[j].size();
            }
            for_each_index(ctx, batch * (part_size + cond_size), g);
        }
        return {buf, part_size + cond_size};
    }
};

} // namespace inn::cuda
