#pragma once
// Gradient checks: a module's (or a subnet layer's) backward against central finite
// differences of its forward, in double.
//
// The loss is L = <gy, y> + <gl, ljd> for random cotangents gy (per output) and gl (per sample),
// so dL/dy = gy and dL/d(ljd) = gl are what backward is given. For every scalar of every input,
// condition and trainable parameter, (L(v + h) - L(v - h)) / 2h is compared with the gradient
// backward produced; parameters are changed through their storage and the module prepared again
// (its caches depend on them), exactly as training changes them.
//
// The error of a tensor is max |analytic - numeric| / max(1, max |numeric|): relative to the
// gradient's scale, absolute where gradients are small.
//
//   auto r = inn::test::check_module_gradients<GLOWCouplingBlock<fc>, sig>({.batch = 3});
//   CHECK(r.worst() <= 1e-6);   // INFO(r.describe()) says which tensor

#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <inn/core/module.hpp>
#include <inn/core/random.hpp>
#include <inn/nn/layer.hpp>

namespace inn::test {

using grad_matrix = row_matrix<double>;

struct gradcheck_options {
    index_t batch = 3;
    std::uint64_t seed = 1;
    double h = 1e-5;
    /// Fill input port `i` (batch x size); default: standard normal.
    std::function<void(grad_matrix&, int)> input = {};
    /// Fill condition `j`; default: standard normal.
    std::function<void(grad_matrix&, int)> condition = {};
    /// Conditions that are not differentiated (an integer index, ...).
    std::vector<int> constant_conditions = {};
    /// Noise added to every trainable parameter first, so that zero-initialised ones (FrEIA
    /// initialises some last layers and offsets to zero) take part; 0 to keep the initial values.
    double parameter_noise = 0.1;
    /// Change the parameters after construction (e.g. keep a residual branch contractive).
    std::function<void(const std::string&, const tensor_ref<double>&)> adjust = {};
};

struct gradcheck_entry {
    std::string tensor;
    double error = 0;
};

struct gradcheck_report {
    std::vector<gradcheck_entry> entries;
    double worst() const {
        double w = 0;
        for (const auto& e : entries) w = std::max(w, std::isnan(e.error) ? 1e300 : e.error);
        return w;
    }
    std::string describe() const {
        std::ostringstream os;
        for (const auto& e : entries) os << e.tensor << ": " << e.error << "\n";
        return os.str();
    }
};

namespace detail {

inline double tensor_error(const double* analytic, const double* numeric, index_t n) {
    double scale = 1, diff = 0;
    for (index_t i = 0; i < n; ++i) scale = std::max(scale, std::abs(numeric[i]));
    for (index_t i = 0; i < n; ++i) {
        const double d = std::abs(analytic[i] - numeric[i]);
        diff = std::isnan(d) ? d : std::max(diff, d);
        if (std::isnan(d)) break;
    }
    return diff / scale;
}

inline void fill_normal(grad_matrix& m, generator& g) {
    g.fill_normal(m.data(), std::size_t(m.size()), 0.0, 1.0);
}

/// The trainable real tensors of a module or layer, with gradient storage attached.
struct trainable_tensors {
    std::vector<std::string> keys;
    std::vector<tensor_ref<double>> refs;
    std::vector<std::vector<double>> grads;

    template <class M>
    explicit trainable_tensors(M& m) {
        visit_tensors(m,
                      [&](const std::string& key, const tensor_ref<double>& t) {
                          if (!t.real || !t.trainable) return;
                          keys.push_back(key);
                          refs.push_back(t);
                      },
                      std::string());
        grads.resize(refs.size());
        for (std::size_t i = 0; i < refs.size(); ++i) {
            grads[i].assign(std::size_t(refs[i].shape.numel()), 0.0);
            if (refs[i].grad_slot) *refs[i].grad_slot = grads[i].data();
        }
    }
};

}  // namespace detail

/// Checks `Spec::bind<double, Sig>::backward` against finite differences of its forward.
template <ModuleSpec Spec, signature Sig>
gradcheck_report check_module_gradients(const gradcheck_options& o = {}) {
    using B = bind_in<Spec, double, Sig>;
    static_assert(DifferentiableModule<B, double>,
                  "check_module_gradients: the module has no backward(const backward_args&)");
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
        if (o.adjust) o.adjust(params.keys[i], t);
    }
    prepare_module(m);

