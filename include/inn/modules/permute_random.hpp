#pragma once
// PermuteRandom (FrEIA's PermuteRandom): a fixed random permutation of the channels (dim 0 of a sample),
// for inputs of any rank.
//
//   SequenceINN<Shape<5>, PermuteRandom<{.seed = 3}>>     // perm = [3, 4, 1, 0, 2]
//   PermuteRandom<PermuteRandomOptions{.seed = 3}>          // the same; clang 14 needs this form
//
// Like FrEIA, a seed re-seeds the NumPy state (`g.numpy()`) before drawing, which changes every
// later NumPy-based draw of the network; without a seed the permutation is the next
// draw from that state. The permutation lives in the int64 buffers `perm` / `perm_inv`, read at
// run time, so loading a state_dict replaces it.

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "../core/module.hpp"
#include "../core/parameters.hpp"
#include "detail/permutation.hpp"

namespace inn {

struct PermuteRandomOptions {
    std::int64_t seed = -1;  // FrEIA's seed=None; otherwise 0 <= seed < 2^32 (np.random.seed)
};

template <PermuteRandomOptions O = PermuteRandomOptions{}>
struct PermuteRandom {
    static constexpr std::string_view name = "PermuteRandom";
    static constexpr PermuteRandomOptions options = O;

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s); !r.ok()) return r;
        if (auto r = expect_no_condition(s); !r.ok()) return r;
        if (O.seed < -1 || O.seed > std::int64_t(0xffffffff))  // np.random.seed's range
            return fail(shape_error::invalid_option);
        return returns({s.in()});
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t channels = Sig.in().channels();
        static constexpr index_t n_pix = Sig.in().spatial_size();
        static constexpr index_t size = Sig.in().size();

        index_buffer perm{channels};
        index_buffer perm_inv{channels};

        explicit bind(generator& g) {
            numpy_random_state& np = g.numpy();
            if constexpr (O.seed >= 0) np.reseed(static_cast<std::uint32_t>(O.seed));
            const std::vector<int> p = np.permutation(int(channels));
            for (index_t i = 0; i < channels; ++i) {
                perm.values[std::size_t(i)] = p[std::size_t(i)];
                perm_inv.values[std::size_t(p[std::size_t(i)])] = i;
            }
        }

        /// A loaded pair must be a permutation and its inverse (checked once per change).
        void prepare() { detail::check_permutation_pair(perm.values, perm_inv.values, "perm", "perm_inv"); }

        // y[:, i] = x[:, perm[i]]
        void forward(const run_args<S>& a) const { gather(a, perm); }
        // x[:, i] = y[:, perm_inv[i]]
        void inverse(const run_args<S>& a) const { gather(a, perm_inv); }

        /// dL/dx[:, perm[i]] = dL/dy[:, i]: the gradient scattered back.
        void backward(const backward_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                const S* gy = a.grad_out[0].row(b);
                S* gx = a.grad_in[0].row(b);
                for (index_t i = 0; i < channels; ++i)
                    std::copy_n(gy + i * n_pix, n_pix,
                                gx + index_t(perm.values[std::size_t(i)]) * n_pix);
            }
        }

        /// For fusing with its neighbours (graph/fusion.hpp): a gather of whole channels.
        void affine_form(pass p, affine_gather<S>& m) const {
            const index_buffer& idx = p == pass::inverse ? perm_inv : perm;
            m.set_identity(size);
            for (index_t i = 0; i < channels; ++i)
                for (index_t q = 0; q < n_pix; ++q)
                    m.source[std::size_t(i * n_pix + q)] =
                        index_t(idx.values[std::size_t(i)]) * n_pix + q;
        }

        template <class V>
        void visit(V&& v, const std::string& prefix) {
            v(prefix + "perm", perm.ref<S>());
            v(prefix + "perm_inv", perm_inv.ref<S>());
        }

    private:
        static void gather(const run_args<S>& a, const index_buffer& idx) {
            for (index_t b = 0; b < a.batch; ++b) {
                const S* x = a.in[0].row(b);
                S* y = a.out[0].row(b);
                for (index_t i = 0; i < channels; ++i)
                    std::copy_n(x + index_t(idx.values[std::size_t(i)]) * n_pix, n_pix,
                                y + i * n_pix);
            }
            // A permutation has |det| = 1: nothing to add to the log-determinant.
        }
    };
};

}  // namespace inn
