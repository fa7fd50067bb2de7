// Optimisers (train/adam.hpp, train/sgd.hpp), schedules, gradient clipping, checkpoints, the
// moons data and the nll helper. Independent truths: torch.optim, torch.optim.lr_scheduler and
// torch.nn.utils.clip_grad_* runs recorded step by step by tests/data/optim/record.py (PyTorch
// 1.13, float64 and float32), scikit-learn's make_moons algorithm run with NumPy, the geometry of
// the two arcs, and, for checkpoints, an uninterrupted run of the same training.

#include "support/checks.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include <inn/data.hpp>
#include <inn/io/safetensors.hpp>
#include <inn/train.hpp>
#include <inn/train/checkpoint.hpp>

namespace {

using namespace inn;

// ---- test modules (as tests/test_backprop.cpp) ------------------------------------------------

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
        void hidden(const S* x1, const run_args<S>& a, index_t b, S* h) const {
            for (index_t i = 0; i < D2; ++i) {
                S acc = 0;
                for (index_t j = 0; j < D1; ++j) acc += W.values[i * D1 + j] * x1[j];
                for (index_t j = 0; j < C; ++j) acc += V.values[i * C + j] * cond(a.cond, b, j);
                h[i] = std::tanh(acc);
            }
        }
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

/// Reverses the order of the values (so that couplings take turns); log|det J| = 0.
struct Reverse {
    static constexpr shape_result output_shapes(const signature& s) { return returns({s.in()}); }
    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t D = Sig.in().size();
        explicit bind(generator&) {}
        static void flip(const S* in, S* out) {
            for (index_t i = 0; i < D; ++i) out[i] = in[D - 1 - i];
        }
        void forward(const run_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) flip(a.in[0].row(b), a.out[0].row(b));
        }
        void inverse(const run_args<S>& a) const { forward(a); }
        void backward(const backward_args<S>& a) const {
            for (index_t b = 0; b < a.batch; ++b) flip(a.grad_out[0].row(b), a.grad_in[0].row(b));
        }
    };
};

/// Holds the parameters of the recorded torch runs: a [2, 3], b [4], c [1], and a buffer that
/// is not trainable between them. Identity map.
struct Holder {
    static constexpr shape_result output_shapes(const signature& s) { return returns({s.in()}); }
    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t D = Sig.in().size();
        parameter<S> a{tensor_shape{2, 3}}, b{tensor_shape{4}}, c{tensor_shape{1}};
        parameter<S> frozen{tensor_shape{2}, false};
        explicit bind(generator&) {}
        void forward(const run_args<S>& r) const {
            for (index_t n = 0; n < r.batch; ++n)
                std::copy_n(r.in[0].row(n), D, r.out[0].row(n));
        }
        void inverse(const run_args<S>& r) const { forward(r); }
        void backward(const backward_args<S>& r) const {
            for (index_t n = 0; n < r.batch; ++n)
                std::copy_n(r.grad_out[0].row(n), D, r.grad_in[0].row(n));
        }
        template <class V>
        void visit(V&& v, const std::string& prefix) {
            v(prefix + "a", a.ref());
            v(prefix + "b", b.ref());
            v(prefix + "frozen", frozen.ref());
            v(prefix + "c", c.ref());
        }
    };
};

template <Scalar S>
using HolderNet = typename SequenceINN<Shape<2>, Holder>::template with_scalar<S>;
template <Scalar S>
using Chain = typename SequenceINN<Shape<2>, ScaleShift, TestCoupling, Reverse, TestCoupling,
                                   Reverse, ScaleShift>::template with_scalar<S>;

// ---- the recorded torch runs ------------------------------------------------------------------

const io::safetensors_file& reference() {
    static const io::safetensors_file f =
        io::safetensors_file::read(INN_TEST_DATA_DIR "/optim/reference.safetensors");
    return f;
}
std::vector<double> recorded(const std::string& key) {
    return reference().to_vector<double>(reference().at(key));
}

constexpr int steps = 10;
const std::array<std::string, 3> names{"a", "b", "c"};
constexpr std::array<index_t, 3> sizes{6, 4, 1};

/// A HolderNet with the recorded initial values and gradient storage of its own (no trainer:
/// the recorded gradients are written there before each step).
template <Scalar S>
struct replay {
    HolderNet<S> net{0};
    std::vector<S> grads = std::vector<S>(11);

    replay() {
        std::size_t offset = 0;
        net.visit([&](const std::string& key, const tensor_ref<S>& t) {
            if (!t.trainable) return;
            const auto init = recorded("init." + key.substr(key.rfind('.') + 1));
            for (std::size_t i = 0; i < init.size(); ++i) t.real[i] = S(init[i]);
            *t.grad_slot = grads.data() + offset;
            offset += init.size();
        });
    }
    void set_gradients(int k) {
        std::size_t offset = 0;
        for (std::size_t p = 0; p < 3; ++p) {
            const auto g = recorded("grad." + names[p]);
            for (index_t i = 0; i < sizes[p]; ++i)
                grads[offset + std::size_t(i)] = S(g[std::size_t(k * sizes[p] + i)]);
            offset += std::size_t(sizes[p]);
        }
    }
    /// Worst |ours - torch's| / max(|torch's|, 1) after step k of `name`.
    double error(const std::string& name, int k) {
        const std::string tag = std::is_same_v<S, double> ? "f64" : "f32";
        double worst = 0;
        net.visit([&](const std::string& key, const tensor_ref<S>& t) {
            if (!t.trainable) return;
            const std::string p = key.substr(key.rfind('.') + 1);
            const auto want = recorded(name + "." + tag + "." + p);
            const auto n = std::size_t(t.shape.numel());
            for (std::size_t i = 0; i < n; ++i) {
                const double w = want[std::size_t(k) * n + i];
                const double e = std::abs(double(t.real[i]) - w) / std::max(std::abs(w), 1.0);
                worst = std::max(worst, e);
            }
        });
        return worst;
    }
};

