#pragma once
// AllInOneBlock on the device (modules/all_in_one_block.hpp has the formulas).
//
// Forward: the subnet (device layers) on cat(x1, c...); one element-wise pass for the coupling
// and the global affine map (with a hard permutation, its gather fused into that pass's reads);
// a soft permutation as one product with W (on images, one pass mixing the channels of each
// pixel); one pass per sample adding sum(s) + n_pix·Σ log Ψ
// to the log-determinant. The inverse runs the same pieces backwards. The clamp and the global
// scale are evaluated as the host evaluates them, so results agree to rounding.
//
// Not yet on the device (the block then has no device binding, and a network using it fails to
// compile naming the node): subnets with layers that have no device twin. reverse_permutation
// (x = P⁻¹(x) first, P applied last in the inverse) is one more gather or mix pass.

#include <vector>

#include "../../../modules/all_in_one_block.hpp"
#include "../blas.hpp"
#include "../buffer.hpp"
#include "../launch.hpp"
#include "../math.hpp"
#include "../nn.hpp"
#include "condition_concat.hpp"

namespace inn::cuda {

// The element-wise kernels. Functors are templates of the scalar only, the geometry a member:
// nvcc's generated host code cannot spell a kernel whose template arguments carry class-type
// values (the options, the signature), so no functor is nested in the module's class.
struct aio_geometry {
    index_t size, n_pix, len1, n1, n2, n_a;
    bool gin;
};

// y[b, i, p] = Σ_j M[i, j] x[b, j, p] at every pixel p (M row-major, C x C), one output per
// index: the soft permutation on images.
template <Scalar S>
struct aio_channel_mix {
    const S* M;
    const S* x;
    index_t ldx;
    S* y;
    index_t ldy;
    index_t channels, n_pix;
    INN_HD void operator()(index_t idx) const {
        const index_t size = channels * n_pix;
        const index_t b = idx / size, q = idx - b * size, i = q / n_pix, p = q - i * n_pix;
        const S* xb = x + b * ldx + p;
        S acc = 0;
        for (index_t j = 0; j < channels; ++j) acc += M[i * channels + j] * xb[j * n_pix];
        y[b * ldy + q] = acc;
    }
};

// y[b, i, p] = x[b, idx[i], p]: a hard permutation of whole channels, one output per index.
template <Scalar S>
struct aio_channel_gather {
    const S* x;
    index_t ldx;
    S* y;
    index_t ldy;
    const index_t* idx;
    index_t size, n_pix;
    INN_HD void operator()(index_t k) const {
        const index_t b = k / size, q = k - b * size, i = q / n_pix;
        y[b * ldy + q] = x[b * ldx + idx[i] * n_pix + (q - i * n_pix)];
    }
};

// s and t of element r of the active half of sample b, from the subnet output a.
template <Scalar S>
struct aio_coupling {
    const S* a;
    const S* mean;  // GIN: per sample; else null
    S alpha;        // affine_clamping
    index_t n_a, n2;
    INN_HD S s(index_t b, index_t r) const {
        S v = math::tanh(a[b * n_a + r] * S(0.1) / alpha) * alpha;
        if (mean) v -= mean[b];
        return v;
    }
    INN_HD S t(index_t b, index_t r) const { return a[b * n_a + n2 + r] * S(0.1); }
};

// mean[b] = mean of s over the active half (GIN).
template <Scalar S>
struct aio_mean_of_s {
    aio_coupling<S> k;
    S* mean;
    INN_HD void operator()(index_t b) const {
        S sum = 0;
        for (index_t r = 0; r < k.n2; ++r) sum += k.s(b, r);
        mean[b] = sum / S(k.n2);
    }
};

// ljd[b] += sign * sum(s) + log_term (sum(s) = 0 with GIN).
template <Scalar S>
struct aio_add_log_det {
    aio_coupling<S> k;
    S* ljd;
    S sign, log_term;
    INN_HD void operator()(index_t b) const {
        S sum = 0;
        if (!k.mean)
            for (index_t r = 0; r < k.n2; ++r) sum += k.s(b, r);
        ljd[b] += sign * sum + log_term;
    }
};

// Forward tail, one output scalar per index: coupling and global affine, written to `dst`
// (soft: the pre-permutation values; hard: y, gathering channel perm[i]).
template <Scalar S>
struct aio_forward_tail {
    aio_coupling<S> k;
    aio_geometry g;
    const S* x;
    index_t ldx;
    S* dst;
    index_t ldd;
    const S* sig;
    const S* off;
    const index_t* perm;  // hard: the gather; soft: null
    INN_HD void operator()(index_t idx) const {
        const index_t b = idx / g.size, q = idx - b * g.size;
        index_t src = q;
        if (perm) {
            const index_t i = q / g.n_pix;
            src = perm[i] * g.n_pix + (q - i * g.n_pix);
        }
        const index_t c = src / g.n_pix;
        S u = x[b * ldx + src];
        if (c >= g.len1) {
            const index_t r = src - g.n1;
            u = u * math::exp(k.s(b, r)) + k.t(b, r);
        }
        dst[b * ldd + q] = g.gin ? u + off[c] : u * sig[c] + off[c];
    }
};

// Inverse, first step: x = (P⁻¹ y - offset) / Ψ for the passive half (hard: gathered; soft:
// in place on P⁻¹ y for all channels).
template <Scalar S>
struct aio_unscale {
    aio_geometry g;
    const S* y;
    index_t ldy;
    S* x;
    index_t ldx;
    const S* sig;
    const S* off;
    const index_t* perm_inv;  // hard: the gather; soft: null (y is x, all channels)
    index_t cols;
    INN_HD void operator()(index_t idx) const {
        const index_t b = idx / cols, q = idx - b * cols;
        const index_t c = q / g.n_pix;
        const index_t src = perm_inv ? perm_inv[c] * g.n_pix + (q - c * g.n_pix) : q;
        const S v = y[b * ldy + src] - off[c];
        x[b * ldx + q] = g.gin ? v : v / sig[c];
    }
};

// Inverse, active half: x2 = (u - t) exp(-s), u unscaled (hard: from y, gathered).
template <Scalar S>
struct aio_inverse_tail {
    aio_coupling<S> k;
    aio_geometry g;
    const S* y;  // hard: y; soft: null (u already in x)
    index_t ldy;
    S* x;
    index_t ldx;
    const S* sig;
    const S* off;
    const index_t* perm_inv;
    INN_HD void operator()(index_t idx) const {
        const index_t b = idx / g.n2, r = idx - b * g.n2;
        const index_t q = g.n1 + r, c = q / g.n_pix;
        S u;
        if (y) {
            const S v = y[b * ldy + perm_inv[c] * g.n_pix + (q - c * g.n_pix)] - off[c];
            u = g.gin ? v : v / sig[c];
        } else {
            u = x[b * ldx + q];
        }
        x[b * ldx + q] = (u - k.t(b, r)) * math::exp(-k.s(b, r));
    }
};

// What the device version supports, decided before it is instantiated.
template <class Subnet, AllInOneOptions O, Scalar S, signature Sig>
struct all_in_one_support {
    using host_type = typename AllInOneBlock<Subnet, O>::template bind<S, Sig>;
    using subnet_spec = typename nn::subnet_for<Subnet, S, host_type::subnet_in,
                                                2 * host_type::len2, AllInOneBlock<Subnet, O>>::spec;
    static constexpr bool value = layer_on_device<subnet_spec>;
};

template <class Subnet, AllInOneOptions O, Scalar S, signature Sig>
struct all_in_one_block {
    using host_type = typename AllInOneBlock<Subnet, O>::template bind<S, Sig>;
    using subnet_spec = typename all_in_one_support<Subnet, O, S, Sig>::subnet_spec;

