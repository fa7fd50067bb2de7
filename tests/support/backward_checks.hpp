#pragma once
// The conventions of `backward_args` that finite differences do not see, checked on one module
// (double), next to tests/support/gradcheck.hpp's numbers:
//
//   * grad_ljd == nullptr means zero: the same results as an explicit zero per sample;
//   * grad_cond and parameter gradients are ADDED to (a condition may feed several modules),
//     grad_in is written whatever it held;
//   * param_grads = false leaves parameter gradients alone and changes nothing else;
//   * an empty grad_cond (not wanted) changes nothing else.
//
// All comparisons are exact: a module sums its contribution apart and adds it once, so what the
// destination held before shifts the result by exactly that amount.
//
//   auto r = inn::test::check_backward_conventions<ActNorm, sig>({});
//   CHECK(r.worst() == 0);   // INFO(r.describe()) says which rule

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gradcheck.hpp"

namespace inn::test {

namespace detail {

/// max |a - b| over n values; NaN when either holds a NaN.
inline double max_difference(const double* a, const double* b, index_t n) {
    double d = 0;
    for (index_t i = 0; i < n; ++i) {
        const double e = std::abs(a[i] - b[i]);
        if (std::isnan(e))
            return e;
        d = std::max(d, e);
    }
    return d;
}

} // namespace detail

/// Each entry's error is the largest difference between two runs that must agree exactly.
template <ModuleSpec Spec, signature Sig>
gradcheck_report check_backward_conventions(const gradcheck_options& o = {}) {
    using B = bind_in<Spec, double, Sig>;
    static constexpr shape_result shapes = Spec::output_shapes(Sig);
    static_assert(shapes.ok());
    constexpr int n_in = Sig.inputs.count, n_out = shapes.outputs.count;
    constexpr int n_cond = Sig.conditions.count;
    const index_t batch = o.batch;

    generator g(o.seed);
    B m(g);
    detail::trainable_tensors params(m);
    for (std::size_t i = 0; i < params.refs.size(); ++i) {
        const auto& t = params.refs[i];
        for (std::int64_t k = 0; k < t.shape.numel(); ++k)
            t.real[k] += o.parameter_noise * g.normal<double>();
        if (o.adjust)
            o.adjust(params.keys[i], t);
    }
    prepare_module(m);

    std::vector<grad_matrix> x(n_in), c(n_cond), y(n_out), gy(n_out);
    for (int i = 0; i < n_in; ++i) {
        x[std::size_t(i)].resize(batch, Sig.inputs[i].size());
        o.input ? o.input(x[std::size_t(i)], i) : detail::fill_normal(x[std::size_t(i)], g);
    }
    for (int j = 0; j < n_cond; ++j) {
        c[std::size_t(j)].resize(batch, Sig.conditions[j].size());
        o.condition ? o.condition(c[std::size_t(j)], j) : detail::fill_normal(c[std::size_t(j)], g);
    }
    for (int k = 0; k < n_out; ++k) {
        y[std::size_t(k)].resize(batch, shapes.outputs[k].size());
        gy[std::size_t(k)].resize(batch, shapes.outputs[k].size());
        detail::fill_normal(gy[std::size_t(k)], g);
    }
    const index_t scratch_n = std::max({scratch_size_of<B>(pass::forward, batch),
                                        scratch_size_of<B>(pass::backward, batch), index_t(1)});
    std::vector<double> scratch(static_cast<std::size_t>(scratch_n));
    std::vector<double> ljd(static_cast<std::size_t>(batch), 0.0);
    {
        std::vector<cview<double>> in, cond;
        std::vector<view<double>> out;
        for (auto& v : x)
            in.push_back({v.data(), v.cols()});
        for (auto& v : c)
            cond.push_back({v.data(), v.cols()});
        for (auto& v : y)
            out.push_back({v.data(), v.cols()});
        m.forward(run_args<double>{batch, in, out, cond, ljd.data(), true, scratch.data()});
    }

    // The gradients of one backward call.
    struct result {
        std::vector<grad_matrix> gx, gc;
        std::vector<std::vector<double>> gp;
    };
    struct call {
        const double* grad_ljd = nullptr;
        double fill_in = std::nan(""); // what grad_in holds before the call
        double fill_acc = 0;           // what grad_cond and the parameter gradients hold
        bool param_grads = true;
        bool cond_wanted = true;
    };
    auto run = [&](const call& k) {
        result r;
        for (int i = 0; i < n_in; ++i)
            r.gx.push_back(grad_matrix::Constant(batch, Sig.inputs[i].size(), k.fill_in));
        for (int j = 0; j < n_cond; ++j)
            r.gc.push_back(grad_matrix::Constant(batch, Sig.conditions[j].size(), k.fill_acc));
        for (std::size_t p = 0; p < params.refs.size(); ++p)
            std::fill(params.grads[p].begin(), params.grads[p].end(), k.fill_acc);
        std::vector<cview<double>> in, out, cond, gout;
        std::vector<view<double>> gin, gcond;
        for (auto& v : x)
            in.push_back({v.data(), v.cols()});
        for (auto& v : y)
            out.push_back({v.data(), v.cols()});
        for (auto& v : c)
            cond.push_back({v.data(), v.cols()});
        for (auto& v : gy)
            gout.push_back({v.data(), v.cols()});
        for (auto& v : r.gx)
            gin.push_back({v.data(), v.cols()});
        if (k.cond_wanted)
            for (auto& v : r.gc)
                gcond.push_back({v.data(), v.cols()});
        backward_args<double> a;
        a.batch = batch;
        a.in = in;
        a.out = out;
        a.cond = cond;
        a.grad_out = gout;
        a.grad_ljd = k.grad_ljd;
        a.grad_in = gin;
        a.grad_cond = gcond;
        a.scratch = scratch.data();
        a.param_grads = k.param_grads;
        m.backward(a);
        r.gp = params.grads;
        return r;
    };
    // max |a - (b + shift)| over every gradient (grad_in without the shift).
    auto compare = [&](const result& a, const result& b, double shift, bool with_cond,
                       bool with_params) {
        double d = 0;
        for (int i = 0; i < n_in; ++i) {
            const auto& u = a.gx[std::size_t(i)];
            d = std::max(d,
                         detail::max_difference(u.data(), b.gx[std::size_t(i)].data(), u.size()));
        }
        for (int j = 0; with_cond && j < n_cond; ++j) {
            const grad_matrix v = b.gc[std::size_t(j)].array() + shift;
            d = std::max(d,
                         detail::max_difference(a.gc[std::size_t(j)].data(), v.data(), v.size()));
        }
        for (std::size_t p = 0; with_params && p < params.refs.size(); ++p) {
            std::vector<double> v = b.gp[p];
            for (double& e : v)
                e += shift;
            d = std::max(d, detail::max_difference(a.gp[p].data(), v.data(), index_t(v.size())));
        }
        return d;
    };

    const std::vector<double> zeros(static_cast<std::size_t>(batch), 0.0);
    const result base = run({.grad_ljd = zeros.data()});
    gradcheck_report report;
    report.entries.push_back(
        {"grad_ljd null = zero", compare(run({.grad_ljd = nullptr}), base, 0, true, true)});
    report.entries.push_back({"gradients added to, grad_in written",
                              compare(run({.grad_ljd = zeros.data(), .fill_in = 7, .fill_acc = 1}),
                                      base, 1, true, true)});
    {
        const result r = run({.grad_ljd = zeros.data(), .fill_acc = 3, .param_grads = false});
        double d = compare(r, base, 3, true, false);
        for (std::size_t p = 0; p < params.refs.size(); ++p)
            for (double e : r.gp[p])
                d = std::max(d, std::abs(e - 3));
        report.entries.push_back({"param_grads = false", d});
    }
    {
        const result r = run({.grad_ljd = zeros.data(), .fill_acc = 5, .cond_wanted = false});
        double d = compare(r, base, 5, false, true);
        for (const auto& v : r.gc)
            d = std::max(d, (v.array() - 5).abs().maxCoeff());
        report.entries.push_back({"grad_cond not wanted", d});
    }
    return report;
}

} // namespace inn::test