    std::vector<grad_matrix> x(n_in), c(n_cond), y(n_out), gy(n_out), gx(n_in), gc(n_cond);
    for (int i = 0; i < n_in; ++i) {
        x[std::size_t(i)].resize(batch, Sig.inputs[i].size());
        o.input ? o.input(x[std::size_t(i)], i) : detail::fill_normal(x[std::size_t(i)], g);
        gx[std::size_t(i)] = grad_matrix::Constant(batch, Sig.inputs[i].size(), std::nan(""));
    }
    for (int j = 0; j < n_cond; ++j) {
        c[std::size_t(j)].resize(batch, Sig.conditions[j].size());
        o.condition ? o.condition(c[std::size_t(j)], j) : detail::fill_normal(c[std::size_t(j)], g);
        gc[std::size_t(j)] = grad_matrix::Zero(batch, Sig.conditions[j].size());
    }
    for (int k = 0; k < n_out; ++k) {
        y[std::size_t(k)].resize(batch, shapes.outputs[k].size());
        gy[std::size_t(k)].resize(batch, shapes.outputs[k].size());
        detail::fill_normal(gy[std::size_t(k)], g);
    }
    grad_matrix gl(1, batch);
    detail::fill_normal(gl, g);

    const index_t scratch_n = std::max({scratch_size_of<B>(pass::forward, batch),
                                        scratch_size_of<B>(pass::backward, batch), index_t(1)});
    std::vector<double> scratch(static_cast<std::size_t>(scratch_n));
    std::vector<double> ljd(static_cast<std::size_t>(batch));

    auto run_forward = [&](double* saved = nullptr) {
        std::vector<cview<double>> in, cond;
        std::vector<view<double>> out;
        for (auto& v : x) in.push_back({v.data(), v.cols()});
        for (auto& v : c) cond.push_back({v.data(), v.cols()});
        for (auto& v : y) out.push_back({v.data(), v.cols()});
        std::fill(ljd.begin(), ljd.end(), 0.0);
        run_args<double> a{batch, in, out, cond, ljd.data(), true, scratch.data()};
        a.saved = saved;
        m.forward(a);
    };
    auto loss = [&] {
        run_forward();
        double l = 0;
        for (int k = 0; k < n_out; ++k)
            l += (y[std::size_t(k)].array() * gy[std::size_t(k)].array()).sum();
        for (index_t b = 0; b < batch; ++b) l += gl(0, b) * ljd[std::size_t(b)];
        return l;
    };

    auto run_backward = [&](std::vector<grad_matrix>& gxs, std::vector<grad_matrix>& gcs,
                            const double* saved) {
        std::vector<cview<double>> in, out, cond, gout;
        std::vector<view<double>> gin, gcond;
        for (auto& v : x) in.push_back({v.data(), v.cols()});
        for (auto& v : y) out.push_back({v.data(), v.cols()});
        for (auto& v : c) cond.push_back({v.data(), v.cols()});
        for (auto& v : gy) gout.push_back({v.data(), v.cols()});
        for (auto& v : gxs) gin.push_back({v.data(), v.cols()});
        for (auto& v : gcs) gcond.push_back({v.data(), v.cols()});
        backward_args<double> a;
        a.batch = batch;
        a.in = in;
        a.out = out;
        a.cond = cond;
        a.grad_out = gout;
        a.grad_ljd = gl.data();
        a.grad_in = gin;
        a.grad_cond = gcond;
        a.scratch = scratch.data();
        a.saved = saved;
        m.backward(a);
    };

    // Analytic.
    run_forward();
    run_backward(gx, gc, nullptr);

    // A module that keeps rows from a training forward for its backward (store mode,
    // run_args::saved): the backward given them agrees with the one above, which recomputes.
    gradcheck_report kept_report;
    if constexpr (saved_per_sample_of<B>() > 0) {
        std::vector<double> saved(std::size_t(batch * saved_per_sample_of<B>()), std::nan(""));
        run_forward(saved.data());
        auto gx2 = gx, gc2 = gc;
        for (auto& v : gx2) v.setConstant(std::nan(""));
        for (auto& v : gc2) v.setZero();
        const auto first = params.grads;
        for (auto& v : params.grads) std::fill(v.begin(), v.end(), 0.0);
        run_backward(gx2, gc2, saved.data());
        for (std::size_t i = 0; i < gx.size(); ++i)
            kept_report.entries.push_back(
                {"kept rows: input " + std::to_string(i),
                 detail::tensor_error(gx2[i].data(), gx[i].data(), gx[i].size())});
        for (std::size_t j = 0; j < gc.size(); ++j)
            kept_report.entries.push_back(
                {"kept rows: condition " + std::to_string(j),
                 detail::tensor_error(gc2[j].data(), gc[j].data(), gc[j].size())});
        for (std::size_t p = 0; p < params.grads.size(); ++p)
            kept_report.entries.push_back(
                {"kept rows: parameter " + params.keys[p],
                 detail::tensor_error(params.grads[p].data(), first[p].data(),
                                      index_t(first[p].size()))});
        for (std::size_t p = 0; p < first.size(); ++p) // into the vectors the slots point at
            std::copy(first[p].begin(), first[p].end(), params.grads[p].begin());
    }