    static constexpr index_t channels = host_type::channels, len1 = host_type::len1;
    static constexpr index_t n_pix = host_type::n_pix, size = host_type::size;
    static constexpr index_t n1 = host_type::n1, n2 = host_type::n2, n_a = host_type::n_a;
    static constexpr bool soft = host_type::soft, gin = host_type::gin;
    static constexpr bool reverse = O.reverse_permutation;
    using concat = condition_concat<S, Sig>;
    using subnet_type = layer_t<subnet_spec, S, host_type::subnet_in>;

    subnet_type subnet;
    device_buffer<S> sigma{channels}, offset{channels};
    device_buffer<S> w_perm{soft ? channels * channels : 0}, w_perm_inv{soft ? channels * channels : 0};
    device_buffer<index_t> perm{soft ? 0 : channels}, perm_inv{soft ? 0 : channels};
    S log_sigma_sum = 0;

    all_in_one_block(const context& ctx, const host_type& h) : subnet(ctx, h.subnet) {
        upload(ctx, h);
    }

    void upload(const context& ctx, const host_type& h) {
        subnet.upload(ctx, h.subnet);
        // Ψ(global_scale) and Σ log Ψ in the host's order: the same values as its prepare().
        std::vector<S> sig(std::size_t(channels), S(1));
        S sum = 0;
        if constexpr (!gin)
            for (index_t c = 0; c < channels; ++c) {
                sig[std::size_t(c)] = host_type::global_scale_activation(h.global_scale.values[c]);
                sum += std::log(sig[std::size_t(c)]);
            }
        log_sigma_sum = sum;
        copy_to_device(ctx, sig.data(), sigma.data(), channels);
        copy_to_device(ctx, h.global_offset.data(), offset.data(), channels);
        if constexpr (soft) {
            // W (the Householder product when learned: host prepare() put it in w_perm).
            std::vector<S> w(h.w_perm.data(), h.w_perm.data() + channels * channels), wt(w.size());
            for (index_t i = 0; i < channels; ++i)
                for (index_t j = 0; j < channels; ++j)
                    wt[std::size_t(j * channels + i)] = w[std::size_t(i * channels + j)];
            copy_to_device(ctx, w.data(), w_perm.data(), channels * channels);
            copy_to_device(ctx, wt.data(), w_perm_inv.data(), channels * channels);
        } else {
            std::vector<index_t> p(static_cast<std::size_t>(channels)), pi(p.size());
            for (index_t i = 0; i < channels; ++i) {
                p[std::size_t(i)] = index_t(h.w_perm.values[std::size_t(i)]);
                pi[std::size_t(i)] = index_t(h.w_perm_inv.values[std::size_t(i)]);
            }
            copy_to_device(ctx, p.data(), perm.data(), channels);
            copy_to_device(ctx, pi.data(), perm_inv.data(), channels);
        }
        ctx.synchronize();  // the host vectors above go out of scope
    }

