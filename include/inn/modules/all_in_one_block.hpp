#pragma once
// AllInOneBlock (FrEIA.modules.AllInOneBlock): a one-sided affine
// coupling with soft clamping, a learned global per-channel affine map and a fixed (or learned
// Householder) channel permutation, in one module.
//
//   template <int I, int O> using subnet = nn::Sequential<nn::Linear<I, 512>, nn::ReLU,
//                                                         nn::Linear<512, O>>;
//   SequenceINN<Shape<2>, Repeat<8, AllInOneBlock<subnet>>>
//   AllInOneBlock<subnet, {.permute_soft = true}>
//   AllInOneBlock<subnet, {.global_affine_type = global_affine_type::sigmoid,
//                          .permute_soft = true, .learned_householder_permutation = 2}>
//
// Options keep FrEIA's names, defaults and order (designated initializers must follow it).
// Portable spelling names the type: `AllInOneBlock<subnet, AllInOneOptions{...}>` (GCC also
// takes the bare braces).
//
// Forward, C channels, len1 = C - C/2 passive, len2 = C/2 active, n_pix = spatial size:
//   if reverse_permutation: x = P^-1(x)
//   a = 0.1 * subnet(cat(x1, c...));  s = alpha * tanh(a_s / alpha);  t = a_t
//   if gin_block: s -= mean(s) over all non-batch dims
//   y = P(cat(x1, x2 * exp(s) + t) * Psi(global_scale) + global_offset)
//   log|det J| = sum(s) + n_pix * sum_c log Psi_c        (Psi = 1 and no log term with GIN)
// and the inverse in the opposite order. Every constant is rounded to the Scalar first, as
// PyTorch does with Python scalars, so a float network follows FrEIA's float32 arithmetic.
// The initial pre-activation g0 is computed in double and rounded to the Scalar (float gives
// FrEIA's values); a double network is FrEIA built under float64 (g0 and randn in
// double).
//
// Permutations (state_dict after global_scale, global_offset; then subnet.*):
//   * hard (default): int64 `w_perm`, `w_perm_inv` = argsort, from torch.randperm(C); applied
//     as a gather y[:, i] = x[:, w_perm[i]]. Run-time buffers: loading a state_dict replaces them.
//   * permute_soft: `w_perm` = SO(C) from SciPy's special_ortho_group on the NumPy state,
//     `w_perm_inv` = its transpose, both (C, C, 1...) and applied per position as
//     y_i = sum_j W[i, j] x_j. The matrix is kept in the network's Scalar: FrEIA rounds it to
//     float32 even in float64, which would make a double network invert only to ~1e-7.
//   * learned_householder_permutation = K > 0 (needs permute_soft): trainable `vk_householder`
//     (K, C) = 0.2 * randn, fixed `w_0` (C, C) = SO(C); W = w_0 H(v_0) ... H(v_{K-1}) is
//     recomputed whenever those tensors change (checked per call against a copy, so loads and
//     training steps are seen without hooks); P^-1 uses W^T.
//
// Deliberate differences from FrEIA (docs/freia-semantics.md#allinoneblock), reported as shape
// errors at compile time:
//   * learned_householder_permutation > 0 without permute_soft: FrEIA crashes
//     (UnboundLocalError) -> shape_error::invalid_option. So do K < 0,
//     affine_clamping == 0 (or NaN) and a global_affine_init outside the activation's range
//     (FrEIA would start from a NaN global scale).
//   * permute_soft with C = 1 (SciPy's ValueError) -> shape_error::too_few_channels.
//   * every condition (not only the first, which FrEIA asserts) must share the input's
//     non-channel dims, as concatenation needs -> shape_error::condition_spatial_mismatch.
// The log-determinant is skipped when the caller does not ask for it (FrEIA always computes it).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include <Eigen/Core>

#include "../core/module.hpp"
#include "../core/parameters.hpp"
#include "../nn/kernels.hpp"
#include "../nn/kernels/grad.hpp"
#include "../nn/layer.hpp"
#include "coupling/base.hpp"
#include "detail/permutation.hpp"