/// Agreement with torch, relative to max(|value|, 1), over all ten steps: double to 1e-12 (seen:
/// one rounding), float to 8 roundings (seen: up to 4; torch's CPU kernels fuse a + alpha * b
/// into one FMA where this code rounds twice, e.g. SGD's update).
template <Scalar S>
constexpr double tolerance = std::is_same_v<S, double> ? 1e-12 : 8 * 0x1p-24;

enum class clip_kind { none, norm, value };
struct clipping {
    clip_kind kind = clip_kind::none;
    double max = 0, norm_type = 2;
};

/// Runs one recorded case: `make(net)` builds the optimiser, `schedule(opt)` the schedule (or
/// returns 0 for none), the gradients clipped as `clip` says.
template <Scalar S, class Make, class Schedule>
void run_case(const std::string& name, Make make, Schedule schedule, clipping clip = {}) {
    INFO("case " << name << (std::is_same_v<S, double> ? " (double)" : " (float)"));
    replay<S> r;
    auto opt = make(r.net);
    [[maybe_unused]] auto sched = schedule(opt);
    constexpr bool scheduled = !std::is_same_v<decltype(sched), int>;
    const std::string tag = std::is_same_v<S, double> ? "f64" : "f32";
    for (int k = 0; k < steps; ++k) {
        INFO("step " << k);
        r.set_gradients(k);
        if (clip.kind == clip_kind::norm) {
            const S norm = train::clip_grad_norm(opt.parameters(), clip.max, clip.norm_type);
            const double want = recorded(name + "." + tag + ".norm")[std::size_t(k)];
            CHECK(std::abs(double(norm) - want) <= tolerance<S> * want);
        } else if (clip.kind == clip_kind::value) {
            train::clip_grad_value(opt.parameters(), clip.max);
        }
        opt.step();
        CHECK(opt.steps() == k + 1);
        if constexpr (scheduled) {
            sched.step();
            // The same double multiplications as torch's: equal to the bit.
            CHECK(opt.lr() == recorded(name + ".lr")[std::size_t(k)]);
            CHECK(sched.last_lr() == opt.lr());
            CHECK(sched.last_epoch() == k + 1);
        }
        CHECK(r.error(name, k) <= tolerance<S>);
    }
}

constexpr auto no_schedule = [](auto&) { return 0; };

template <Scalar S>
void run_all_cases() {
    run_case<S>("adam_default", [](auto& net) { return train::Adam{net}; }, no_schedule);
    run_case<S>(
        "adam_l2_amsgrad",
        [](auto& net) {
            return train::Adam{net, {.lr = 0.01, .betas = {0.8, 0.99}, .eps = 1e-6,
                                     .weight_decay = 0.1, .amsgrad = true}};
        },
        no_schedule);
    run_case<S>("adam_maximize",
                [](auto& net) { return train::Adam{net, {.lr = 0.01, .maximize = true}}; },
                no_schedule);
    run_case<S>("adamw_default", [](auto& net) { return train::AdamW{net}; }, no_schedule);
    run_case<S>(
        "adamw_amsgrad",
        [](auto& net) {
            return train::AdamW{net, {.lr = 0.02, .weight_decay = 0.1, .amsgrad = true}};
        },
        no_schedule);
    run_case<S>("sgd_plain", [](auto& net) { return train::SGD{net, {.lr = 0.1}}; }, no_schedule);
    run_case<S>(
        "sgd_momentum",
        [](auto& net) {
            return train::SGD{
                net, {.lr = 0.05, .momentum = 0.9, .dampening = 0.25, .weight_decay = 0.01}};
        },
        no_schedule);
    run_case<S>(
        "sgd_nesterov",
        [](auto& net) {
            return train::SGD{
                net, {.lr = 0.05, .momentum = 0.9, .weight_decay = 0.001, .nesterov = true}};
        },
        no_schedule);
    run_case<S>(
        "sgd_maximize",
        [](auto& net) { return train::SGD{net, {.lr = 0.1, .momentum = 0.5, .maximize = true}}; },
        no_schedule);
    run_case<S>("adam_steplr", [](auto& net) { return train::Adam{net, {.lr = 0.01}}; },
                [](auto& opt) { return train::StepLR{opt, 3, 0.5}; });
    run_case<S>("sgd_explr",
                [](auto& net) { return train::SGD{net, {.lr = 0.1, .momentum = 0.9}}; },
                [](auto& opt) { return train::ExponentialLR{opt, 0.8}; });
    run_case<S>("adam_clip_norm", [](auto& net) { return train::Adam{net, {.lr = 0.01}}; },
                no_schedule, {clip_kind::norm, 1.0, 2.0});
    run_case<S>("sgd_clip_inf", [](auto& net) { return train::SGD{net, {.lr = 0.1}}; },
                no_schedule,
                {clip_kind::norm, 0.5, std::numeric_limits<double>::infinity()});
    run_case<S>("sgd_clip_p3", [](auto& net) { return train::SGD{net, {.lr = 0.1}}; },
                no_schedule, {clip_kind::norm, 0.8, 3.0});
    run_case<S>("sgd_clip_value", [](auto& net) { return train::SGD{net, {.lr = 0.1}}; },
                no_schedule, {clip_kind::value, 0.3});
}

TEST_CASE("optim: Adam, AdamW, SGD, schedules and clipping follow torch step by step (double)",
          "[train][optim]") {
    run_all_cases<double>();
}

