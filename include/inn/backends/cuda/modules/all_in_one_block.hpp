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
#include "../sample_chain.hpp"
#include "condition_concat.hpp"
#include "permute_random.hpp" // channel_gather

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
template <Scalar S> struct aio_channel_mix {
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
        for (index_t j = 0; j < channels; ++j)
            acc += M[i * channels + j] * xb[j * n_pix];
        y[b * ldy + q] = acc;
    }
};

// s and t of element r of the active half of sample b, from the subnet output a.
template <Scalar S> struct aio_coupling {
    const S* a;
    const S* mean; // GIN: per sample; else null
    S alpha;       // affine_clamping
    index_t n_a, n2;
    INN_HD S s(index_t b, index_t r) const {
        S v = math::tanh(a[b * n_a + r] * S(0.1) / alpha) * alpha;
        if (mean)
            v -= mean[b];
        return v;
    }
    INN_HD S t(index_t b, index_t r) const { return a[b * n_a + n2 + r] * S(0.1); }
};

// mean[b] = mean of s over the active half (GIN); the lanes of a warp share a sample.
template <Scalar S> struct aio_mean_of_s {
    aio_coupling<S> k;
    S* mean;
    INN_HD void operator()(index_t b, int lane, int lanes) const {
        S sum = 0;
        for (index_t r = lane; r < k.n2; r += lanes)
            sum += k.s(b, r);
        lanes_sum(sum);
        if (lane == 0)
            mean[b] = sum / S(k.n2);
    }
};

// ljd[b] += sign * sum(s) + log_term (sum(s) = 0 with GIN); the lanes of a warp share a sample.
template <Scalar S> struct aio_add_log_det {
    aio_coupling<S> k;
    S* ljd;
    S sign, log_term;
    INN_HD void operator()(index_t b, int lane, int lanes) const {
        S sum = 0;
        if (!k.mean)
            for (index_t r = lane; r < k.n2; r += lanes)
                sum += k.s(b, r);
        lanes_sum(sum);
        if (lane == 0)
            ljd[b] += sign * sum + log_term;
    }
};

