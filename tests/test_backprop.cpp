// The training executor (graph/backprop.hpp) and trainer (train/trainer.hpp) on networks of
// small test modules whose gradients are simple: a whole network's gradients against central
// finite differences of its loss, the two memory modes against each other, one thread against
// two, views, conditions read by several modules, a condition produced inside the graph, and a
// module whose inverse is only approximate. Independent truth: finite differences of the
// network's own forward pass.

#include "support/checks.hpp"

#include <cmath>

#include <inn/train/trainer.hpp>

namespace {

using namespace inn;
using test::max_rel_error;
using mat = row_matrix<double>;

/// y = x * exp(s) + t per value; log|det J| = sum(s).
struct ScaleShift {
    static constexpr std::string_view name = "ScaleShift";
    static constexpr shape_result output_shapes(const signature& s) { return returns({s.in()}); }
    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t D = Sig.in().size();
        parameter<S> s{tensor_shape{D}}, t{tensor_shape{D}};
        explicit bind(generator& g) {
            g.fill_normal(s.data(), std::size_t(D), S(0), S(0.3));
            g.fill_normal(t.data(), std::size_t(D), S(0), S(0.3));
        }
        void forward(const run_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                for (index_t i = 0; i < D; ++i)
                    a.out[0].row(b)[i] = a.in[0].row(b)[i] * std::exp(s.values[i]) + t.values[i];
                if (a.jac) a.ljd[b] += s.values.sum();
            }
        }
        void inverse(const run_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                for (index_t i = 0; i < D; ++i)
                    a.out[0].row(b)[i] = (a.in[0].row(b)[i] - t.values[i]) * std::exp(-s.values[i]);
                if (a.jac) a.ljd[b] -= s.values.sum();
            }
        }
        void backward(const backward_args<S>& a) const {
            S* gs = a.grad_of(s);
            S* gt = a.grad_of(t);
            for (index_t b = 0; b < a.batch; ++b)
                for (index_t i = 0; i < D; ++i) {
                    const S gy = a.grad_out[0].row(b)[i];
                    a.grad_in[0].row(b)[i] = gy * std::exp(s.values[i]);
                    if (gs) gs[i] += gy * a.in[0].row(b)[i] * std::exp(s.values[i]) +
                                     (a.grad_ljd ? a.grad_ljd[b] : S(0));
                    if (gt) gt[i] += gy;
                }
        }
        template <class V>
        void visit(V&& v, const std::string& prefix) {
            v(prefix + "s", s.ref());
            v(prefix + "t", t.ref());
        }
    };
};