TEST_CASE("optim: Adam, AdamW, SGD, schedules and clipping follow torch step by step (float)",
          "[train][optim]") {
    run_all_cases<float>();
}

// ---- the optimisers' contract -----------------------------------------------------------------

TEST_CASE("optim: the parameter list holds trainable tensors in visit order", "[train][optim]") {
    HolderNet<double> net(0);
    train::parameter_list params{net};
    REQUIRE(params.entries().size() == 3);
    CHECK(params.entries()[0].key == "module_list.0.a");
    CHECK(params.entries()[1].key == "module_list.0.b");
    CHECK(params.entries()[2].key == "module_list.0.c");  // the frozen buffer is left out
    CHECK(params.entries()[1].offset == 6);
    CHECK(params.entries()[2].offset == 10);
    CHECK(params.scalars() == 11);
    CHECK(params.entries()[0].shape == tensor_shape{2, 3});
    CHECK(params.refers_to(&net));
}

TEST_CASE("optim: a step without gradient storage is a usage_error that changes nothing",
          "[train][optim]") {
    Chain<double> net(1);
    train::Adam opt{net};
    const auto before = train::make_checkpoint(net, opt).tensors;
    REQUIRE_THROWS_AS(opt.step(), usage_error);
    CHECK_THROWS_WITH(opt.step(), Catch::Contains("module_list.0.s") &&
                                      Catch::Contains("no gradient storage") &&
                                      Catch::Contains("trainer"));
    CHECK(opt.steps() == 0);
    const auto after = train::make_checkpoint(net, opt).tensors;
    for (std::size_t i = 0; i < before.size(); ++i) CHECK(before[i].data == after[i].data);
    {
        train::trainer t{net};
        t.step(test::random_batch(8, 2, 3), train::max_likelihood);
        opt.step();  // now it works
        CHECK(opt.steps() == 1);
    }
    // The trainer is gone, and with it the gradients.
    CHECK_THROWS_AS(opt.step(), usage_error);
    train::SGD sgd{net, {.lr = 0.1}};
    CHECK_THROWS_AS(sgd.step(), usage_error);
    CHECK_THROWS_AS(train::clip_grad_norm(net, 1.0), usage_error);
    CHECK_THROWS_AS(train::clip_grad_value(net, 1.0), usage_error);
    CHECK_NOTHROW(opt.zero_grad());  // nothing to zero, as torch skips grad None
}

TEST_CASE("optim: a training step on an empty batch is refused, as nll refuses it",
          "[train][optim]") {
    Chain<double> net(1);
    train::trainer t{net};
    const row_matrix<double> x = test::random_batch(8, 2, 3);
    const double loss = t.step(x, train::max_likelihood);
    CHECK_THROWS_WITH(t.step(row_matrix<double>(0, 2), train::max_likelihood),
                      Catch::Contains("empty"));
    CHECK_THROWS_AS(t.accumulate(row_matrix<double>(0, 2), train::max_likelihood), data_error);
    CHECK(t.step(x, train::max_likelihood) == loss);  // nothing else changed
}

TEST_CASE("optim: a network moved from makes its optimiser refuse", "[train][optim]") {
    Chain<double> net(1);
    train::SGD opt{net, {.lr = 0.1}};
    Chain<double> other = std::move(net);
    CHECK_THROWS_WITH(opt.step(), Catch::Contains("moved from"));
    CHECK_THROWS_AS(train::Adam{net}, usage_error);
}