namespace inn {

/// FrEIA's `global_affine_type`: "SOFTPLUS", "SIGMOID", "EXP".
enum class global_affine_type { softplus, sigmoid, exp };

/// Constructor arguments of AllInOneBlock, FrEIA's names and defaults.
struct AllInOneOptions {
    double affine_clamping = 2.0;
    bool gin_block = false;
    double global_affine_init = 1.0;
    // Qualified: an unqualified type name would change meaning inside the class.
    inn::global_affine_type global_affine_type = inn::global_affine_type::softplus;
    bool permute_soft = false;
    int learned_householder_permutation = 0;
    bool reverse_permutation = false;
};

/// Whether `init` gives a finite initial pre-activation for `type` (FrEIA does not check).
constexpr bool aio_global_affine_init_valid(global_affine_type type, double init) {
    if (type == global_affine_type::sigmoid) return init > 0.0 && init < 10.0;
    return init > 0.0;  // also false for NaN
}

/// FrEIA's initial `global_scale` pre-activation g0, computed in double as NumPy does (the
/// caller rounds it to its Scalar): Psi(g0) == init.
inline double aio_global_scale_init(global_affine_type type, double init) {
    switch (type) {
        case global_affine_type::sigmoid:
            return 2. - std::log(10. / init - 1.);
        case global_affine_type::exp:
            return std::log(init);
        default:
            return 2. * std::log(std::exp(0.5 * 10. * init) - 1);
    }
}

/// The global scale activation Psi, in S as PyTorch evaluates it:
/// softplus: 0.1 * Softplus(beta=0.5, threshold=20); sigmoid: 10 * sigmoid(a - 2); exp: exp(a).
template <Scalar S>
inline S aio_global_scale_activation(global_affine_type type, S a) {
    switch (type) {
        case global_affine_type::sigmoid:
            return S(10) * (S(1) / (S(1) + std::exp(-(a - S(2)))));
        case global_affine_type::exp:
            return std::exp(a);
        default: {
            const S beta = S(0.5);
            const S sp = a * beta > S(20) ? a : S(std::log1p(std::exp(a * beta))) / beta;
            return S(0.1) * sp;
        }
    }
}

/// dPsi/da, for the gradient of `global_scale`.
template <Scalar S>
inline S aio_global_scale_derivative(global_affine_type type, S a) {
    switch (type) {
        case global_affine_type::sigmoid: {
            const S sg = S(1) / (S(1) + std::exp(-(a - S(2))));
            return S(10) * sg * (S(1) - sg);
        }
        case global_affine_type::exp:
            return std::exp(a);
        default: {  // 0.1 * sigmoid(beta * a), 0.1 beyond Softplus's threshold (linear there)
            const S beta = S(0.5);
            return a * beta > S(20) ? S(0.1) : S(0.1) / (S(1) + std::exp(-a * beta));
        }
    }
}

template <nn::SubnetConstructor Subnet, AllInOneOptions O = AllInOneOptions{}>
struct AllInOneBlock {
    static constexpr std::string_view name = "AllInOneBlock";
    static constexpr AllInOneOptions options = O;

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s); !r.ok()) return r;  // rank 1-4, as FrEIA's 1D-4D
        if (O.learned_householder_permutation < 0 ||
            (O.learned_householder_permutation > 0 && !O.permute_soft))
            return fail(shape_error::invalid_option);
        if (!(O.affine_clamping != 0.0 && O.affine_clamping == O.affine_clamping))
            return fail(shape_error::invalid_option);
        if (!aio_global_affine_init_valid(O.global_affine_type, O.global_affine_init))
            return fail(shape_error::invalid_option);
        if (O.permute_soft && s.in().channels() < 2)
            return fail(shape_error::too_few_channels, 0, 0, 0, 2);
        if (auto r = expect_conditions_match_spatial(s); !r.ok()) return r;
        return returns({s.in()});
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr AllInOneOptions options = O;
        // The coupling family's geometry with len1 = C - C/2 passive (the larger half).
        static constexpr CouplingOptions split = {
            .split_channels = Sig.in().channels() - Sig.in().channels() / 2};
        using geometry = detail::coupling_layout<Sig, split>;
        using concat = detail::condition_concat<S, Sig>;
        static constexpr dims in = Sig.in();
        static constexpr int channels = geometry::channels;
        static constexpr int len1 = geometry::len1;  // passive
        static constexpr int len2 = geometry::len2;
        static constexpr index_t n_pix = geometry::pixels;
        static constexpr index_t size = in.size();
        static constexpr index_t n1 = geometry::n1, n2 = geometry::n2;
        static constexpr int n_cond = Sig.conditions.count;
        static constexpr dims subnet_in = geometry::in1;
        static constexpr index_t n_sub_in = subnet_in.size();
        static constexpr index_t n_a = 2 * n2;  // subnet output [s | t] per sample
        static constexpr int K = O.learned_householder_permutation;
        static constexpr bool householder = K > 0;
        static constexpr bool soft = O.permute_soft;
        static constexpr bool gin = O.gin_block;
        static constexpr bool reverse = O.reverse_permutation;

        using subnet_type =
            typename nn::subnet_for<Subnet, S, subnet_in, 2 * len2, AllInOneBlock>::type;
        using perm_type = std::conditional_t<soft, parameter<S>, index_buffer>;

        // State, in state_dict order.
        parameter<S> global_scale{affine_shape()};
        parameter<S> global_offset{affine_shape()};
        /// hard: int64 indices; soft: the matrix and its transpose; householder: `w_perm` holds
        /// the current W (not in the state_dict, as in FrEIA), `w_perm_inv` is unused.
        perm_type w_perm;
        perm_type w_perm_inv;
        parameter<S> vk_householder;
        parameter<S> w_0;
        subnet_type subnet;
        /// A training forward in store mode keeps the subnet's output and the activations its
        /// backward reads (run_args::saved): backward then runs no part of the subnet forward.
        static constexpr index_t saved_per_sample = n_a + nn::layer_kept_width<subnet_type>();

        /// FrEIA's RNG order: [NumPy SO(C)] -> [torch randperm(C)] -> [torch randn(K, C)] ->
        /// subnet, which is constructed last.
        explicit bind(generator& g) : subnet(draw_permutation(g)) {
            const S g0 = S(aio_global_scale_init(O.global_affine_type, O.global_affine_init));
            global_scale.values.setConstant(g0);
            sigma_.setOnes(channels);
            if constexpr (householder) householder_tmp_.setZero(channels);
            if constexpr (soft && !householder) // streamed by the products of small batches
                w_perm.streamed = w_perm_inv.streamed = true;
            prepare_fixed();
            prepare();
        }

        /// Psi, the activation of `global_scale`.
        static S global_scale_activation(S a) {
            return aio_global_scale_activation<S>(O.global_affine_type, a);
        }

        static constexpr index_t scratch_size(index_t batch) {
            return batch * (2 * n_a + 1 + index_t(buffers) * size) +
                   concat::scratch_size(n1, batch) +
                   std::max(nn::layer_scratch<subnet_type>(batch), pack_size);
        }
        static constexpr index_t scratch_size(pass p, index_t batch) {
            return p == pass::backward ? backward_scratch_size(batch) : scratch_size(batch);
        }

        void forward(const run_args<S>& a) const {
            const work w = layout(a);
            cview<S> x = a.in[0];
            if constexpr (reverse) {
                permute<true>(x, {w.buf1, size}, a.batch, w.subnet);
                x = cview<S>(w.buf1, size);
            }
            forward_core(a, x, a.out[0], w);
        }

        void inverse(const run_args<S>& a) const {
            const work w = layout(a);
            if constexpr (reverse) {
                inverse_core(a, a.in[0], {w.buf1, size}, w);
                permute<false>(cview<S>(w.buf1, size), a.out[0], a.batch, w.subnet);
            } else {
                inverse_core(a, a.in[0], a.out[0], w);
            }
        }

        template <class V>
        void visit(V&& v, const std::string& prefix) {
            v(prefix + "global_scale", global_scale.ref());
            v(prefix + "global_offset", global_offset.ref());
            if constexpr (householder) {
                v(prefix + "vk_householder", vk_householder.ref());
                v(prefix + "w_0", w_0.ref());
            } else if constexpr (soft) {
                v(prefix + "w_perm", w_perm.ref());
                v(prefix + "w_perm_inv", w_perm_inv.ref());
            } else {
                v(prefix + "w_perm", w_perm.template ref<S>());
                v(prefix + "w_perm_inv", w_perm_inv.template ref<S>());
            }
            nn::visit_layer(subnet, v, prefix + "subnet.");
        }

        /// The reverse mode of forward: dL/dx, dL/dc, and the gradients of global_scale,
        /// global_offset, vk_householder and the subnet. The subnet input cat(x1, c...) is
        /// known from x; its output and activations are what the forward kept (args.saved), or
        /// recomputed (nothing is inverted).
        void backward(const backward_args<S>& a) const {
            const index_t batch = a.batch;
            const bwork w = backward_layout(a.scratch, batch);
            cview<S> x = a.in[0];
            view<S> gx = a.grad_in[0];
            if constexpr (reverse) {  // x = P^-1(x0); its gradient goes back through P^-T
                permute<true>(x, {w.x, size}, batch, w.subnet);
                x = cview<S>(w.x, size);
                gx = view<S>(w.gx, size);
            }
            // a = subnet(cat(x1, c...)); s' = alpha tanh(0.1 a_s / alpha) into w.d, then
            // ds'/da_s over it; e = exp(s) (s centred with GIN).
            const cview<S> u = concat::make(x, n1, a.cond, batch, w.cat);
            if (a.saved)  // kept by the forward
                for (index_t b = 0; b < batch; ++b)
                    std::copy_n(a.saved + b * saved_per_sample, n_a, w.a + b * n_a);
            else
                subnet.forward(u, view<S>{w.a, n_a}, batch, w.subnet);
            backward_coefficients(w, batch);
            // dL/dv for v = u * sigma + offset, the pre-permutation values.
            if constexpr (soft)
                transposed_permutation(a.grad_out[0], {w.gv, size}, batch, w.subnet);
            couple_backward(a, x, gx, w);
            // dL/d cat(x1, c...) through the subnet: x1's part onto gx, the rest to conditions.
            subnet_backward_call(a, u, w);
            gx.matrix(batch, n1) += cview<S>(w.gu, n_sub_in).matrix(batch, n1);
            concat::add_condition_gradient(a.grad_cond, batch, w.gu, n1);
            if constexpr (reverse) {
                if constexpr (householder)  // P^-1 = W^T
                    mix<false>(w_perm.data(), gx, a.grad_in[0], batch, w.subnet);
                else if constexpr (soft)
                    transposed_permutation<true>(gx, a.grad_in[0], batch, w.subnet);
                else  // the gather by w_perm_inv, transposed: the gather by w_perm
                    permute<false>(gx, a.grad_in[0], batch, w.subnet);
            }
            parameter_gradients(a, x, gx, w);
        }

    private:
        // Scratch: [subnet output | exp(+-s) | sum(s) | cat(x1, c...) | buf1 | buf2 | subnet
        // scratch]. buf1 holds P^-1(x) (reverse_permutation) or the pre-permutation values
        // (soft); both need buf2.
        // The permutation matrix's product packs its input through the subnet's scratch (or
        // splits two samples at a time there for the bfloat16 copy).
        static constexpr index_t pack_size = std::max(
            nn::kernels::gemm_nt_scratch<S, channels>(), nn::kernels::gemv_bf16_scratch(channels));
        static constexpr int buffers = int(soft) + int(reverse);

        struct work {
            S* a;
            S* e;
            S* j;
            S* cat;
            S* buf1;
            S* buf2;
            S* subnet;
        };
        static work layout(const run_args<S>& args) {
            work w;
            w.a = args.scratch;
            w.e = w.a + args.batch * n_a;
            w.j = w.e + args.batch * n_a;
            w.cat = w.j + args.batch;
            w.buf1 = w.cat + concat::scratch_size(n1, args.batch);
            w.buf2 = buffers == 2 ? w.buf1 + args.batch * size : w.buf1;  // only with both
            w.subnet = w.buf1 + args.batch * size * buffers;
            return w;
        }

        // (1, C, 1, ...) with one trailing 1 per spatial dim.
        static tensor_shape affine_shape() {
            tensor_shape t;
            t.rank = in.rank + 1;
            for (int d = 0; d < t.rank; ++d) t.extent[std::size_t(d)] = 1;
            t.extent[1] = channels;
            return t;
        }

        generator& draw_permutation(generator& g) {
            if constexpr (soft) {
                const Eigen::MatrixXd w = g.numpy().special_ortho_group(channels);
                const std::int64_t c = channels;
                if constexpr (householder) {
                    w_0 = parameter<S>(tensor_shape{c, c}, false);
                    w_perm = parameter<S>(tensor_shape{c, c}, false);  // W, recomputed
                    for (index_t i = 0; i < channels; ++i)
                        for (index_t j = 0; j < channels; ++j)
                            w_0.values[i * channels + j] = S(w(i, j));
                } else {
                    tensor_shape shape;  // (C, C, 1, ...)
                    shape.rank = in.rank + 1;
                    for (int d = 0; d < shape.rank; ++d) shape.extent[std::size_t(d)] = 1;
                    shape.extent[0] = shape.extent[1] = c;
                    w_perm = parameter<S>(shape, false);
                    w_perm_inv = parameter<S>(shape, false);
                    for (index_t i = 0; i < channels; ++i)
                        for (index_t j = 0; j < channels; ++j) {
                            w_perm.values[i * channels + j] = S(w(i, j));
                            w_perm_inv.values[i * channels + j] = S(w(j, i));
                        }
                }
            } else {
                w_perm = index_buffer(channels);
                w_perm_inv = index_buffer(channels);
                w_perm.values = g.randperm(channels);
                for (std::size_t i = 0; i < w_perm.values.size(); ++i)
                    w_perm_inv.values[std::size_t(w_perm.values[i])] = std::int64_t(i);
            }
            if constexpr (householder) {
                vk_householder = parameter<S>(tensor_shape{K, channels}, true);
                g.fill_normal(vk_householder.data(), std::size_t(vk_householder.size()), S(0),
                              S(1));
                vk_householder.values *= S(0.2);
            }
            return g;
        }

    public:
        /// What depends only on the parameters: sigma = Psi(global_scale) and its log-sum, the
        /// Householder product W, and the check that loaded hard-permutation indices form a
        /// permutation and its inverse. The network calls it when parameters change.
        void prepare() {
            if constexpr (!gin) {
                S sum = 0;
                for (index_t c = 0; c < channels; ++c) {
                    sigma_[c] = global_scale_activation(global_scale.values[c]);
                    sum += std::log(sigma_[c]);
                }
                log_sigma_sum_ = sum;
            }
            if constexpr (householder) {
                compute_householder();
            } else if constexpr (!soft) {
                detail::check_permutation_pair(w_perm.values, w_perm_inv.values, "w_perm",
                                               "w_perm_inv");
            }
        }

        /// What depends only on the fixed tensors: whether a soft permutation's `w_perm_inv`
        /// is `w_perm`'s transpose to the bit, as FrEIA makes and saves them (the backward pass
        /// then multiplies by W^T through the inverse's products).
        void prepare_fixed() {
            if constexpr (soft && !householder) {
                inverse_is_transpose_ = true;
                for (index_t i = 0; i < channels && inverse_is_transpose_; ++i)
                    for (index_t j = 0; j < channels; ++j)
                        if (w_perm_inv.values[i * channels + j] !=
                            w_perm.values[j * channels + i]) {
                            inverse_is_transpose_ = false;
                            break;
                        }
            }
        }

    private:
        // W = w_0 H(v_0) ... H(v_{K-1}), H(v) = I - 2 v v^T / (v^T v), applied left to right
        // as rank-one updates W <- W - (W v)(2 v / v^T v)^T: O(K C^2) instead of K products.
        void compute_householder() {
            S* W = w_perm.data();
            std::copy_n(w_0.data(), channels * channels, W);
            for (int k = 0; k < K; ++k) {
                const S* v = vk_householder.data() + index_t(k) * channels;
                S dot = 0;
                for (index_t j = 0; j < channels; ++j) dot += v[j] * v[j];
                for (index_t r = 0; r < channels; ++r) {
                    S acc = 0;
                    for (index_t j = 0; j < channels; ++j) acc += W[r * channels + j] * v[j];
                    householder_tmp_[r] = acc;
                }
                for (index_t r = 0; r < channels; ++r)
                    for (index_t j = 0; j < channels; ++j)
                        W[r * channels + j] -= householder_tmp_[r] * (S(2) * v[j] / dot);
            }
        }

        // The copies of a soft permutation matrix that the network keeps (tensor_ref): bfloat16
        // and packed, each null while there is none.
        struct weight_copies {
            const std::uint16_t* bf16 = nullptr;
            const S* packed = nullptr;
        };
        static weight_copies copies(const perm_type& p) {
            if constexpr (soft && !householder)
                return {p.bf16.empty() ? nullptr : p.bf16.data(),
                        p.packed.empty() ? nullptr : p.packed.data()};
            else
                return {};
        }

        // out[:, i] = sum_j M[i, j] in[:, j] at every position; M = W, or W^T if Transposed.
        template <bool Transposed>
        static void apply_matrix(const S* W, cview<S> x, view<S> y, index_t batch, S* pack,
                                 weight_copies copy = {}) {
            constexpr index_t C = channels;
            if constexpr (C * C <= 256) {
                for (index_t b = 0; b < batch; ++b) {
                    const S* xr = x.row(b);
                    S* yr = y.row(b);
                    for (index_t i = 0; i < C; ++i) {
                        S* yi = yr + i * n_pix;
                        for (index_t j = 0; j < C; ++j) {
                            const S m = Transposed ? W[j * C + i] : W[i * C + j];
                            const S* xj = xr + j * n_pix;
                            if (j == 0)
                                for (index_t p = 0; p < n_pix; ++p) yi[p] = m * xj[p];
                            else
                                for (index_t p = 0; p < n_pix; ++p) yi[p] += m * xj[p];
                        }
                    }
                }
            } else {
                using cmap = Eigen::Map<const row_matrix<S>>;
                using map = Eigen::Map<row_matrix<S>>;
                const cmap M(W, C, C);
                if constexpr (n_pix == 1) {  // the whole batch in one product
                    if constexpr (Transposed)
                        y.matrix(batch, C).noalias() = x.matrix(batch, C) * M;
                    else if (copy.bf16 && pack &&
                             batch <= nn::kernels::bf16_max_batch) // use_bf16_weights
                        nn::kernels::gemv_bf16<S>(copy.bf16, C, C, x.data, x.stride, batch,
                                                  nullptr, y.data, y.stride, pack,
                                                  nn::kernels::no_act{});
                    else // a matrix-vector product per sample for tiny batches; W's packed copy
                         // where the measured pick takes it
                        nn::kernels::gemm_nt_picked<S, C, C>(
                            x.data, x.stride, W, static_cast<const S*>(nullptr), y.data,
                            y.stride, batch, pack, 1, nn::kernels::no_act{}, copy.packed);
                } else {
                    for (index_t b = 0; b < batch; ++b) {
                        map Y(y.row(b), C, n_pix);
                        if constexpr (Transposed)
                            Y.noalias() = M.transpose() * cmap(x.row(b), C, n_pix);
                        else
                            Y.noalias() = M * cmap(x.row(b), C, n_pix);
                    }
                }
            }
        }

        // P (Inverse = false) or P^-1 as a whole map, for reverse_permutation.
        template <bool Inverse>
        void permute(cview<S> x, view<S> y, index_t batch, S* pack) const {
            if constexpr (householder) {
                apply_matrix<Inverse>(w_perm.data(), x, y, batch, pack);
            } else if constexpr (soft) {
                apply_matrix<false>(Inverse ? w_perm_inv.data() : w_perm.data(), x, y, batch,
                                    pack, copies(Inverse ? w_perm_inv : w_perm));
            } else {
                const auto& idx = Inverse ? w_perm_inv.values : w_perm.values;
                for (index_t b = 0; b < batch; ++b)
                    for (index_t i = 0; i < channels; ++i)
                        std::copy_n(x.row(b) + index_t(idx[std::size_t(i)]) * n_pix, n_pix,
                                    y.row(b) + i * n_pix);
            }
        }

        // a = subnet(cat(x1, c...)), unscaled, into w.a; for a training step's backward, also
        // into args.saved with what the subnet keeps.
        void run_subnet(const run_args<S>& args, cview<S> x1, const work& w) const {
            const cview<S> u = concat::make(x1, n1, args.cond, args.batch, w.cat);
            if (!args.saved) {
                subnet.forward(u, view<S>{w.a, n_a}, args.batch, w.subnet);
                return;
            }
            nn::layer_forward_keeping(subnet, u, view<S>{w.a, n_a}, args.batch,
                                      view<S>{args.saved + n_a, saved_per_sample}, w.subnet);
            for (index_t b = 0; b < args.batch; ++b)
                std::copy_n(w.a + b * n_a, n_a, args.saved + b * saved_per_sample);
        }

        // The subnet outputs [a_s | a_t] (w.a) become: t = 0.1 a_t in place, and exp(+-s) in
        // w.e, s = alpha tanh(0.1 a_s / alpha) (centred with GIN); j[b] = sum(s). Long runs of s
        // go sample by sample, each sample's steps together while its rows are in L1 (the
        // callers interleave them with the coupling; five passes over the whole batch read
        // arrays that do not fit in L2 together: 800 KB each for mnist-cinn at batch 256); short
        // ones as one block for the whole batch, so that the transcendental functions still run
        // on whole packets (the t half is then computed and ignored: cheaper than going scalar).
        static bool coefficients_per_sample(index_t batch) {
            return n2 >= 16 || batch * n_a < nn::kernels::simd<S>::lanes;
        }

        // The sum of one sample's n2 values (s, or their gradients): runs shorter than a packet
        // in a loop of their own (the same bits as kernels::sum, without a call per sample:
        // moons' n2 is 1).
        static S sum_n2(const S* v) {
            if constexpr (n2 < nn::kernels::simd<S>::lanes) {
                S sum = 0;
                for (index_t i = 0; i < n2; ++i) sum += v[i];
                return sum;
            } else {
                return nn::kernels::sum(v, n2);
            }
        }

        // Sample b's steps after the clamp: t *= 0.1, GIN's centring, j[b]; exp(+-s) with Exp.
        template <bool Inverse, bool Exp>
        static void finish_coefficients(const work& w, index_t b, S* j) {
            S* s = w.e + b * n_a;
            S* t = w.a + b * n_a + n2;
            for (index_t i = 0; i < n2; ++i) t[i] *= S(0.1);
            if constexpr (gin && n2 > 0) {  // centred over channels and pixels together
                const S mean = sum_n2(s) / S(n2);
                for (index_t i = 0; i < n2; ++i) s[i] -= mean;
            }
            j[b] = sum_n2(s);
            if constexpr (Exp) nn::kernels::exp_inplace(s, n2, Inverse);
        }

        // Sample b's coefficients (coefficients_per_sample).
        template <bool Inverse>
        static void sample_coefficients(const work& w, index_t b, S* j) {
            nn::kernels::tanh_clamp(w.a + b * n_a, w.e + b * n_a, n2, S(O.affine_clamping),
                                    S(0.1));
            finish_coefficients<Inverse, true>(w, b, j);
        }

        // The whole batch's coefficients as one block (not coefficients_per_sample).
        template <bool Inverse>
        static void batch_coefficients(const work& w, index_t batch, S* j) {
            nn::kernels::tanh_clamp(w.a, w.e, batch * n_a, S(O.affine_clamping), S(0.1));
            for (index_t b = 0; b < batch; ++b) finish_coefficients<Inverse, false>(w, b, j);
            nn::kernels::exp_inplace(w.e, batch * n_a, Inverse);
        }

        // x -> y, without the reverse pre-permutation.
        void forward_core(const run_args<S>& args, cview<S> x, view<S> y, const work& w) const {
            run_subnet(args, x, w);
            const S log_term = gin ? S(0) : S(n_pix) * log_sigma_sum_;
            S* const pre = reverse ? w.buf2 : w.buf1;  // soft only
            S* const j = w.j;
            const bool per_sample = coefficients_per_sample(args.batch);
            if (!per_sample) batch_coefficients<false>(w, args.batch, j);
            const S* const off = global_offset.data();
            const S* const sig = sigma_.data();
            for (index_t b = 0; b < args.batch; ++b) {
                if (per_sample) sample_coefficients<false>(w, b, j);
                const S* e = w.e + b * n_a;
                const S* t = w.a + b * n_a + n2;
                const S* xr = x.row(b);
                if constexpr (soft) {
                    // Coupling and global affine, channel by channel in order; the matrix
                    // multiplies the whole batch afterwards.
                    S* dst = pre + b * size;
                    for (index_t k = 0; k < len1; ++k)
                        for (index_t p = 0; p < n_pix; ++p) {
                            const index_t q = k * n_pix + p;
                            dst[q] = gin ? xr[q] + off[k] : xr[q] * sig[k] + off[k];
                        }
                    for (index_t k = len1; k < channels; ++k)
                        for (index_t p = 0; p < n_pix; ++p) {
                            const index_t q = k * n_pix + p, r = q - n1;
                            const S u = xr[q] * e[r] + t[r];
                            dst[q] = gin ? u + off[k] : u * sig[k] + off[k];
                        }
                } else {
                    // One pass: coupling, global affine and permutation per output channel i,
                    // which gathers channel w_perm[i].
                    for (index_t i = 0; i < channels; ++i) {
                        const index_t k = index_t(w_perm.values[std::size_t(i)]);
                        S* dst = y.row(b) + i * n_pix;
                        const S* src = xr + k * n_pix;
                        if (k < len1) {
                            for (index_t p = 0; p < n_pix; ++p)
                                dst[p] = gin ? src[p] + off[k] : src[p] * sig[k] + off[k];
                        } else {
                            const S* ek = e + (k - len1) * n_pix;
                            const S* tk = t + (k - len1) * n_pix;
                            for (index_t p = 0; p < n_pix; ++p) {
                                const S u = src[p] * ek[p] + tk[p];
                                dst[p] = gin ? u + off[k] : u * sig[k] + off[k];
                            }
                        }
                    }
                }
                if (args.jac) args.ljd[b] += j[b] + log_term;
            }
            if constexpr (soft)
                apply_matrix<false>(w_perm.data(), {pre, size}, y, args.batch, w.subnet,
                                    copies(w_perm));
        }

        // y -> x, without the reverse post-permutation.
        void inverse_core(const run_args<S>& args, cview<S> y, view<S> x, const work& w) const {
            const S log_term = gin ? S(0) : S(-n_pix) * log_sigma_sum_;
            // u = (P^-1(y) - offset) / sigma. Soft: for all channels in place in x; hard: the
            // passive half now, the active half fused into the coupling pass below.
            if constexpr (soft) {
                apply_matrix<householder>(householder ? w_perm.data() : w_perm_inv.data(), y, x,
                                          args.batch, w.subnet, copies(w_perm_inv));
                for (index_t b = 0; b < args.batch; ++b)
                    for (index_t c = 0; c < channels; ++c) unscale(x.row(b) + c * n_pix, c);
            } else {
                for (index_t b = 0; b < args.batch; ++b)
                    for (index_t c = 0; c < len1; ++c) {
                        const index_t k = index_t(w_perm_inv.values[std::size_t(c)]);
                        const S* src = y.row(b) + k * n_pix;
                        S* dst = x.row(b) + c * n_pix;
                        const S off = global_offset.values[c];
                        const S sig = sigma_[c];
                        for (index_t p = 0; p < n_pix; ++p)
                            dst[p] = gin ? src[p] - off : (src[p] - off) / sig;
                    }
            }
            run_subnet(args, x, w);
            S* const j = w.j;
            const bool per_sample = coefficients_per_sample(args.batch);
            if (!per_sample) batch_coefficients<true>(w, args.batch, j);
            for (index_t b = 0; b < args.batch; ++b) {
                if (per_sample) sample_coefficients<true>(w, b, j);
                const S* e = w.e + b * n_a;  // exp(-s)
                const S* t = w.a + b * n_a + n2;
                if constexpr (soft) {
                    S* dst = x.row(b) + n1;
                    for (index_t r = 0; r < n2; ++r) dst[r] = (dst[r] - t[r]) * e[r];
                } else {
                    for (index_t c = len1; c < channels; ++c) {
                        S* dst = x.row(b) + c * n_pix;
                        const S* ec = e + (c - len1) * n_pix;
                        const S* tc = t + (c - len1) * n_pix;
                        const S* src =
                            y.row(b) + index_t(w_perm_inv.values[std::size_t(c)]) * n_pix;
                        const S off = global_offset.values[c];
                        const S sig = sigma_[c];
                        for (index_t p = 0; p < n_pix; ++p) {
                            const S u = gin ? src[p] - off : (src[p] - off) / sig;
                            dst[p] = (u - tc[p]) * ec[p];
                        }
                    }
                }
                if (args.jac) args.ljd[b] += -j[b] + log_term;
            }
        }

        // ---- backward ----
        // Scratch: [subnet output a | ds'/da_s | exp(s) | dL/da | cat(x1, c...) | dL/d cat |
        // x, dL/dx (reverse_permutation) | dL/dv (soft) | v (Householder) | dL/dlog-scale,
        // dL/doffset (, Householder: two C x C matrices, a vector, dL/dvk) | subnet scratch].
        static constexpr index_t householder_size =
            householder ? 2 * index_t(channels) * channels + channels + K * channels : 0;
        static constexpr index_t per_sample_backward =
            3 * n_a + n2 + n_sub_in +
            size * (2 * index_t(reverse) + index_t(soft) + index_t(householder));

        static constexpr index_t backward_scratch_size(index_t batch) {
            return batch * per_sample_backward + concat::scratch_size(n1, batch) +
                   2 * index_t(channels) + householder_size +
                   std::max(detail::subnet_work<subnet_type>(batch), pack_size);
        }

        struct bwork {
            S* a;
            S* d;
            S* e;
            S* ga;
            S* cat;
            S* gu;
            S* x;
            S* gx;
            S* gv;
            S* v;
            S* acc;  // dL/d(global_scale) before Psi', dL/d(global_offset)
            S* hh;   // Householder: N, M, vector, dL/dvk
            S* subnet;
        };
        static bwork backward_layout(S* scratch, index_t batch) {
            bwork w;
            w.a = scratch;
            w.d = w.a + batch * n_a;
            w.e = w.d + batch * n_a;
            w.ga = w.e + batch * n2;
            w.cat = w.ga + batch * n_a;
            w.gu = w.cat + concat::scratch_size(n1, batch);
            w.x = w.gu + batch * n_sub_in;
            w.gx = w.x + (reverse ? batch * size : 0);
            w.gv = w.gx + (reverse ? batch * size : 0);
            w.v = w.gv + (soft ? batch * size : 0);
            w.acc = w.v + (householder ? batch * size : 0);
            w.hh = w.acc + 2 * channels;
            w.subnet = w.hh + householder_size;
            return w;
        }

        // y = M^T x per sample, M = w_perm (w_perm_inv with OfInverse): the vector-Jacobian
        // product of the soft permutation (of its reverse). Where the other matrix is M^T to the
        // bit, that is the other direction's product, from its packed copy where it has one (the
        // forward's kernel, which reads W contiguously: mnist-cinn's training step at batch 128
        // about 3 % faster on an AMD EPYC Zen 4); else the blocked product from M.
        template <bool OfInverse = false>
        void transposed_permutation(cview<S> x, view<S> y, index_t batch, S* pack) const {
            const perm_type& m = OfInverse ? w_perm_inv : w_perm;
            const perm_type& t = OfInverse ? w_perm : w_perm_inv;
            if (inverse_is_transpose_)
                apply_matrix<false>(t.data(), x, y, batch, pack, copies(t));
            else
                mix<true>(m.data(), x, y, batch, pack);
        }

        // out[:, i] = sum_j M[i, j] in[:, j] (M^T with Transposed) without allocating: small
        // matrices as the forward, larger ones through the blocked product of nn's backward.
        template <bool Transposed>
        static void mix(const S* W, cview<S> x, view<S> y, index_t batch, S* pack) {
            constexpr index_t C = channels;
            if constexpr (C * C <= 256) {
                apply_matrix<Transposed>(W, x, y, batch, pack);
            } else {
                using cmap = Eigen::Map<const row_matrix<S>>;
                using map = Eigen::Map<row_matrix<S>>;
                const cmap M(W, C, C);
                if constexpr (n_pix == 1) {
                    if constexpr (Transposed) // y = x M: B row-major, the dispatched product
                        nn::kernels::matmul<S, false>(y.data, y.stride, x.data, x.stride, W, C,
                                                      batch, C, C);
                    else
                        nn::kernels::product<S, false>(y.matrix(batch, C), x.matrix(batch, C),
                                                       M.transpose());
                } else {
                    for (index_t b = 0; b < batch; ++b) {
                        if constexpr (Transposed)
                            nn::kernels::product<S, false>(map(y.row(b), C, n_pix), M.transpose(),
                                                           cmap(x.row(b), C, n_pix));
                        else
                            nn::kernels::product<S, false>(map(y.row(b), C, n_pix), M,
                                                           cmap(x.row(b), C, n_pix));
                    }
                }
            }
        }

        // From the subnet output w.a: ds'/da_s = 0.1 (1 - (s'/alpha)^2) into w.d (the t half
        // unused) and exp(s) into w.e (n2 per sample), vectorised as the forward's coefficients.
        static void backward_coefficients(const bwork& w, index_t batch) {
            const S alpha = S(O.affine_clamping), tenth = S(0.1);
            const bool per_sample = coefficients_per_sample(batch);
            if (!per_sample) nn::kernels::tanh_clamp(w.a, w.d, batch * n_a, alpha, tenth);
            for (index_t b = 0; b < batch; ++b) {
                S* d = w.d + b * n_a;
                S* e = w.e + b * n2;
                if (per_sample) nn::kernels::tanh_clamp(w.a + b * n_a, d, n2, alpha, tenth);
                std::copy_n(d, n2, e);
                if constexpr (gin && n2 > 0) {
                    const S mean = sum_n2(e) / S(n2);
                    for (index_t i = 0; i < n2; ++i) e[i] -= mean;
                }
                for (index_t i = 0; i < n2; ++i) {
                    const S q = d[i] / alpha;
                    d[i] = tenth * (S(1) - q * q);
                }
                if (per_sample) nn::kernels::exp_inplace(e, n2, false);
            }
            if (!per_sample) nn::kernels::exp_inplace(w.e, batch * n2, false);
        }

        // Through the permutation, the global affine map and the coupling: dL/dx into gx,
        // dL/da into w.ga, the sums for global_scale and global_offset into w.acc, and v
        // (Householder) into w.v.
        void couple_backward(const backward_args<S>& args, cview<S> x, view<S> gx,
                             const bwork& w) const {
            const S tenth = S(0.1);
            const S* const off = global_offset.data();
            const S* const sig = sigma_.data();
            S* const gsc = w.acc;
            S* const goff = w.acc + channels;
            std::fill_n(w.acc, 2 * channels, S(0));
            for (index_t b = 0; b < args.batch; ++b) {
                const S* xr = x.row(b);
                S* gxr = gx.row(b);
                const S* at = w.a + b * n_a + n2;  // raw t
                const S* d = w.d + b * n_a;
                const S* e = w.e + b * n2;
                S* ga = w.ga + b * n_a;
                S* vr = w.v + b * size;
                const S gl = args.grad_ljd ? args.grad_ljd[b] : S(0);
                // dL/dv of channel k: soft from the mixed gradient, hard gathered from dL/dy.
                auto gv_of = [&](index_t k) -> const S* {
                    if constexpr (soft)
                        return w.gv + b * size + k * n_pix;
                    else
                        return args.grad_out[0].row(b) +
                               index_t(w_perm_inv.values[std::size_t(k)]) * n_pix;
                };
                for (index_t k = 0; k < len1; ++k) {
                    const S* gv = gv_of(k);
                    S ss = 0, so = 0;
                    for (index_t p = 0; p < n_pix; ++p) {
                        const index_t q = k * n_pix + p;
                        ss += gv[p] * xr[q];
                        so += gv[p];
                        gxr[q] = gin ? gv[p] : gv[p] * sig[k];
                        if constexpr (householder)
                            vr[q] = gin ? xr[q] + off[k] : xr[q] * sig[k] + off[k];
                    }
                    gsc[k] += ss;
                    goff[k] += so;
                }
                for (index_t k = len1; k < channels; ++k) {
                    const S* gv = gv_of(k);
                    S ss = 0, so = 0;
                    for (index_t p = 0; p < n_pix; ++p) {
                        const index_t q = k * n_pix + p, r = q - n1;
                        const S gu = gin ? gv[p] : gv[p] * sig[k];
                        const S xe = xr[q] * e[r];
                        const S uq = xe + tenth * at[r];
                        ss += gv[p] * uq;
                        so += gv[p];
                        gxr[q] = gu * e[r];
                        ga[r] = gu * xe + gl;  // dL/ds, then dL/da_s below
                        ga[n2 + r] = gu * tenth;
                        if constexpr (householder)
                            vr[q] = gin ? uq + off[k] : uq * sig[k] + off[k];
                    }
                    gsc[k] += ss;
                    goff[k] += so;
                }
                if constexpr (gin && n2 > 0) {  // s = s' - mean(s'): dL/ds' = dL/ds - mean
                    const S mean = sum_n2(ga) / S(n2);
                    for (index_t r = 0; r < n2; ++r) ga[r] -= mean;
                }
                for (index_t r = 0; r < n2; ++r) ga[r] *= d[r];
            }
        }

        void subnet_backward_call(const backward_args<S>& args, cview<S> u,
                                  const bwork& w) const {
            const cview<S> kept = args.saved && nn::layer_kept_width<subnet_type>() > 0
                                      ? cview<S>{args.saved + n_a, saved_per_sample}
                                      : cview<S>{};
            detail::subnet_backward(subnet, u, cview<S>(w.a, n_a), cview<S>(w.ga, n_a),
                                    view<S>{w.gu, n_sub_in}, args.batch, w.subnet, args, kept);
        }

        // global_scale, global_offset and vk_householder, each summed apart and added once.
        void parameter_gradients(const backward_args<S>& args, cview<S> x, cview<S> gx,
                                 const bwork& w) const {
            if (S* g = args.grad_of(global_offset))
                for (index_t c = 0; c < channels; ++c) g[c] += w.acc[channels + c];
            if constexpr (!gin) {
                if (S* g = args.grad_of(global_scale)) {
                    S gl = 0;
                    if (args.grad_ljd)
                        for (index_t b = 0; b < args.batch; ++b) gl += args.grad_ljd[b];
                    // ljd holds n_pix * sum_c log Psi(g_c).
                    for (index_t c = 0; c < channels; ++c) {
                        const S dpsi = aio_global_scale_derivative<S>(O.global_affine_type,
                                                                      global_scale.values[c]);
                        g[c] += dpsi * (w.acc[c] + S(n_pix) * gl / sigma_[c]);
                    }
                }
            }
            if constexpr (householder)
                if (S* g = args.grad_of(vk_householder)) householder_gradient(args, x, gx, w, g);
        }

        // W = w_0 H_0 ... H_{K-1} with y = W v per pixel (and x = W^T x0 with
        // reverse_permutation): dL/dW = G, and dL/dH_k = A_k^T G B_k^T for the prefix A_k and
        // suffix B_k around H_k. As A_k = W B_k^T H_k, that is H_k R_k with
        // R_k = B_k (W^T G) B_k^T: R_{K-1} = W^T G = sum gv v^T (+ sum x gx^T), and
        // R_{k-1} = H_k R_k H_k, each step a pair of rank-one updates.
        void householder_gradient(const backward_args<S>& args, cview<S> x, cview<S> gx,
                                  const bwork& w, S* grad) const {
            constexpr index_t C = channels;
            using map = Eigen::Map<row_matrix<S>>;
            using cmap = Eigen::Map<const row_matrix<S>>;
            using vmap = Eigen::Map<vector<S>>;
            map R(w.hh, C, C), M(w.hh + C * C, C, C);
            vmap z(w.hh + 2 * C * C, C);
            map gvk(w.hh + 2 * C * C + C, K, C);
            const index_t batch = args.batch;
            // R = sum over samples and pixels of gv v^T (+ x gx^T).
            if constexpr (n_pix == 1) {
                nn::kernels::matmul<S, false, true>(R.data(), C, w.gv, size, w.v, size, C, C,
                                                    batch);
                if constexpr (reverse)
                    nn::kernels::matmul<S, true, true>(R.data(), C, x.data, x.stride, gx.data,
                                                       gx.stride, C, C, batch);
            } else {
                R.setZero();
                for (index_t b = 0; b < batch; ++b) {
                    nn::kernels::product<S, true>(R, cmap(w.gv + b * size, C, n_pix),
                                                  cmap(w.v + b * size, C, n_pix).transpose());
                    if constexpr (reverse)
                        nn::kernels::product<S, true>(R, cmap(x.row(b), C, n_pix),
                                                      cmap(gx.row(b), C, n_pix).transpose());
                }
            }
            const cmap V(vk_householder.data(), K, C);
            for (int k = K - 1; k >= 0; --k) {
                const auto v = V.row(k).transpose();
                const S dot = v.squaredNorm();
                // M = H_k R = R - (2 / dot) v (R^T v)^T
                z.noalias() = R.transpose() * v;
                M = R;
                M.noalias() -= (S(2) / dot) * v * z.transpose();
                // d<M, H(v)>/dv = -2 (M + M^T) v / dot + 4 (v^T M v) v / dot^2
                z.noalias() = M * v;
                const S vmv = v.dot(z);
                z.noalias() += M.transpose() * v;
                gvk.row(k) = (S(-2) / dot * z + S(4) * vmv / (dot * dot) * v).transpose();
                if (k > 0) {  // R = M H_k = M - (2 / dot) (M v) v^T
                    z.noalias() = M * v;
                    R = M;
                    R.noalias() -= (S(2) / dot) * z * v.transpose();
                }
            }
            Eigen::Map<row_matrix<S>>(grad, K, C) += gvk;
        }

        void unscale(S* v, index_t c) const {
            const S off = global_offset.values[c];
            const S sig = sigma_[c];
            for (index_t p = 0; p < n_pix; ++p) v[p] = gin ? v[p] - off : (v[p] - off) / sig;
        }

        // Caches of prepare(): Psi(global_scale), sum_c log Psi_c, and the copies compared.
        vector<S> sigma_;
        S log_sigma_sum_ = 0;
        bool inverse_is_transpose_ = false; // soft: w_perm_inv == w_perm^T (prepare_fixed)
        vector<S> householder_tmp_;
    };
};

}  // namespace inn
