#pragma once
// FixedLinearTransform (FrEIA.modules.FixedLinearTransform): a fixed affine map of vectors,
// y = M x + b per sample, log|det J| = log|det M|.
//
// FrEIA's state_dict holds derived buffers, in this order (none trainable):
//   M        (d, d)  = Mᵀ of the constructor's M, so that a row vector maps as y = x · M_buf + b
//   M_inv    (d, d)  = inverse(Mᵀ)
//   b        (1, d)  = b[None, :], or a 0-dim scalar 0. when FrEIA was given no b
//   logDetM  ()      = log|det M|
// Forward and reverse use the buffers as stored (y = x · M_buf + b, x = (y − b) · M_inv), so a
// loaded state_dict gives FrEIA's numbers.
//
// The two forms of `b`: the module always has room for d values and a flag says which form it
// holds; `visit` reports the shape it currently holds. A default module (M = identity, b = 0)
// and `set(M, b)` hold the (1, d) form; `set(M)` and `set_scalar_b()` switch to FrEIA's 0-dim
// form (b = None), whose single value is broadcast. A state_dict must be loaded into a module
// holding the same form (as in PyTorch): call `set_scalar_b()` before loading a FrEIA model built
// without b.

#include <cmath>
#include <stdexcept>
#include <string>
#include <string_view>

#include <Eigen/Dense>

#include "../core/module.hpp"
#include "../core/parameters.hpp"