TEST_CASE("optim: hyper-parameters are checked as torch checks them", "[train][optim]") {
    Chain<double> net(1);
    CHECK_THROWS_WITH(train::Adam(net, {.lr = -1}), Catch::Contains("learning rate"));
    CHECK_THROWS_WITH(train::Adam(net, {.betas = {1.0, 0.999}}), Catch::Contains("betas[0]"));
    CHECK_THROWS_WITH(train::AdamW(net, {.betas = {0.9, -0.1}}), Catch::Contains("betas[1]"));
    CHECK_THROWS_WITH(train::Adam(net, {.eps = -1e-8}), Catch::Contains("eps"));
    CHECK_THROWS_WITH(train::AdamW(net, {.weight_decay = -1}), Catch::Contains("weight_decay"));
    CHECK_THROWS_AS(train::SGD(net, {.momentum = -0.5}), data_error);
    CHECK_THROWS_WITH(train::SGD(net, {.nesterov = true}),
                      Catch::Contains("Nesterov") && Catch::Contains("momentum"));
    CHECK_THROWS_WITH(train::SGD(net, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                      Catch::Contains("dampening"));
    train::Adam opt{net};
    CHECK_THROWS_AS(opt.set_lr(-0.1), data_error);
    CHECK(opt.lr() == 1e-3);
    CHECK_THROWS_WITH(train::StepLR(opt, 0), Catch::Contains("step_size"));
    CHECK_THROWS_AS(train::ExponentialLR(opt, -0.5), data_error);
    CHECK(train::AdamW{net}.hyper_parameters().weight_decay == 1e-2);
    CHECK(train::Adam{net}.hyper_parameters().weight_decay == 0);

    // Stricter than torch: values that would make every step infinite or NaN.
    constexpr double inf = std::numeric_limits<double>::infinity();
    constexpr double nan = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH(train::Adam(net, {.lr = inf}), Catch::Contains("learning rate"));
    CHECK_THROWS_WITH(train::AdamW(net, {.eps = inf}), Catch::Contains("eps"));
    CHECK_THROWS_WITH(train::AdamW(net, {.weight_decay = inf}), Catch::Contains("weight_decay"));
    CHECK_THROWS_WITH(train::SGD(net, {.lr = nan}), Catch::Contains("learning rate"));
    CHECK_THROWS_WITH(train::SGD(net, {.momentum = inf}), Catch::Contains("momentum"));
    CHECK_THROWS_WITH(train::SGD(net, {.momentum = 0.9, .dampening = nan}),
                      Catch::Contains("dampening"));
    CHECK_THROWS_AS(opt.set_lr(inf), data_error);
    CHECK(opt.lr() == 1e-3);
    CHECK_THROWS_WITH(train::ExponentialLR(opt, inf), Catch::Contains("gamma"));
    CHECK_THROWS_WITH(train::StepLR(opt, 2, nan), Catch::Contains("gamma"));
}

TEST_CASE("optim: a network without trainable parameters is refused, as torch refuses an empty "
          "parameter list",
          "[train][optim]") {
    typename SequenceINN<Shape<2>, Reverse>::template with_scalar<double> net(0);
    CHECK_THROWS_WITH(train::Adam{net}, Catch::Contains("without trainable parameters"));
    CHECK_THROWS_AS(train::SGD(net, {.lr = 0.1}), usage_error);
}

/// Reads an optimiser's per-parameter state (visit_state's protocol) by name.
template <Scalar S> struct state_reader {
    std::string name;
    std::vector<S> values;
    void count(std::string_view, std::int64_t&) {}
    void real(std::string_view, double&) {}
    void flag(std::string_view, bool&) {}
    void per_parameter(std::string_view n, std::vector<S>& v) {
        if (n == name)
            values = v;
    }
};
template <Scalar S, class Opt> S state_of(Opt& opt, const std::string& name) {
    state_reader<S> r{name, {}};
    opt.visit_state(r);
    return r.values.at(0);
}

// A moment decaying under zero gradients (a dead ReLU unit's) follows torch's recurrence while
// it is a normal number, then becomes zero: torch's arithmetic leaves it on a subnormal for good
// (0.9 times 4 * 2^-149 rounds back to it), where every instruction on it is slow on Intel cores
// (train/optimizer.hpp). Once Adam's m is zero the parameter stops moving.
TEMPLATE_TEST_CASE("optim: moments decaying under zero gradients end at zero, not subnormal",
                   "[train][optim]", float, double) {
    using S = TestType;
    constexpr S tiny = std::numeric_limits<S>::min();
    replay<S> adam_net, sgd_net;
    train::Adam adam{adam_net.net};
    train::SGD sgd{sgd_net.net, {.lr = 0.1, .momentum = 0.9}};
    S m = 0, buf = 0; // the unflushed recurrences, as torch computes them
    bool left_normal = false;
    S theta_at_zero = 0;
    for (int k = 0; k < 8000; ++k) {
        INFO("step " << k);
        const S g = k == 0 ? S(0.5) : S(0);
        adam_net.grads.assign(adam_net.grads.size(), S(0));
        sgd_net.grads.assign(sgd_net.grads.size(), S(0));
        adam_net.grads[0] = sgd_net.grads[0] = g;
        adam.step();
        sgd.step();
        m = m * S(0.9) + S(1 - 0.9) * g;
        buf = k == 0 ? g : buf * S(0.9) + S(1) * g;
        const S m_opt = state_of<S>(adam, "exp_avg"), buf_opt = state_of<S>(sgd, "momentum_buffer");
        CHECK_FALSE((m_opt != 0 && std::abs(m_opt) < tiny));
        CHECK_FALSE((buf_opt != 0 && std::abs(buf_opt) < tiny));
        if (std::abs(m) >= tiny) {
            CHECK(m_opt == m);
        } else {
            CHECK(m_opt == 0);
            if (!left_normal)
                theta_at_zero = adam_net.net.template module<0>()->a.values[0];
            left_normal = true;
            CHECK(adam_net.net.template module<0>()->a.values[0] == theta_at_zero);
        }
        CHECK(buf_opt == (std::abs(buf) >= tiny ? buf : S(0)));
    }
    // torch's recurrence itself does not reach zero: it stays on a subnormal.
    CHECK((m != 0 && m < tiny && m * S(0.9) == m));
    CHECK((buf != 0 && buf < tiny && buf * S(0.9) == buf));
    CHECK(left_normal);
}

TEST_CASE("optim: zero_grad clears every gradient", "[train][optim]") {
    Chain<double> net(2);
    train::trainer t{net};
    train::Adam opt{net};
    t.step(test::random_batch(8, 2, 4), train::max_likelihood);
    double sum = 0;
    for (const auto& e : opt.parameters().entries())
        for (index_t i = 0; i < e.size; ++i) sum += std::abs(e.grad()[i]);
    CHECK(sum > 0);
    opt.zero_grad();
    for (const auto& e : opt.parameters().entries())
        for (index_t i = 0; i < e.size; ++i) CHECK(e.grad()[i] == 0);
}

TEST_CASE("optim: clipping by norm: the network overload, non-finite norms, bad norm types",
          "[train][optim]") {
    Chain<double> net(2);
    train::trainer t{net};
    train::SGD opt{net, {.lr = 0.1}};
    t.step(test::random_batch(8, 2, 4), train::max_likelihood);
    std::vector<double> g;
    for (const auto& e : opt.parameters().entries()) g.insert(g.end(), e.grad(), e.grad() + e.size);
    double sq = 0;
    for (double v : g) sq += v * v;
    const double norm = std::sqrt(sq), max_norm = norm / 4;
    CHECK(train::clip_grad_norm(net, max_norm) == Approx(norm).epsilon(1e-14));
    std::size_t i = 0;
    for (const auto& e : opt.parameters().entries())
        for (index_t j = 0; j < e.size; ++j, ++i)
            CHECK(e.grad()[j] == Approx(g[i] * max_norm / (norm + 1e-6)).epsilon(1e-14));
    // Below the limit: the gradients stay (scaled by exactly 1).
    const auto kept = opt.parameters().entries()[0].grad()[0];
    train::clip_grad_norm(opt.parameters(), 1e9);
    CHECK(opt.parameters().entries()[0].grad()[0] == kept);

    CHECK_THROWS_WITH(train::clip_grad_norm(net, 1.0, 0.0), Catch::Contains("norm_type"));
    // A negative limit would flip every gradient's sign, NaN poison them (torch allows both).
    CHECK_THROWS_WITH(train::clip_grad_norm(net, -1.0), Catch::Contains("max_norm"));
    CHECK_THROWS_AS(train::clip_grad_norm(net, std::numeric_limits<double>::quiet_NaN()),
                    data_error);
    CHECK(opt.parameters().entries()[0].grad()[0] == kept);  // refused before any change
    CHECK_THROWS_AS(train::clip_grad_value(net, -1.0), data_error);
    opt.parameters().entries()[1].grad()[0] = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH(train::clip_grad_norm(net, 1.0, 2.0, /*error_if_nonfinite=*/true),
                      Catch::Contains("not finite"));
    CHECK(std::isnan(train::clip_grad_norm(net, 1.0)));
    CHECK(std::isnan(opt.parameters().entries()[0].grad()[0]));  // as torch: NaN everywhere
}

// torch 1.13 computes clip_grad_norm_'s factor max_norm / (norm + 1e-6) as
// (norm + 1e-6).reciprocal() * max_norm (Tensor.__rdiv__), which rounds differently from one
// division in about a quarter of float cases; the steps above allow a few roundings. These two
// gradients are such cases, their clipped values printed by torch 1.13 (Debian's, as
// tests/data/optim/record.py uses) with:
//   p = torch.zeros(2, dtype=dt, requires_grad=True); p.grad = torch.tensor(g, dtype=dt)
//   torch.nn.utils.clip_grad_norm_([p], 0.7); [x.hex() for x in p.grad.double().tolist()]
TEMPLATE_TEST_CASE("optim: clipping by norm scales by torch's factor to the bit", "[train][optim]",
                   float, double) {
    using S = TestType;
    replay<S> r;  // gradient storage of its own
    std::fill(r.grads.begin(), r.grads.end(), S(0));
    // The gradient of `a` alone: [27, 36] (float, norm 45) or [9, 12] (double, norm 15).
    const bool f = std::is_same_v<S, float>;
    r.grads[0] = f ? S(27) : S(9);
    r.grads[1] = f ? S(36) : S(12);
    CHECK(train::clip_grad_norm(r.net, 0.7) == (f ? S(45) : S(15)));
    const double want0 = f ? 0x1.ae147cp-2 : 0x1.ae1479003e62cp-2;
    const double want1 = f ? 0x1.1eb852p-1 : 0x1.1eb850aad441dp-1;
    CHECK(r.grads[0] == S(want0));
    CHECK(r.grads[1] == S(want1));
}

// ---- checkpoints ------------------------------------------------------------------------------

/// Moons batches for a few training steps.
template <Scalar S>
std::vector<row_matrix<S>> moons_batches(int n, std::uint64_t seed) {
    generator g(seed);
    std::vector<row_matrix<S>> b;
    for (int k = 0; k < n; ++k) b.push_back(data::make_moons<S>(32, 0.05, g));
    return b;
}

/// Every tensor of two checkpoints equal to the bit (parameters, optimiser and schedule state).
void require_identical(const train::checkpoint_contents& a, const train::checkpoint_contents& b) {
    REQUIRE(a.tensors.size() == b.tensors.size());
    for (std::size_t i = 0; i < a.tensors.size(); ++i) {
        INFO("tensor " << a.tensors[i].name);
        CHECK(a.tensors[i].name == b.tensors[i].name);
        CHECK(a.tensors[i].shape == b.tensors[i].shape);
        CHECK(a.tensors[i].data == b.tensors[i].data);
    }
    CHECK(a.metadata == b.metadata);
}

io::safetensors_file as_file(const train::checkpoint_contents& c, std::string name = "ckpt") {
    return io::safetensors_file::parse(io::serialize_safetensors(c.tensors, c.metadata),
                                       std::move(name));
}

/// Trains `steps` steps straight, and steps / 2, then saves, loads into new objects made with
/// other settings (`make_fresh`), and trains the rest: both must end identical.
template <Scalar S, class Make, class MakeFresh, class Schedule>
void check_resume(Make make, MakeFresh make_fresh, Schedule schedule, int n) {
    const auto batches = moons_batches<S>(n, 7);
    auto train_steps = [&](auto& t, auto& opt, auto& sched, int from, int to) {
        for (int k = from; k < to; ++k) {
            t.step(batches[std::size_t(k)], train::max_likelihood);
            train::clip_grad_norm(opt.parameters(), 5.0);
            opt.step();
            sched.step();
        }
    };
    Chain<S> a(1);
    train::trainer ta{a, {.memory = train::recompute}};
    auto oa = make(a);
    auto sa = schedule(oa);
    train_steps(ta, oa, sa, 0, n);

    Chain<S> b(1);
    train::trainer tb{b, {.memory = train::recompute}};
    auto ob = make(b);
    auto sb = schedule(ob);
    train_steps(tb, ob, sb, 0, n / 2);
    const auto saved = train::make_checkpoint(b, ob, sb);

    Chain<S> c(99);  // other initial values
    train::trainer tc{c, {.memory = train::recompute}};
    auto oc = make_fresh(c);
    auto sc = schedule(oc);
    sc.step();  // a schedule state that the load must replace
    train::load_checkpoint(c, oc, sc, as_file(saved));
    require_identical(train::make_checkpoint(c, oc, sc), saved);
    train_steps(tc, oc, sc, n / 2, n);
    require_identical(train::make_checkpoint(c, oc, sc), train::make_checkpoint(a, oa, sa));
}

TEST_CASE("checkpoint: a resumed run continues bit for bit", "[train][checkpoint]") {
    auto step_lr = [](auto& opt) { return train::StepLR{opt, 3, 0.5}; };
    auto exp_lr = [](auto& opt) { return train::ExponentialLR{opt, 0.9}; };
    SECTION("Adam with StepLR, double") {
        check_resume<double>([](auto& n) { return train::Adam{n, {.lr = 0.02}}; },
                             [](auto& n) { return train::Adam{n}; }, step_lr, 10);
    }
    SECTION("AdamW amsgrad, resumed into an AdamW made without amsgrad, float") {
        check_resume<float>(
            [](auto& n) { return train::AdamW{n, {.lr = 0.02, .amsgrad = true}}; },
            [](auto& n) { return train::AdamW{n}; }, exp_lr, 10);
    }
    SECTION("SGD with Nesterov momentum, resumed into a plain SGD, float") {
        check_resume<float>(
            [](auto& n) {
                return train::SGD{n, {.lr = 0.05, .momentum = 0.9, .nesterov = true}};
            },
            [](auto& n) { return train::SGD{n}; }, step_lr, 12);
    }
}

TEST_CASE("checkpoint: through a file, without a schedule", "[train][checkpoint]") {
    const auto path = std::filesystem::temp_directory_path() /
                      ("inn_test_optim_" + std::to_string(std::random_device{}()) + ".safetensors");
    Chain<double> a(1), b(5);
    train::trainer ta{a};
    train::Adam oa{a, {.lr = 0.01}};
    const auto batches = moons_batches<double>(3, 2);
    for (const auto& x : batches) {
        ta.step(x, train::max_likelihood);
        oa.step();
    }
    train::save_checkpoint(a, oa, path);
    train::Adam ob{b};
    train::load_checkpoint(b, ob, path);
    std::filesystem::remove(path);
    require_identical(train::make_checkpoint(b, ob), train::make_checkpoint(a, oa));
    CHECK(ob.steps() == 3);
    CHECK(ob.lr() == 0.01);
    // The parameters load as a plain state_dict too (the optimiser's keys ignored).
    Chain<double> c(6);
    load_state_dict(c, as_file(train::make_checkpoint(a, oa)), {.ignore_prefixes = {"optimizer."}});
    CHECK(test::max_rel_error(c.forward(batches[0]).z, a.forward(batches[0]).z) == 0);
}

TEST_CASE("checkpoint: a checkpoint that does not fit is refused, naming the key, and nothing "
          "changes",
          "[train][checkpoint]") {
    Chain<double> a(1);
    train::trainer ta{a};
    train::Adam oa{a, {.lr = 0.01, .amsgrad = true}};
    train::StepLR sa{oa, 2};
    for (const auto& x : moons_batches<double>(3, 2)) {
        ta.step(x, train::max_likelihood);
        oa.step();
        sa.step();
    }
    const auto good = train::make_checkpoint(a, oa, sa);

    Chain<double> b(5);
    train::Adam ob{b};
    train::StepLR sb{ob, 7};
    const auto before = train::make_checkpoint(b, ob, sb);
    auto refused = [&](const train::checkpoint_contents& c, const std::string& words) {
        CHECK_THROWS_AS(train::load_checkpoint(b, ob, sb, as_file(c)), io_error);
        CHECK_THROWS_WITH(train::load_checkpoint(b, ob, sb, as_file(c)), Catch::Contains(words));
        require_identical(train::make_checkpoint(b, ob, sb), before);
    };
    auto without = [&](const std::string& key) {
        auto c = good;
        std::erase_if(c.tensors, [&](const auto& t) { return t.name == key; });
        REQUIRE(c.tensors.size() == good.tensors.size() - 1);
        return c;
    };
    auto changed = [&](const std::string& key, auto change) {
        auto c = good;
        for (auto& t : c.tensors)
            if (t.name == key) change(t);
        return c;
    };
    SECTION("missing optimiser state") {
        refused(without("optimizer.state.module_list.1.W.exp_avg_sq"),
                "'optimizer.state.module_list.1.W.exp_avg_sq': missing");
        refused(without("optimizer.state.module_list.5.t.max_exp_avg_sq"),
                "optimizer.state.module_list.5.t.max_exp_avg_sq");
        refused(without("optimizer.step"), "'optimizer.step': missing");
        refused(without("optimizer.beta2"), "optimizer.beta2");
    }
    SECTION("wrong shapes") {
        refused(changed("optimizer.state.module_list.0.s.exp_avg",
                        [](auto& t) { t.shape = {1, 2}; }),
                "'optimizer.state.module_list.0.s.exp_avg': has shape [1, 2], Adam expects [2]");
        refused(changed("optimizer.lr", [](auto& t) {
                    t = io::make_tensor<double>("optimizer.lr", {2}, std::vector<double>{1, 2});
                }),
                "optimizer.lr");
    }
    SECTION("unexpected state") {
        auto c = good;
        c.tensors.push_back(io::make_tensor<double>("optimizer.state.module_list.0.s.momentum",
                                                    {2}, std::vector<double>{0, 0}));
        refused(c, "'optimizer.state.module_list.0.s.momentum': unexpected");
    }
    SECTION("invalid values") {
        refused(changed("optimizer.lr",
                        [](auto& t) {
                            t = io::make_tensor<double>("optimizer.lr", {},
                                                        std::vector<double>{-1});
                        }),
                "learning rate");
        refused(changed("optimizer.step",
                        [](auto& t) {
                            t = io::make_tensor<std::int64_t>("optimizer.step", {},
                                                              std::vector<std::int64_t>{-3});
                        }),
                "'optimizer.step': is negative");
        // A counter that a later step() would overflow (signed overflow: undefined).
        refused(
            changed("scheduler.last_epoch",
                    [](auto& t) {
                        t = io::make_tensor<std::int64_t>(
                            "scheduler.last_epoch", {},
                            std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::max()});
                    }),
            "'scheduler.last_epoch': is 9223372036854775807, beyond any count");
        refused(changed("optimizer.step",
                        [](auto& t) {
                            t = io::make_tensor<std::int64_t>(
                                "optimizer.step", {},
                                std::vector<std::int64_t>{std::int64_t(1) << 62 | 1});
                        }),
                "'optimizer.step': is 4611686018427387905");
    }
    SECTION("another optimiser, another schedule, no schedule") {
        auto c = good;
        c.metadata["optimizer"] = "SGD";
        refused(c, "optimiser \"SGD\", not of \"Adam\"");
        c = good;
        c.metadata["scheduler"] = "ExponentialLR";
        refused(c, "schedule \"ExponentialLR\"");
        c = good;
        c.metadata.erase("scheduler");
        refused(c, "no schedule state");
        CHECK_THROWS_WITH(train::load_checkpoint(b, ob, as_file(good)),
                          Catch::Contains("pass the schedule"));
        c = good;
        c.metadata.erase("format");
        refused(c, "not an inn checkpoint");
    }
    SECTION("the network's parameters do not fit") {
        refused(without("module_list.3.W"), "'module_list.3.W': missing");
        refused(changed("module_list.0.t", [](auto& t) { t.shape = {2, 1}; }), "module_list.0.t");
    }
    SECTION("an optimiser of another network") {
        CHECK_THROWS_WITH(train::load_checkpoint(a, ob, sb, as_file(good)),
                          Catch::Contains("another network"));
        CHECK_THROWS_AS(train::make_checkpoint(b, oa), usage_error);
    }
}