    // Scratch: [a: batch x n_a | mean of s (GIN): batch | pre-permutation values (soft):
    // batch x size | P⁻¹(x) (reverse_permutation): batch x size | cat(x1, c...) | subnet
    // scratch].
    static constexpr index_t scratch_size(index_t batch) {
        return batch * (n_a + 1 + (soft ? size : 0) + (reverse ? size : 0)) +
               concat::scratch_size(n1, batch) +
               subnet_type::scratch_size(batch);
    }

    using coupling = aio_coupling<S>;
    using geometry = aio_geometry;
    static constexpr geometry geo{size, n_pix, len1, n1, n2, n_a, gin};
    using mean_of_s = aio_mean_of_s<S>;
    using add_log_det = aio_add_log_det<S>;
    using forward_tail = aio_forward_tail<S>;
    using unscale = aio_unscale<S>;
    using inverse_tail = aio_inverse_tail<S>;

    struct work {
        S* a;
        S* mean;
        S* pre;
        S* rev;  // reverse_permutation: P⁻¹(x)
        S* cat;
        S* sub;
    };
    static work layout(index_t batch, S* scratch) {
        work w;
        w.a = scratch;
        w.mean = w.a + batch * n_a;
        w.pre = w.mean + batch;
        w.rev = w.pre + (soft ? batch * size : 0);
        w.cat = w.rev + (reverse ? batch * size : 0);
        w.sub = w.cat + concat::scratch_size(n1, batch);
        return w;
    }

    coupling coefficients(const run_args<S, device>& a, dcview<S> x1, const work& w) const {
        const context& ctx = *a.context;
        subnet.forward(ctx, concat::make(ctx, x1, n1, a.cond, a.batch, w.cat), dview<S>{w.a, n_a},
                       a.batch, w.sub);
        coupling k{w.a, nullptr, S(O.affine_clamping), n_a, n2};
        if constexpr (gin) {
            for_each_index(ctx, a.batch, mean_of_s{k, w.mean});
            k.mean = w.mean;
        }
        return k;
    }