namespace inn {

namespace detail {

/// FrEIA's buffers for a fixed matrix M, computed in double: Mᵀ, inverse(Mᵀ), log|det M|.
struct fixed_matrix_buffers {
    Eigen::MatrixXd Mt, Mt_inv;
    double log_det = 0;
};

template <class Derived>
fixed_matrix_buffers fixed_matrix(const Eigen::MatrixBase<Derived>& M, index_t size,
                                  const char* who) {
    if (M.rows() != size || M.cols() != size)
        throw std::invalid_argument(std::string(who) + ": M must be " + std::to_string(size) + "x" +
                                    std::to_string(size) + ", got " + std::to_string(M.rows()) +
                                    "x" + std::to_string(M.cols()));
    fixed_matrix_buffers r;
    r.Mt = M.template cast<double>().transpose();
    Eigen::PartialPivLU<Eigen::MatrixXd> lu(r.Mt);
    r.Mt_inv = lu.inverse();
    // slogdet's logabsdet: sum of log|u_ii| of the LU factors (det Mᵀ = det M).
    for (index_t i = 0; i < size; ++i)
        r.log_det += std::log(std::abs(lu.matrixLU()(i, i)));
    return r;
}

/// Copies a double matrix into a row-major buffer of scalar S.
template <Scalar S> void store_matrix(parameter<S>& p, const Eigen::MatrixXd& m) {
    p.matrix(m.rows(), m.cols()) = m.cast<S>();
}

} // namespace detail

/// Rank-1 input (d,) -> (d,).
struct FixedLinearTransform {
    static constexpr std::string_view name = "FixedLinearTransform";

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s, 1, 1); !r.ok())
            return r;
        if (auto r = expect_no_condition(s); !r.ok())
            return r;
        return returns({s.in()});
    }

    template <Scalar S, signature Sig> struct bind {
        static constexpr index_t d = Sig.in()[0];
        using row = Eigen::Matrix<S, 1, d>;

        parameter<S> M{tensor_shape{d, d}, false};
        parameter<S> M_inv{tensor_shape{d, d}, false};
        parameter<S> b{tensor_shape{1, d}, false};
        parameter<S> logDetM{tensor_shape{}, false};

        explicit bind(generator&) {
            M.matrix(d, d).setIdentity();
            M_inv.matrix(d, d).setIdentity();
        }

        /// FrEIA's constructor with M and b: buffers from M (d x d) and b (d), in double.
        template <class DM, class DB>
        void set(const Eigen::MatrixBase<DM>& m, const Eigen::MatrixBase<DB>& bias) {
            if (bias.size() != d)
                throw std::invalid_argument("FixedLinearTransform: b must have " +
                                            std::to_string(d) + " entries, got " +
                                            std::to_string(bias.size()));
            set_matrix(m);
            for (index_t i = 0; i < d; ++i)
                b.values[i] = S(double(bias(i)));
            scalar_b_ = false;
        }
        /// FrEIA's constructor without b: `b` becomes the 0-dim scalar 0.
        template <class DM> void set(const Eigen::MatrixBase<DM>& m) {
            set_matrix(m);
            set_scalar_b();
        }
        /// Switches `b` to FrEIA's 0-dim form (b = None) holding `value`, broadcast over x.
        void set_scalar_b(S value = S(0)) {
            b.values.setConstant(value);
            scalar_b_ = true;
        }
        /// Whether `b` is the 0-dim scalar (FrEIA built without b).
        bool scalar_b() const { return scalar_b_; }

        void forward(const run_args<S>& a) const {
            for (index_t n = 0; n < a.batch; ++n) {
                const S* x = a.in[0].row(n);
                Eigen::Map<row> y(a.out[0].row(n));
                // x · M_buf, then + b (FrEIA: x.mm(M) + b).
                y = x[0] * buffer_row(M, 0);
                for (index_t k = 1; k < d; ++k)
                    y += x[k] * buffer_row(M, k);
                add_b(y);
            }
            if (a.jac)
                for (index_t n = 0; n < a.batch; ++n)
                    a.ljd[n] += logDetM.values[0];
        }

        void inverse(const run_args<S>& a) const {
            for (index_t n = 0; n < a.batch; ++n) {
                const S* y = a.in[0].row(n);
                Eigen::Map<row> x(a.out[0].row(n));
                // (y - b) · M_inv, one entry of (y - b) at a time: no temporary row.
                for (index_t k = 0; k < d; ++k) {
                    const S yk = y[k] - b.values[scalar_b_ ? 0 : k];
                    if (k == 0)
                        x = yk * buffer_row(M_inv, 0);
                    else
                        x += yk * buffer_row(M_inv, k);
                }
            }
            if (a.jac)
                for (index_t n = 0; n < a.batch; ++n)
                    a.ljd[n] -= logDetM.values[0];
        }

        /// dL/dx = dL/dy · M_bufᵀ; the buffers are fixed and the log-det constant.
        void backward(const backward_args<S>& a) const {
            for (index_t n = 0; n < a.batch; ++n) {
                const S* gy = a.grad_out[0].row(n);
                S* gx = a.grad_in[0].row(n);
                for (index_t i = 0; i < d; ++i)
                    gx[i] = buffer_row(M, i).dot(Eigen::Map<const row>(gy));
            }
        }

        template <class V> void visit(V&& v, const std::string& prefix) {
            v(prefix + "M", M.ref());
            v(prefix + "M_inv", M_inv.ref());
            tensor_ref<S> bref = b.ref();
            if (scalar_b_)
                bref.shape = tensor_shape{};
            v(prefix + "b", bref);
            v(prefix + "logDetM", logDetM.ref());
        }

      private:
        template <class DM> void set_matrix(const Eigen::MatrixBase<DM>& m) {
            const auto f = detail::fixed_matrix(m, d, "FixedLinearTransform");
            detail::store_matrix(M, f.Mt);
            detail::store_matrix(M_inv, f.Mt_inv);
            logDetM.values[0] = S(f.log_det);
        }
        static Eigen::Map<const row> buffer_row(const parameter<S>& p, index_t k) {
            return Eigen::Map<const row>(p.data() + k * d);
        }
        void add_b(Eigen::Map<row>& y) const {
            if (scalar_b_)
                y.array() += b.values[0];
            else
                y += Eigen::Map<const row>(b.data());
        }

        bool scalar_b_ = false;
    };
};

} // namespace inn