/// An affine coupling with conditions: x = [x1 | x2] (halves), h = tanh(W x1 + V c),
/// y1 = x1, y2 = x2 * exp(h) + h; log|det J| = sum(h).
struct TestCoupling {
    static constexpr std::string_view name = "TestCoupling";
    static constexpr shape_result output_shapes(const signature& s) { return returns({s.in()}); }
    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t D = Sig.in().size(), D1 = D / 2, D2 = D - D1;
        static constexpr index_t C = Sig.conditions.count ? Sig.conditions.total_channels() : 0;
        parameter<S> W{tensor_shape{D2, D1}}, V{tensor_shape{D2, C > 0 ? C : 1}};
        explicit bind(generator& g) {
            g.fill_normal(W.data(), std::size_t(W.size()), S(0), S(0.5));
            g.fill_normal(V.data(), std::size_t(V.size()), S(0), S(0.5));
        }
        static constexpr index_t scratch_size(pass, index_t batch) { return batch * D2; }
        // h of sample b into h[0..D2)
        void hidden(const S* x1, const run_args<S>& a, index_t b, S* h) const {
            for (index_t i = 0; i < D2; ++i) {
                S acc = 0;
                for (index_t j = 0; j < D1; ++j) acc += W.values[i * D1 + j] * x1[j];
                for (index_t j = 0; j < C; ++j) acc += V.values[i * C + j] * cond(a.cond, b, j);
                h[i] = std::tanh(acc);
            }
        }
        // Value j of the conditions concatenated.
        static S cond(std::span<const cview<S>> c, index_t b, index_t j) {
            index_t k = j;
            for (int p = 0; p < Sig.conditions.count; ++p) {
                const index_t n = Sig.conditions[p].size();
                if (k < n) return c[std::size_t(p)].row(b)[k];
                k -= n;
            }
            return 0;
        }
        void forward(const run_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                const S* x = a.in[0].row(b);
                S* y = a.out[0].row(b);
                S* h = a.scratch + b * D2;
                hidden(x, a, b, h);
                for (index_t j = 0; j < D1; ++j) y[j] = x[j];
                S sum = 0;
                for (index_t i = 0; i < D2; ++i) {
                    y[D1 + i] = x[D1 + i] * std::exp(h[i]) + h[i];
                    sum += h[i];
                }
                if (a.jac) a.ljd[b] += sum;
            }
        }
        void inverse(const run_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                const S* y = a.in[0].row(b);
                S* x = a.out[0].row(b);
                S* h = a.scratch + b * D2;
                hidden(y, a, b, h);
                for (index_t j = 0; j < D1; ++j) x[j] = y[j];
                S sum = 0;
                for (index_t i = 0; i < D2; ++i) {
                    x[D1 + i] = (y[D1 + i] - h[i]) * std::exp(-h[i]);
                    sum += h[i];
                }
                if (a.jac) a.ljd[b] -= sum;
            }
        }
        void backward(const backward_args<S>& a) const {
            S* gW = a.grad_of(W);
            S* gV = a.grad_of(V);
            for (index_t b = 0; b < a.batch; ++b) {
                const S* x = a.in[0].row(b);
                const S* gy = a.grad_out[0].row(b);
                S* gx = a.grad_in[0].row(b);
                const S gl = a.grad_ljd ? a.grad_ljd[b] : S(0);
                for (index_t j = 0; j < D1; ++j) gx[j] = gy[j];
                for (index_t i = 0; i < D2; ++i) {
                    S pre = 0;
                    for (index_t j = 0; j < D1; ++j) pre += W.values[i * D1 + j] * x[j];
                    for (index_t j = 0; j < C; ++j) pre += V.values[i * C + j] * cond(a.cond, b, j);
                    const S h = std::tanh(pre);
                    const S g2 = gy[D1 + i];
                    gx[D1 + i] = g2 * std::exp(h);
                    const S gh = g2 * (x[D1 + i] * std::exp(h) + 1) + gl;
                    const S gpre = gh * (1 - h * h);
                    for (index_t j = 0; j < D1; ++j) {
                        gx[j] += gpre * W.values[i * D1 + j];
                        if (gW) gW[i * D1 + j] += gpre * x[j];
                    }
                    index_t k = 0;
                    for (int p = 0; p < Sig.conditions.count; ++p)
                        for (index_t j = 0; j < Sig.conditions[p].size(); ++j, ++k) {
                            if (!a.grad_cond.empty())
                                a.grad_cond[std::size_t(p)].row(b)[j] += gpre * V.values[i * C + k];
                            if (gV) gV[i * C + k] += gpre * cond(a.cond, b, k);
                        }
                }
            }
        }
        template <class V_>
        void visit(V_&& v, const std::string& prefix) {
            v(prefix + "W", W.ref());
            v(prefix + "V", V.ref());
        }
    };
};