// ---- data ---------------------------------------------------------------------------------------

TEST_CASE("data: make_moons draws as scikit-learn's make_moons with NumPy's RandomState",
          "[data]") {
    struct recorded_case {
        index_t n;
        double noise;
        bool shuffle;
        std::uint64_t seed;
    };
    for (const recorded_case c : {recorded_case{7, 0.0, false, 0}, recorded_case{10, 0.1, true, 3},
                                  recorded_case{9, 0.05, false, 5}}) {
        INFO("n " << c.n << " seed " << c.seed);
        generator g(c.seed);
        const row_matrix<double> x = data::make_moons<double>(c.n, c.noise, g, c.shuffle);
        const auto want = recorded("moons." + std::to_string(c.n) + "." + std::to_string(c.seed));
        REQUIRE(want.size() == std::size_t(2 * c.n));
        for (index_t i = 0; i < x.size(); ++i)
            CHECK(std::abs(x.data()[i] - want[std::size_t(i)]) <= 1e-15);
    }
}

TEST_CASE("data: make_moons without noise lies on the two arcs", "[data]") {
    generator g(0);
    const index_t n = 101, n_out = 50;
    const auto m = data::make_moons_labelled<double>(n, 0.0, g, /*shuffle=*/false);
    REQUIRE(m.x.rows() == n);
    REQUIRE(m.x.cols() == 2);
    for (index_t i = 0; i < n; ++i) {
        const double x = m.x(i, 0), y = m.x(i, 1);
        if (i < n_out) {
            CHECK(m.label[std::size_t(i)] == 0);
            CHECK(std::abs(x * x + y * y - 1) < 1e-14);  // outer: unit circle, upper half
            CHECK(y >= 0);
            if (i > 0) CHECK(x < m.x(i - 1, 0));  // from (1, 0) to (-1, 0)
        } else {
            CHECK(m.label[std::size_t(i)] == 1);
            CHECK(std::abs((x - 1) * (x - 1) + (y - 0.5) * (y - 0.5) - 1) < 1e-14);  // inner
            CHECK(y <= 0.5);
            if (i > n_out) CHECK(x > m.x(i - 1, 0));  // from (0, 0.5) to (2, 0.5)
        }
    }
    CHECK(m.x(0, 0) == 1);
    CHECK(m.x(n_out - 1, 0) == -1);
    CHECK(m.x(n_out, 0) == 0);
    CHECK(m.x(n_out, 1) == 0.5);
    CHECK(m.x(n - 1, 0) == 2);
    // Shuffled: the same points, with their labels, in another order.
    const auto s = data::make_moons_labelled<double>(n, 0.0, g);
    std::vector<std::tuple<double, double, int>> a, b;
    for (index_t i = 0; i < n; ++i) {
        a.emplace_back(m.x(i, 0), m.x(i, 1), m.label[std::size_t(i)]);
        b.emplace_back(s.x(i, 0), s.x(i, 1), s.label[std::size_t(i)]);
    }
    CHECK(a != b);
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    CHECK(a == b);
    // Float: the double values rounded.
    generator g2(0);
    CHECK(data::make_moons<float>(n, 0.0, g2, false) == m.x.cast<float>());
    CHECK(data::make_moons(0, 0.1, g).rows() == 0);
    const row_matrix<float> one = data::make_moons(1, 0.0, g, false);  // the inner moon's start
    CHECK(one(0, 0) == 0);
    CHECK(one(0, 1) == 0.5f);
    CHECK_THROWS_AS(data::make_moons(-1, 0.1, g), data_error);
    CHECK_THROWS_AS(data::make_moons(10, -0.1, g), data_error);
}