    // Numeric, scalar by scalar.
    auto numeric = [&](double* v, index_t n, auto&& after_change) {
        std::vector<double> d(static_cast<std::size_t>(n));
        for (index_t i = 0; i < n; ++i) {
            const double keep = v[i];
            v[i] = keep + o.h;
            after_change();
            const double up = loss();
            v[i] = keep - o.h;
            after_change();
            const double down = loss();
            v[i] = keep;
            after_change();
            d[std::size_t(i)] = (up - down) / (2 * o.h);
        }
        return d;
    };
    gradcheck_report report;
    auto nothing = [] {};
    for (int i = 0; i < n_in; ++i) {
        auto& v = x[std::size_t(i)];
        const auto d = numeric(v.data(), v.size(), nothing);
        report.entries.push_back({"input " + std::to_string(i),
                                  detail::tensor_error(gx[std::size_t(i)].data(), d.data(), v.size())});
    }
    for (int j = 0; j < n_cond; ++j) {
        if (std::find(o.constant_conditions.begin(), o.constant_conditions.end(), j) !=
            o.constant_conditions.end())
            continue;
        auto& v = c[std::size_t(j)];
        const auto d = numeric(v.data(), v.size(), nothing);
        report.entries.push_back({"condition " + std::to_string(j),
                                  detail::tensor_error(gc[std::size_t(j)].data(), d.data(), v.size())});
    }
    for (std::size_t p = 0; p < params.refs.size(); ++p) {
        const auto& t = params.refs[p];
        const index_t n = index_t(t.shape.numel());
        const auto d = numeric(t.real, n, [&] { prepare_module(m); });
        report.entries.push_back(
            {"parameter " + params.keys[p], detail::tensor_error(params.grads[p].data(), d.data(), n)});
    }
    for (auto& e : kept_report.entries) report.entries.push_back(std::move(e));
    return report;
}

/// Checks the backward of a subnet layer `L` bound for inputs of shape `In`.
template <class L, dims In>
gradcheck_report check_layer_gradients(const gradcheck_options& o = {}) {
    using B = nn::bind_layer<L, double, In>;
    const index_t batch = o.batch;
    constexpr index_t n_x = In.size(), n_y = B::out.size();
    generator g(o.seed);
    B layer(g);
    detail::trainable_tensors params(layer);
    for (std::size_t i = 0; i < params.refs.size(); ++i) {
        const auto& t = params.refs[i];
        for (std::int64_t k = 0; k < t.shape.numel(); ++k)
            t.real[k] += o.parameter_noise * g.normal<double>();
        if (o.adjust) o.adjust(params.keys[i], t);
    }
    grad_matrix x(batch, n_x), y(batch, n_y), gy(batch, n_y);
    o.input ? o.input(x, 0) : detail::fill_normal(x, g);
    detail::fill_normal(gy, g);
    grad_matrix gx = grad_matrix::Constant(batch, n_x, std::nan(""));
    const index_t scratch_n = std::max({nn::layer_scratch<B>(batch),
                                        nn::layer_backward_scratch<B>(batch), index_t(1)});
    std::vector<double> scratch(static_cast<std::size_t>(scratch_n));
    auto loss = [&] {
        layer.forward({x.data(), n_x}, {y.data(), n_y}, batch, scratch.data());
        return (y.array() * gy.array()).sum();
    };
    loss();
    nn::layer_backward_args<double> a;
    a.batch = batch;
    a.x = {x.data(), n_x};
    a.y = {y.data(), n_y};
    a.gy = {gy.data(), n_y};
    a.gx = {gx.data(), n_x};
    a.scratch = scratch.data();
    layer.backward(a);

    gradcheck_report report;
    auto numeric = [&](double* v, index_t n) {
        std::vector<double> d(static_cast<std::size_t>(n));
        for (index_t i = 0; i < n; ++i) {
            const double keep = v[i];
            v[i] = keep + o.h;
            const double up = loss();
            v[i] = keep - o.h;
            const double down = loss();
            v[i] = keep;
            d[std::size_t(i)] = (up - down) / (2 * o.h);
        }
        return d;
    };
    const auto dx = numeric(x.data(), x.size());
    report.entries.push_back({"input", detail::tensor_error(gx.data(), dx.data(), x.size())});
    for (std::size_t p = 0; p < params.refs.size(); ++p) {
        const auto& t = params.refs[p];
        const index_t n = index_t(t.shape.numel());
        const auto d = numeric(t.real, n);
        report.entries.push_back(
            {"parameter " + params.keys[p], detail::tensor_error(params.grads[p].data(), d.data(), n)});
    }
    return report;
}

}  // namespace inn::test