/// y = x + 0.1 tanh(x) per value, whose `inverse` is only the first-order approximation
/// x = y - 0.1 tanh(y): the trainer must keep its input rather than recompute it.
struct Approximate {
    static constexpr shape_result output_shapes(const signature& s) { return returns({s.in()}); }
    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t D = Sig.in().size();
        static constexpr inverse_kind inversion = inverse_kind::approximate;
        explicit bind(generator&) {}
        void forward(const run_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                S ljd = 0;
                for (index_t i = 0; i < D; ++i) {
                    const S x = a.in[0].row(b)[i], t = std::tanh(x);
                    a.out[0].row(b)[i] = x + S(0.1) * t;
                    ljd += std::log(1 + S(0.1) * (1 - t * t));
                }
                if (a.jac) a.ljd[b] += ljd;
            }
        }
        void inverse(const run_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b)
                for (index_t i = 0; i < D; ++i)
                    a.out[0].row(b)[i] = a.in[0].row(b)[i] - S(0.1) * std::tanh(a.in[0].row(b)[i]);
        }
        void backward(const backward_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b)
                for (index_t i = 0; i < D; ++i) {
                    const S x = a.in[0].row(b)[i], t = std::tanh(x), d = 1 - t * t;
                    const S gl = a.grad_ljd ? a.grad_ljd[b] : S(0);
                    // d/dx log(1 + 0.1 d) = 0.1 * d'(x) / (1 + 0.1 d), d' = -2 t d
                    a.grad_in[0].row(b)[i] = a.grad_out[0].row(b)[i] * (1 + S(0.1) * d) +
                                             gl * S(0.1) * (-2 * t * d) / (1 + S(0.1) * d);
                }
        }
    };
};

/// Split into two halves and join them again, both declared as views (so the trainer must
/// handle views of values and of gradients).
struct Halves {
    static constexpr shape_result output_shapes(const signature& s) {
        const int c = s.in()[0];
        return returns({make_dims({c / 2}), make_dims({c - c / 2})});
    }
    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t D = Sig.in().size(), D1 = D / 2;
        static constexpr view_kind view = view_kind::outputs_in_input;
        explicit bind(generator&) {}
        void forward(const run_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                std::copy_n(a.in[0].row(b), D1, a.out[0].row(b));
                std::copy_n(a.in[0].row(b) + D1, D - D1, a.out[1].row(b));
            }
        }
        void inverse(const run_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                std::copy_n(a.in[0].row(b), D1, a.out[0].row(b));
                std::copy_n(a.in[1].row(b), D - D1, a.out[0].row(b) + D1);
            }
        }
        void backward(const backward_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                std::copy_n(a.grad_out[0].row(b), D1, a.grad_in[0].row(b));
                std::copy_n(a.grad_out[1].row(b), D - D1, a.grad_in[0].row(b) + D1);
            }
        }
    };
};
struct Join {
    static constexpr shape_result output_shapes(const signature& s) {
        return returns({make_dims({s.inputs[0][0] + s.inputs[1][0]})});
    }
    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t D1 = Sig.inputs[0].size(), D2 = Sig.inputs[1].size();
        static constexpr view_kind view = view_kind::inputs_in_output;
        explicit bind(generator&) {}
        void forward(const run_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                std::copy_n(a.in[0].row(b), D1, a.out[0].row(b));
                std::copy_n(a.in[1].row(b), D2, a.out[0].row(b) + D1);
            }
        }
        void inverse(const run_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                std::copy_n(a.in[0].row(b), D1, a.out[0].row(b));
                std::copy_n(a.in[0].row(b) + D1, D2, a.out[1].row(b));
            }
        }
        void backward(const backward_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) {
                std::copy_n(a.grad_out[0].row(b), D1, a.grad_in[0].row(b));
                std::copy_n(a.grad_out[0].row(b) + D1, D2, a.grad_in[1].row(b));
            }
        }
    };
};

using Chain = SequenceINN<Shape<6>, Conditions<Shape<3>>, ScaleShift, Conditioned<TestCoupling, 0>,
                          Approximate, Conditioned<TestCoupling, 0>, ScaleShift>::with_scalar<double>;

namespace g {
// Two inputs, a condition read by two modules, a module conditioned on a buffer inside the
// graph (FrEIA's reverse condition routing), and views.
struct x1 : InputNode<Shape<6>> {};
struct x2 : InputNode<Shape<4>> {};
struct c : ConditionNode<Shape<2>> {};
struct a : Node<ScaleShift, x1> {};
struct split : Node<Halves, a> {};
struct b : Node<TestCoupling, out<split, 0>, conditions<c>> {};
struct d : Node<TestCoupling, x2, conditions<c, out<split, 1>>> {};
struct e : Node<ScaleShift, out<split, 1>> {};
struct join : Node<Join, inputs<b, e>> {};
struct f : Node<TestCoupling, join> {};
struct z1 : OutputNode<f> {};
struct z2 : OutputNode<d> {};
using Net = GraphINN<x1, x2, c, a, split, b, d, e, join, f, z1, z2>::with_scalar<double>;
}  // namespace g