TEST_CASE("data: make_moons noise has the requested spread", "[data]") {
    const index_t n = 20000;
    const double noise = 0.1;
    generator g(4);
    const row_matrix<double> clean = data::make_moons<double>(n, 0.0, g, false);
    const row_matrix<double> noisy = data::make_moons<double>(n, noise, g, false);
    const Eigen::ArrayXd d = Eigen::Map<const Eigen::ArrayXd>((noisy - clean).eval().data(), 2 * n);
    const double mean = d.mean(), sd = std::sqrt((d - mean).square().mean());
    CHECK(std::abs(mean) < 4 * noise / std::sqrt(2.0 * double(n)));
    CHECK(std::abs(sd / noise - 1) < 0.02);
}

TEST_CASE("data: randn draws as the generator's fill_normal", "[data]") {
    generator a(3), b(3);
    const row_matrix<double> z = data::randn<double>(500, 4, a);
    REQUIRE(z.rows() == 500);
    REQUIRE(z.cols() == 4);
    std::vector<double> want(2000);
    b.fill_normal(want.data(), want.size(), 0.0, 1.0);
    for (index_t i = 0; i < z.size(); ++i) CHECK(z.data()[i] == want[std::size_t(i)]);
    CHECK(std::abs(z.mean()) < 0.1);
    CHECK(std::abs(std::sqrt(z.array().square().mean()) - 1) < 0.05);
    CHECK_THROWS_AS(data::randn(-1, 2, a), data_error);
}