    // out = M in per sample (vectors: one product for the batch; images: per pixel).
    static void mix(const context& ctx, const S* M, const S* in, index_t ldi, S* out,
                    index_t ldo, index_t batch) {
        if constexpr (n_pix == 1)
            blas::gemm_nt<S>(ctx, batch, channels, channels, in, ldi, M, out, ldo);
        else
            for_each_index(ctx, batch * size,
                           aio_channel_mix<S>{M, in, ldi, out, ldo, channels, n_pix});
    }

    // P (Inverse = false) or P⁻¹ as a whole map, for reverse_permutation.
    void permute(const context& ctx, bool inverse, dcview<S> in, dview<S> out,
                 index_t batch) const {
        if constexpr (soft)
            mix(ctx, inverse ? w_perm_inv.data() : w_perm.data(), in.data, in.stride, out.data,
                out.stride, batch);
        else
            for_each_index(ctx, batch * size,
                           aio_channel_gather<S>{in.data, in.stride, out.data, out.stride,
                                                 inverse ? perm_inv.data() : perm.data(), size,
                                                 n_pix});
    }

    void forward(const run_args<S, device>& a) const {
        const context& ctx = *a.context;
        const work w = layout(a.batch, a.scratch);
        dcview<S> x = a.in[0];
        if constexpr (reverse) {
            permute(ctx, true, x, dview<S>{w.rev, size}, a.batch);
            x = dcview<S>{w.rev, size};
        }
        const dview<S> y = a.out[0];
        const coupling k = coefficients(a, x, w);
        if constexpr (soft) {
            for_each_index(ctx, a.batch * size,
                           forward_tail{k, geo, x.data, x.stride, w.pre, size, sigma.data(),
                                        offset.data(), nullptr});
            mix(ctx, w_perm.data(), w.pre, size, y.data, y.stride, a.batch);
        } else {
            for_each_index(ctx, a.batch * size,
                           forward_tail{k, geo, x.data, x.stride, y.data, y.stride, sigma.data(),
                                        offset.data(), perm.data()});
        }
        if (a.jac)
            for_each_index(ctx, a.batch,
                           add_log_det{k, a.ljd, S(1), gin ? S(0) : S(n_pix) * log_sigma_sum});
    }

    void inverse(const run_args<S, device>& a) const {
        const context& ctx = *a.context;
        const work w = layout(a.batch, a.scratch);
        const dcview<S> y = a.in[0];
        const dview<S> x = reverse ? dview<S>{w.rev, size} : a.out[0];
        if constexpr (soft) {
            // P⁻¹ y = y W (W orthogonal: its inverse is stored as Wᵀ), then unscaled in place.
            mix(ctx, w_perm_inv.data(), y.data, y.stride, x.data, x.stride, a.batch);
            for_each_index(ctx, a.batch * size,
                           unscale{geo, x.data, x.stride, x.data, x.stride, sigma.data(),
                                   offset.data(), nullptr, size});
        } else {
            for_each_index(ctx, a.batch * n1,
                           unscale{geo, y.data, y.stride, x.data, x.stride, sigma.data(),
                                   offset.data(), perm_inv.data(), n1});
        }
        const coupling k = coefficients(a, x, w);
        for_each_index(ctx, a.batch * n2,
                       inverse_tail{k, geo, soft ? nullptr : y.data, y.stride, x.data, x.stride,
                                    sigma.data(), offset.data(), soft ? nullptr : perm_inv.data()});
        if (a.jac)
            for_each_index(ctx, a.batch,
                           add_log_det{k, a.ljd, S(-1), gin ? S(0) : S(-n_pix) * log_sigma_sum});
        if constexpr (reverse) permute(ctx, false, x, a.out[0], a.batch);
    }
};

}  // namespace inn::cuda

namespace inn {
template <class Subnet, AllInOneOptions O>
struct space_binding<AllInOneBlock<Subnet, O>, cuda::device> {
    template <Scalar S, signature Sig>
    using bind = std::conditional_t<cuda::all_in_one_support<Subnet, O, S, Sig>::value,
                                    cuda::all_in_one_block<Subnet, O, S, Sig>, void>;
};
}  // namespace inn
