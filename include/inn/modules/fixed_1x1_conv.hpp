#pragma once
// Fixed1x1Conv (FrEIA.modules.Fixed1x1Conv): a fixed invertible 1x1 convolution of images,
// log|det J| = log|det M| * H * W.
//
// FrEIA's state_dict (non-trainable parameters, in this order):
//   M        (C, C, 1, 1) = Mᵀ of the constructor's M
//   M_inv    (C, C, 1, 1) = inverse(Mᵀ)
//   logDetM  ()           = log|det M|
// Forward is conv2d with the stored kernel: per pixel y[o] = Σ_i M_buf[o, i] x[i], i.e. y = Mᵀ x
// for the constructor's M (as FrEIA; FixedLinearTransform applies M itself). Reverse is the
// same with M_inv. The buffers are used as stored, so a loaded state_dict gives FrEIA's numbers.

#include <string>
#include <string_view>

#include <Eigen/Dense>

#include "../core/module.hpp"
#include "../core/parameters.hpp"
#include "fixed_linear.hpp" // detail::fixed_matrix, detail::store_matrix

namespace inn {

/// (C, H, W) -> (C, H, W).
struct Fixed1x1Conv {
    static constexpr std::string_view name = "Fixed1x1Conv";

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s, 3, 3); !r.ok())
            return r;
        if (auto r = expect_no_condition(s); !r.ok())
            return r;
        return returns({s.in()});
    }

    template <Scalar S, signature Sig> struct bind {
        static constexpr index_t C = Sig.in()[0];
        static constexpr index_t P = Sig.in().spatial_size(); // H * W
        using plane = Eigen::Matrix<S, 1, P>;

        parameter<S> M{tensor_shape{C, C, 1, 1}, false};
        parameter<S> M_inv{tensor_shape{C, C, 1, 1}, false};
        parameter<S> logDetM{tensor_shape{}, false};

        explicit bind(generator&) {
            M.matrix(C, C).setIdentity();
            M_inv.matrix(C, C).setIdentity();
        }

        /// FrEIA's constructor: buffers from M (C x C), computed in double.
        template <class DM> void set(const Eigen::MatrixBase<DM>& m) {
            const auto f = detail::fixed_matrix(m, C, "Fixed1x1Conv");
            detail::store_matrix(M, f.Mt);
            detail::store_matrix(M_inv, f.Mt_inv);
            logDetM.values[0] = S(f.log_det);
        }

        void forward(const run_args<S>& a) const { apply(a, M, S(1)); }
        void inverse(const run_args<S>& a) const { apply(a, M_inv, S(-1)); }

        /// Per pixel dL/dx[i] = Σ_o M_buf[o, i] dL/dy[o]: the transposed kernel. The buffers are
        /// fixed and the log-det constant.
        void backward(const backward_args<S>& a) const {
            for (index_t n = 0; n < a.batch; ++n) {
                const S* gy = a.grad_out[0].row(n);
                S* gx = a.grad_in[0].row(n);
                for (index_t i = 0; i < C; ++i) {
                    Eigen::Map<plane> gxi(gx + i * P);
                    gxi = M.data()[i] * Eigen::Map<const plane>(gy);
                    for (index_t o = 1; o < C; ++o)
                        gxi += M.data()[o * C + i] * Eigen::Map<const plane>(gy + o * P);
                }
            }
        }

        template <class V> void visit(V&& v, const std::string& prefix) {
            v(prefix + "M", M.ref());
            v(prefix + "M_inv", M_inv.ref());
            v(prefix + "logDetM", logDetM.ref());
        }

      private:
        // Per sample: out (C x P) = K (C x C) · in (C x P), one plane axpy at a time, so that
        // nothing is allocated whatever the image size.
        void apply(const run_args<S>& a, const parameter<S>& kernel, S sign) const {
            for (index_t n = 0; n < a.batch; ++n) {
                const S* x = a.in[0].row(n);
                S* y = a.out[0].row(n);
                for (index_t o = 0; o < C; ++o) {
                    Eigen::Map<plane> yo(y + o * P);
                    const S* k = kernel.data() + o * C;
                    yo = k[0] * Eigen::Map<const plane>(x);
                    for (index_t i = 1; i < C; ++i)
                        yo += k[i] * Eigen::Map<const plane>(x + i * P);
                }
            }
            if (a.jac) {
                // FrEIA: logDetM * (H * W), a 0-dim tensor broadcast over the batch.
                const S ljd = sign * (logDetM.values[0] * S(P));
                for (index_t n = 0; n < a.batch; ++n)
                    a.ljd[n] += ljd;
            }
        }
    };
};

} // namespace inn