// Forward tail, one output scalar per index: coupling and global affine, written to `dst`
// (soft: the pre-permutation values; hard: y, gathering channel perm[i]).
template <Scalar S> struct aio_forward_tail {
    aio_coupling<S> k;
    aio_geometry g;
    const S* x;
    index_t ldx;
    S* dst;
    index_t ldd;
    const S* sig;
    const S* off;
    const index_t* perm; // hard: the gather; soft: null
    INN_HD void operator()(index_t idx) const {
        const index_t b = fast_div(idx, g.size), q = idx - b * g.size;
        index_t src = q;
        if (perm) {
            const index_t i = fast_div(q, g.n_pix);
            src = perm[i] * g.n_pix + (q - i * g.n_pix);
        }
        const index_t c = fast_div(src, g.n_pix);
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
template <Scalar S> struct aio_unscale {
    aio_geometry g;
    const S* y;
    index_t ldy;
    S* x;
    index_t ldx;
    const S* sig;
    const S* off;
    const index_t* perm_inv; // hard: the gather; soft: null (y is x, all channels)
    index_t cols;
    INN_HD void operator()(index_t idx) const {
        const index_t b = fast_div(idx, cols), q = idx - b * cols;
        const index_t c = fast_div(q, g.n_pix);
        const index_t src = perm_inv ? perm_inv[c] * g.n_pix + (q - c * g.n_pix) : q;
        const S v = y[b * ldy + src] - off[c];
        x[b * ldx + q] = g.gin ? v : v / sig[c];
    }
};

// Inverse, active half: x2 = (u - t) exp(-s), u unscaled (hard: from y, gathered).
template <Scalar S> struct aio_inverse_tail {
    aio_coupling<S> k;
    aio_geometry g;
    const S* y; // hard: y; soft: null (u already in x)
    index_t ldy;
    S* x;
    index_t ldx;
    const S* sig;
    const S* off;
    const index_t* perm_inv;
    INN_HD void operator()(index_t idx) const {
        const index_t b = fast_div(idx, g.n2), r = idx - b * g.n2;
        const index_t q = g.n1 + r, c = fast_div(q, g.n_pix);
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

// The whole block for one sample in one thread, for small vector blocks whose subnet is
// Linear(I, H) -> activation -> Linear(H, O) (the moons model: I = 1, H = 512, O = 2, C = 2):
// the subnet's hidden layer never leaves registers, the weights are read by every thread of a
// warp at once (one broadcast load each), and a block is one launch whatever the batch. A step
// of a sample chain (sample_chain.hpp) in both directions: the block alone is a chain of one
// step, several blocks of a network one chain; the layer-by-layer path above is the reference
// it is tested against (the parity fixtures run the chain or the layers, by their sizes;
// test_cuda_backend.cpp all three).
template <Scalar S, int I, int H, int O, int C, class Act> struct aio_small_block {
    using scalar = S;
    static constexpr int inputs = I, hidden_units = H, outputs = O, channels = C;
    static constexpr int len2 = O / 2, len1 = C - len2;
    const S* w1; // (H, I)
    const S* b1;
    const S* w2; // (O, H)
    const S* b2;
    const S* cond[max_conditions];
    index_t cond_stride[max_conditions];
    index_t cond_n[max_conditions];
    int n_cond;
    const S* sig;
    const S* off;
    const S* w;          // soft: W (C x C); else null
    const index_t* perm; // hard: w_perm (forward) or w_perm_inv (inverse)
    S alpha, log_term;
    bool gin, forward;

    // The whole block on one sample whose C values x every lane of a warp holds (registers:
    // sample_chain.hpp): y (C values, every lane) and the log-determinant term.
    template <class Lanes> INN_HD S row(const S* x, S* y, index_t b, int lane, Lanes lanes) const {
        S u[I > 0 ? I : 1], v[C], a[O];
        input_row(x, b, u, v);
        for (int o = 0; o < O; ++o)
            a[o] = S(0);
        hidden(u, lane, lanes, a);
        for (int o = 0; o < O; ++o)
            lanes_sum(a[o]);
        return finish_row(x, a, v, y);
    }

    // The stages of row(), b only selecting the conditions' rows.
    //
    // The subnet's input u = cat(x1, c) of sample b; inverse: v = (P⁻¹ y - offset) / Ψ first,
    // whose passive half is x1.
    INN_HD void input_row(const S* x, index_t b, S* u, S* v) const {
        if (forward) {
            for (int i = 0; i < len1; ++i)
                u[i] = x[i];
        } else {
            for (int c = 0; c < C; ++c) {
                S p;
                if (w) {
                    p = 0;
                    for (int i = 0; i < C; ++i)
                        p += w[i * C + c] * x[i];
                } else {
                    p = x[perm[c]];
                }
                v[c] = gin ? p - off[c] : (p - off[c]) / sig[c];
            }
            for (int i = 0; i < len1; ++i)
                u[i] = v[i];
        }
        int at = len1;
        for (int j = 0; j < n_cond; ++j)
            for (index_t q = 0; q < cond_n[j]; ++q)
                u[at++] = cond[j][b * cond_stride[j] + q];
    }

    // The subnet's parameters, for a chain's prefetch.
    template <class Lanes> INN_HD void prefetch(int lane, Lanes lanes) const {
        prefetch_l1(w1, sizeof(S) * H * I, lane, lanes);
        prefetch_l1(b1, sizeof(S) * H, lane, lanes);
        prefetch_l1(w2, sizeof(S) * O * H, lane, lanes);
        prefetch_l1(b2, sizeof(S) * O, lane, lanes);
    }

    // a[o] += Σ w2[o, h] act(b1[h] + w1[h, :] u) over h = first, first + lanes, ... (a fixed
    // trip count per lane, unrolled on a GPU: the loads of every term are issued together).
    template <class Lanes> INN_HD void hidden(const S* u, int first, Lanes, S* a) const {
        constexpr int step = Lanes::value, trips = (H + step - 1) / step;
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
        for (int k = 0; k < trips; ++k) {
            const int h = first + k * step;
            if (H % step != 0 && h >= H)
                break;
            S v = b1[h];
            for (int i = 0; i < I; ++i)
                v += w1[h * I + i] * u[i];
            v = Act{}(v);
            for (int o = 0; o < O; ++o)
                a[o] += w2[o * H + h] * v;
        }
    }

    // From the summed hidden contributions a: the coupling, the global affine map and the
    // permutation, written to y (which may be x); returns the sample's log-determinant term.
    INN_HD S finish_row(const S* x, const S* a, const S* v, S* y) const {
        S s[len2 > 0 ? len2 : 1], t[len2 > 0 ? len2 : 1];
        S sum = 0;
        for (int r = 0; r < len2; ++r) {
            s[r] = math::tanh((a[r] + b2[r]) * S(0.1) / alpha) * alpha;
            t[r] = (a[len2 + r] + b2[len2 + r]) * S(0.1);
            sum += s[r];
        }
        if (gin) {
            const S mean = sum / S(len2);
            for (int r = 0; r < len2; ++r)
                s[r] -= mean;
            sum = 0;
        }
        if (forward) {
            S z[C];
            for (int k = 0; k < C; ++k) {
                S u = x[k];
                if (k >= len1)
                    u = u * math::exp(s[k - len1]) + t[k - len1];
                z[k] = gin ? u + off[k] : u * sig[k] + off[k];
            }
            for (int i = 0; i < C; ++i) {
                if (w) {
                    S acc = 0;
                    for (int j = 0; j < C; ++j)
                        acc += w[i * C + j] * z[j];
                    y[i] = acc;
                } else {
                    y[i] = z[perm[i]];
                }
            }
        } else {
            for (int c = 0; c < len1; ++c)
                y[c] = v[c];
            for (int r = 0; r < len2; ++r)
                y[len1 + r] = (v[len1 + r] - t[r]) * math::exp(-s[r]);
            sum = -sum;
        }
        return sum + log_term;
    }
};

// Linear(I, H) -> activation -> Linear(H, O) with biases, as a subnet spec: the fused kernel's
// shape, or `ok = false`.
template <class Spec, Scalar S> struct small_mlp {
    static constexpr bool ok = false;
    static constexpr int in = 1, hidden = 1, out = 2; // unused placeholders
    using activation = identity;
};
template <int I, int H, int O, class A, Scalar S>
struct small_mlp<nn::Sequential<nn::Linear<I, H, true>, A, nn::Linear<H, O, true>>, S> {
    static constexpr bool ok = activation_of<A>::ok;
    static constexpr int in = I, hidden = H, out = O;
    using activation = typename activation_of<A>::type;
};

// What the device version supports, decided before it is instantiated.
template <class Subnet, AllInOneOptions O, Scalar S, signature Sig> struct all_in_one_support {
    using host_type = typename AllInOneBlock<Subnet, O>::template bind<S, Sig>;
    using subnet_spec =
        typename nn::subnet_for<Subnet, S, host_type::subnet_in, 2 * host_type::len2,
                                AllInOneBlock<Subnet, O>>::spec;
    static constexpr bool value = layer_on_device<subnet_spec>;
};

template <class Subnet, AllInOneOptions O, Scalar S, signature Sig> struct all_in_one_block {
    using host_type = typename AllInOneBlock<Subnet, O>::template bind<S, Sig>;
    using subnet_spec = typename all_in_one_support<Subnet, O, S, Sig>::subnet_spec;

    static constexpr index_t channels = host_type::channels, len1 = host_type::len1;
    static constexpr index_t n_pix = host_type::n_pix, size = host_type::size;
    static constexpr index_t n1 = host_type::n1, n2 = host_type::n2, n_a = host_type::n_a;
    static constexpr bool soft = host_type::soft, gin = host_type::gin;
    static constexpr bool reverse = O.reverse_permutation;
    using concat = condition_concat<S, Sig>;
    using subnet_type = layer_t<subnet_spec, S, host_type::subnet_in>;

    // A small vector block runs as one kernel (aio_small_block: a warp per sample on a GPU);
    // any other, layer by layer.
    using mlp = small_mlp<subnet_spec, S>;
    static constexpr bool fused = mlp::ok && !reverse && n_pix == 1 && channels <= 16 &&
                                  mlp::in <= 32 && mlp::out >= 2 && mlp::out <= 32 &&
                                  Sig.conditions.count <= max_conditions;

    /// A step of a fused per-sample chain (sample_chain.hpp) when the block is one kernel.
    static constexpr bool per_sample = fused;

    subnet_type subnet;
    device_buffer<S> sigma{channels}, offset{channels};
    device_buffer<S> w_perm{soft ? channels * channels : 0},
        w_perm_inv{soft ? channels * channels : 0};
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
        ctx.synchronize(); // the host vectors above go out of scope
    }

    // Scratch: [a: batch x n_a | mean of s (GIN): batch | pre-permutation values (soft):
    // batch x size | P⁻¹(x) (reverse_permutation): batch x size | cat(x1, c...) | subnet
    // scratch].
    static constexpr index_t scratch_size(index_t batch) {
        return batch * (n_a + 1 + (soft ? size : 0) + (reverse ? size : 0)) +
               concat::scratch_size(n1, batch) + subnet_type::scratch_size(batch);
    }

    // (Kernels are launched with the functors' own names: nvcc's host stub would spell a
    // member alias through this class's options and signature, which it cannot.)
    using coupling = aio_coupling<S>;
    static constexpr aio_geometry geo{size, n_pix, len1, n1, n2, n_a, gin};

    struct work {
        S* a;
        S* mean;
        S* pre;
        S* rev; // reverse_permutation: P⁻¹(x)
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
            for_each_sample_warp(ctx, a.batch, aio_mean_of_s<S>{k, w.mean});
            k.mean = w.mean;
        }
        return k;
    }

    // The fused kernel's step for one call (conditions from `a`). (Its type spelled out, not
    // `auto` nor a member alias: nvcc's device pass then missed the kernel, which failed at run
    // time with "invalid device function", and its host stub cannot spell this class's template
    // arguments.) Also the step of a network's chain (sample_chain.hpp).
    aio_small_block<S, mlp::in, mlp::hidden, mlp::out, int(channels), typename mlp::activation>
    sample_step(const run_args<S, device>& a, bool forward) const requires(fused) {
        aio_small_block<S, mlp::in, mlp::hidden, mlp::out, int(channels), typename mlp::activation>
            f{};
        f.w1 = std::get<0>(subnet.layers).weight.data();
        f.b1 = std::get<0>(subnet.layers).bias.data();
        f.w2 = std::get<2>(subnet.layers).weight.data();
        f.b2 = std::get<2>(subnet.layers).bias.data();
        f.n_cond = int(a.cond.size());
        for (int j = 0; j < f.n_cond; ++j) {
            f.cond[j] = a.cond[std::size_t(j)].data;
            f.cond_stride[j] = a.cond[std::size_t(j)].stride;
            f.cond_n[j] = Sig.conditions[j].size();
        }
        f.sig = sigma.data();
        f.off = offset.data();
        f.w = soft ? w_perm.data() : nullptr;
        f.perm = soft ? nullptr : forward ? perm.data() : perm_inv.data();
        f.alpha = S(O.affine_clamping);
        f.log_term = gin ? S(0) : (forward ? S(n_pix) : S(-n_pix)) * log_sigma_sum;
        f.gin = gin;
        f.forward = forward;
        return f;
    }

    // The block as a chain of one step: in to out, its log-determinant added to ljd.
    void run_fused(const run_args<S, device>& a, bool forward) const requires(fused) {
        for_each_sample_warp(*a.context, a.batch,
                             make_sample_chain<S, int(channels)>(
                                 a.in[0].data, a.in[0].stride, a.out[0].data, a.out[0].stride,
                                 a.jac ? a.ljd : nullptr, true, sample_step(a, forward)));
    }

    // out = M in per sample (vectors: one product for the batch; images: per pixel).
    static void mix(const context& ctx, const S* M, const S* in, index_t ldi, S* out, index_t ldo,
                    index_t batch) {
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
                           channel_gather<S>{in.data, in.stride, out.data, out.stride,
                                             inverse ? perm_inv.data() : perm.data(), size, n_pix});
    }

    void forward(const run_args<S, device>& a) const {
        const context& ctx = *a.context;
        if constexpr (fused) {
            run_fused(a, true);
            return;
        }
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
                           aio_forward_tail<S>{k, geo, x.data, x.stride, w.pre, size, sigma.data(),
                                               offset.data(), nullptr});
            mix(ctx, w_perm.data(), w.pre, size, y.data, y.stride, a.batch);
        } else {
            for_each_index(ctx, a.batch * size,
                           aio_forward_tail<S>{k, geo, x.data, x.stride, y.data, y.stride,
                                               sigma.data(), offset.data(), perm.data()});
        }
        if (a.jac)
            for_each_sample_warp(
                ctx, a.batch,
                aio_add_log_det<S>{k, a.ljd, S(1), gin ? S(0) : S(n_pix) * log_sigma_sum});
    }

    void inverse(const run_args<S, device>& a) const {
        const context& ctx = *a.context;
        if constexpr (fused) {
            run_fused(a, false);
            return;
        }
        const work w = layout(a.batch, a.scratch);
        const dcview<S> y = a.in[0];
        const dview<S> x = reverse ? dview<S>{w.rev, size} : a.out[0];
        if constexpr (soft) {
            // P⁻¹ y = y W (W orthogonal: its inverse is stored as Wᵀ), then unscaled in place.
            mix(ctx, w_perm_inv.data(), y.data, y.stride, x.data, x.stride, a.batch);
            for_each_index(ctx, a.batch * size,
                           aio_unscale<S>{geo, x.data, x.stride, x.data, x.stride, sigma.data(),
                                          offset.data(), nullptr, size});
        } else {
            for_each_index(ctx, a.batch * n1,
                           aio_unscale<S>{geo, y.data, y.stride, x.data, x.stride, sigma.data(),
                                          offset.data(), perm_inv.data(), n1});
        }
        const coupling k = coefficients(a, x, w);
        for_each_index(ctx, a.batch * n2,
                       aio_inverse_tail<S>{k, geo, soft ? nullptr : y.data, y.stride, x.data,
                                           x.stride, sigma.data(), offset.data(),
                                           soft ? nullptr : perm_inv.data()});
        if (a.jac)
            for_each_sample_warp(
                ctx, a.batch,
                aio_add_log_det<S>{k, a.ljd, S(-1), gin ? S(0) : S(-n_pix) * log_sigma_sum});
        if constexpr (reverse)
            permute(ctx, false, x, a.out[0], a.batch);
    }
};

} // namespace inn::cuda

namespace inn {
template <class Subnet, AllInOneOptions O>
struct space_binding<AllInOneBlock<Subnet, O>, cuda::device> {
    template <Scalar S, signature Sig>
    using bind = std::conditional_t<cuda::all_in_one_support<Subnet, O, S, Sig>::value,
                                    cuda::all_in_one_block<Subnet, O, S, Sig>, void>;
};
} // namespace inn