// ---- losses and a short training --------------------------------------------------------------

TEST_CASE("loss: nll is max_likelihood's value plus 0.5 log 2π, through the forward pass",
          "[train]") {
    Chain<double> net(3);
    generator g(1);
    const row_matrix<double> x = data::make_moons<double>(64, 0.05, g);
    const double half_log_2pi = 0.5 * std::log(2 * std::numbers::pi);
    const double nll = train::nll(net, x);
    // By hand from the forward pass.
    auto [z, ljd] = net.forward(x);
    double by_hand = 0;
    for (index_t b = 0; b < 64; ++b)
        by_hand += 0.5 * z.row(b).squaredNorm() + half_log_2pi * 2 - ljd(b);
    CHECK(nll == Approx(by_hand / (64 * 2)).epsilon(1e-14));
    train::trainer t{net};
    const double loss = t.step(x, train::max_likelihood);
    CHECK(nll == Approx(loss + half_log_2pi).epsilon(1e-14));
    CHECK(train::bits_per_dim(net, x) == Approx(nll / std::log(2.0)).epsilon(1e-15));
    CHECK_THROWS_AS(train::nll(net, row_matrix<double>(0, 2)), data_error);
}

TEST_CASE("train: Adam with clipping and a schedule lowers the held-out nll on the moons",
          "[train]") {
    Chain<float> net(0);
    generator g(11);
    const row_matrix<float> held_out = data::make_moons(512, 0.05, g);
    train::trainer t{net};
    train::Adam opt{net, {.lr = 0.02}};
    train::StepLR sched{opt, 100, 0.5};
    const double before = train::nll(net, held_out);
    for (int k = 0; k < 300; ++k) {
        t.step(data::make_moons(128, 0.05, g), train::max_likelihood);
        train::clip_grad_norm(opt.parameters(), 10.0);
        opt.step();
        sched.step();
    }
    const double after = train::nll(net, held_out);
    INFO("nll " << before << " -> " << after);
    CHECK(after < before - 0.3);
    CHECK(opt.lr() == 0.02 * 0.5 * 0.5 * 0.5);
}

}  // namespace