/// All trainable parameters in visit order, flattened, and a way to write them back.
template <class Net>
std::vector<double*> parameter_pointers(Net& net) {
    std::vector<double*> p;
    std::as_const(net).visit([&](const std::string&, const tensor_ref<double>& t) {
        if (t.real && t.trainable)
            for (std::int64_t i = 0; i < t.shape.numel(); ++i) p.push_back(t.real + i);
    });
    return p;
}
template <class Net>
std::vector<double> parameter_gradients(Net& net) {
    std::vector<double> gr;
    std::as_const(net).visit([&](const std::string&, const tensor_ref<double>& t) {
        if (t.real && t.trainable)
            for (std::int64_t i = 0; i < t.shape.numel(); ++i) gr.push_back(t.grad()[i]);
    });
    return gr;
}

/// FrEIA's loss from a network's own forward pass.
template <class Z>
double nll(const Z& z, const Eigen::VectorXd& ljd, index_t dims) {
    double l = 0;
    for (Eigen::Index b = 0; b < ljd.size(); ++b) l += 0.5 * z.row(b).squaredNorm() - ljd(b);
    return l / double(ljd.size() * dims);
}

TEST_CASE("backprop: a chain's gradients match finite differences in both memory modes",
          "[train]") {
    for (auto mode : {train::store, train::recompute}) {
        INFO("mode " << (mode == train::store ? "store" : "recompute"));
        Chain net(3);
        const mat x = test::random_batch(5, 6, 1), c = test::random_batch(5, 3, 2);
        train::trainer t(net, {.memory = mode});
        const double loss = t.step(x, train::max_likelihood, conditions(c));
        auto loss_of = [&] {
            net.parameters_changed();
            auto [z, ljd] = net.forward(x, conditions(c));
            return nll(z, ljd, 6);
        };
        CHECK(loss == Approx(loss_of()).epsilon(1e-12));
        const auto grads = parameter_gradients(net);
        auto params = parameter_pointers(net);
        REQUIRE(grads.size() == params.size());
        const double h = 1e-6;
        double worst = 0;
        for (std::size_t i = 0; i < params.size(); ++i) {
            const double keep = *params[i];
            *params[i] = keep + h;
            const double up = loss_of();
            *params[i] = keep - h;
            const double down = loss_of();
            *params[i] = keep;
            worst = std::max(worst, std::abs((up - down) / (2 * h) - grads[i]));
        }
        CHECK(worst < 1e-7);
        // Input and condition gradients.
        const mat gx = t.input_gradient(), gc = t.condition_gradient();
        double worst_x = 0;
        for (int which = 0; which < 2; ++which) {
            mat v = which == 0 ? x : c;
            for (Eigen::Index i = 0; i < v.size(); ++i) {
                mat up = v, down = v;
                up.data()[i] += h;
                down.data()[i] -= h;
                auto l = [&](const mat& m) {
                    auto [z, ljd] = which == 0 ? net.forward(m, conditions(c)) : net.forward(x, conditions(m));
                    return nll(z, ljd, 6);
                };
                const double num = (l(up) - l(down)) / (2 * h);
                worst_x = std::max(worst_x, std::abs(num - (which == 0 ? gx : gc).data()[i]));
            }
        }
        CHECK(worst_x < 1e-7);
    }
}