TEST_CASE("optim: a network another was moved into makes its optimiser refuse", "[train][optim]") {
    // The optimiser points into the parameters' storage; after `net = std::move(fresh)` that
    // storage is fresh's, freed at its scope's end (once a heap-use-after-free in step()).
    Chain<double> net(1);
    train::trainer t{net};
    train::Adam opt{net};
    {
        Chain<double> fresh(5);
        net = std::move(fresh);
    }
    const auto x = moons_batches<double>(1, 1).front();
    t.step(x, train::max_likelihood);
    CHECK_THROWS_WITH(opt.step(), Catch::Contains("another network was moved into"));
    CHECK_THROWS_AS(opt.zero_grad(), usage_error);
    CHECK_THROWS_AS(train::clip_grad_norm(opt.parameters(), 1.0), usage_error);
    // A copy assigns values in place: an optimiser built before goes on, on the new values.
    train::Adam again{net};
    const Chain<double> other(7);
    net = other;
    t.step(x, train::max_likelihood);
    again.step();
    Chain<double> want = other;
    train::trainer tw{want};
    train::Adam ow{want};
    tw.step(x, train::max_likelihood);
    ow.step();
    require_identical(train::make_checkpoint(net, again), train::make_checkpoint(want, ow));
}

TEST_CASE("optim: a schedule step the optimiser refuses counts no epoch", "[train][optim]") {
    Chain<double> net(1);
    train::Adam opt{net, {.lr = 1e-3}};
    train::ExponentialLR e{opt, 1e300};
    e.step(); // 1e297
    CHECK_THROWS_WITH(e.step(), Catch::Contains("learning rate"));
    CHECK(e.last_epoch() == 1);
    CHECK(e.last_lr() == opt.lr());
    train::StepLR s{opt, 1, 1e300};
    CHECK_THROWS_AS(s.step(), data_error);
    CHECK(s.last_epoch() == 0);
}