TEST_CASE("backprop: store and recompute give the same gradients; recompute keeps what it "
          "cannot invert",
          "[train]") {
    Chain a(4), b(4);
    const mat x = test::random_batch(7, 6, 3), c = test::random_batch(7, 3, 4);
    train::trainer ta(a, {.memory = train::store});
    train::trainer tb(b, {.memory = train::recompute});
    const double la = ta.step(x, train::max_likelihood, conditions(c));
    const double lb = tb.step(x, train::max_likelihood, conditions(c));
    CHECK(la == lb);
    const auto ga = parameter_gradients(a), gb = parameter_gradients(b);
    double worst = 0;
    for (std::size_t i = 0; i < ga.size(); ++i)
        worst = std::max(worst, std::abs(ga[i] - gb[i]) / (1 + std::abs(ga[i])));
    CHECK(worst < 1e-10);
    CHECK(max_rel_error(tb.input_gradient(), ta.input_gradient()) < 1e-10);
}

TEST_CASE("backprop: a graph with views, shared conditions and a condition from inside",
          "[train]") {
    for (auto mode : {train::store, train::recompute}) {
        INFO("mode " << (mode == train::store ? "store" : "recompute"));
        g::Net net(5);
        const mat x1 = test::random_batch(4, 6, 5), x2 = test::random_batch(4, 4, 6),
                  c = test::random_batch(4, 2, 7);
        train::trainer t(net, {.memory = mode});
        t.step(inputs(x1, x2), train::max_likelihood, conditions(c));
        auto loss_of = [&] {
            net.parameters_changed();
            auto [z, ljd] = net.forward(inputs(x1, x2), conditions(c));
            double l = 0;
            for (Eigen::Index b = 0; b < ljd.size(); ++b)
                l += 0.5 * (z[0].row(b).squaredNorm() + z[1].row(b).squaredNorm()) - ljd(b);
            return l / double(ljd.size() * 10);
        };
        const auto grads = parameter_gradients(net);
        auto params = parameter_pointers(net);
        const double h = 1e-6;
        double worst = 0;
        for (std::size_t i = 0; i < params.size(); ++i) {
            const double keep = *params[i];
            *params[i] = keep + h;
            const double up = loss_of();
            *params[i] = keep - h;
            const double down = loss_of();
            *params[i] = keep;
            worst = std::max(worst, std::abs((up - down) / (2 * h) - grads[i]));
        }
        CHECK(worst < 1e-7);
    }
}

TEST_CASE("backprop: two threads give one thread's gradients", "[train][threads]") {
    for (auto mode : {train::store, train::recompute}) {
        Chain one(6), two(6);
        two.set_threads(2);
        const mat x = test::random_batch(64, 6, 8), c = test::random_batch(64, 3, 9);
        train::trainer t1(one, {.memory = mode});
        train::trainer t2(two, {.memory = mode});
        const double l1 = t1.step(x, train::max_likelihood, conditions(c));
        const double l2 = t2.step(x, train::max_likelihood, conditions(c));
        CHECK(l2 == Approx(l1).epsilon(1e-14));
        const auto g1 = parameter_gradients(one), g2 = parameter_gradients(two);
        double worst = 0;
        for (std::size_t i = 0; i < g1.size(); ++i)
            worst = std::max(worst, std::abs(g1[i] - g2[i]) / (1 + std::abs(g1[i])));
        CHECK(worst < 1e-13);
        CHECK(max_rel_error(t2.input_gradient(), t1.input_gradient()) < 1e-14);
    }
}

template <int N>
using Deep =
    typename SequenceINN<Shape<8>, Repeat<N, ScaleShift, TestCoupling>>::template with_scalar<double>;

TEST_CASE("backprop: recompute keeps memory flat in depth, store grows with it", "[train]") {
    Deep<8> shallow_s(1), shallow_r(1);
    Deep<64> deep_s(1), deep_r(1);
    train::trainer s8(shallow_s, {.memory = train::store});
    train::trainer s64(deep_s, {.memory = train::store});
    train::trainer r8(shallow_r, {.memory = train::recompute});
    train::trainer r64(deep_r, {.memory = train::recompute});
    s8.reserve(256);
    r8.reserve(256);
    s64.reserve(256);
    r64.reserve(256);
    CHECK(r64.value_bytes() == r8.value_bytes());
    CHECK(s64.value_bytes() > 7 * s8.value_bytes());
    CHECK(double(r64.workspace_bytes()) <= 1.1 * double(r8.workspace_bytes()));
}

}  // namespace
