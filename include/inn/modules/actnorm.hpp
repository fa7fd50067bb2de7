#pragma once
// ActNorm (FrEIA): a per-channel affine map, y = (x - loc) / exp(log_scale), whose
// parameters are set from the data the first time it runs.
//
//   SequenceINN<Shape<3, 16, 16>, ActNorm, ...>
//
// The first call in EITHER direction on an uninitialised module sets, per channel over the batch
// and all spatial positions of the tensor it is given (forward: x, inverse: the latent z, as in
// FrEIA), loc = mean and log_scale = ln(unbiased std), then sets `is_initialized`. Loading a
// state_dict restores `is_initialized` and so skips this. Before initialisation the parameters
// are 0 (FrEIA: uninitialised memory); nothing is drawn from the generator.
//
// State (FrEIA's keys and order): `log_scale`, `loc` of shape (1, C, 1, ...), trainable;
// `is_initialized`, a 0-dim bool buffer.

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

#include "../core/module.hpp"
#include "../core/parameters.hpp"

namespace inn {

struct ActNorm {
    static constexpr std::string_view name = "ActNorm";

    static constexpr shape_result output_shapes(const signature& s) {
        if (auto r = expect_single_input(s); !r.ok()) return r;
        if (auto r = expect_no_condition(s); !r.ok()) return r;
        return returns({s.in()});
    }

    template <Scalar S, signature Sig>
    struct bind {
        static constexpr index_t channels = Sig.in().channels();
        static constexpr index_t n_pix = Sig.in().spatial_size();  // 1 for vectors
        static constexpr index_t size = Sig.in().size();

        parameter<S> log_scale{state_shape()};
        parameter<S> loc{state_shape()};
        bool is_initialized = false;

        explicit bind(generator&) { prepare(); }

        bool initialized() const { return is_initialized; }

        /// FrEIA's `initialize(batch)`: loc = per-channel mean, log_scale = ln(per-channel
        /// unbiased std) of `batch` samples of `batch_data`. All-or-nothing: throws
        /// std::invalid_argument and changes nothing when a channel's std is close to zero
        /// (FrEIA's ValueError) or not finite, or when there are fewer than 2 values per channel.
        void initialize(cview<S> batch_data, index_t batch) {
            const index_t m = batch * n_pix;  // values per channel
            // FrEIA quirk fixed deliberately: with one value per channel (batch 1 of vector
            // data) torch.std is NaN and FrEIA silently initialises to NaN; we refuse instead.
            if (m < 2)
                throw std::invalid_argument(
                    "inn: ActNorm cannot initialise from " + std::to_string(m) +
                    " value(s) per channel (batch " + std::to_string(batch) +
                    "): the unbiased standard deviation needs at least 2; initialise it with a "
                    "larger first batch or load its state");
            vector<S> new_loc(channels), new_log_scale(channels);
            for (index_t c = 0; c < channels; ++c) {
                // Two passes in double: mean, then the sum of squared deviations (FrEIA: torch
                // mean / std in the network's dtype; the results agree to rounding).
                double sum = 0;
                for (index_t b = 0; b < batch; ++b) {
                    const S* x = batch_data.row(b) + c * n_pix;
                    for (index_t p = 0; p < n_pix; ++p) sum += double(x[p]);
                }
                const double mean = sum / double(m);
                double sq = 0;
                for (index_t b = 0; b < batch; ++b) {
                    const S* x = batch_data.row(b) + c * n_pix;
                    for (index_t p = 0; p < n_pix; ++p) {
                        const double d = double(x[p]) - mean;
                        sq += d * d;
                    }
                }
                const S std_c = S(std::sqrt(sq / double(m - 1)));
                const S mean_c = S(mean);
                if (!std::isfinite(std_c) || !std::isfinite(mean_c))
                    throw std::invalid_argument(
                        "inn: ActNorm cannot initialise: channel " + std::to_string(c) +
                        " of the initialisation batch has a non-finite mean or standard "
                        "deviation (NaN or Inf in the data)");
                // torch.isclose(std, 0): |std| <= atol + rtol * 0, atol = 1e-8.
                if (std::abs(double(std_c)) <= 1e-8)
                    throw std::invalid_argument(
                        "inn: ActNorm cannot initialise: channel " + std::to_string(c) +
                        " of the initialisation batch has a standard deviation close to zero "
                        "(a constant channel)");
                new_loc[c] = mean_c;
                new_log_scale[c] = std::log(std_c);
            }
            // Every channel passed: commit.
            loc.values = new_loc;
            log_scale.values = new_log_scale;
            is_initialized = true;
            prepare();
        }
        /// The network's data initialisation: from the tensor this direction reads (forward: x,
        /// inverse: z, as FrEIA).
        void initialize(const run_args<S>& a) { initialize(a.in[0], a.batch); }

        /// exp(log_scale) per channel and the log-determinant per sample.
        void prepare() {
            scale_ = log_scale.values.array().exp();
            log_det_ = -log_scale.values.sum() * S(n_pix);
        }

        void forward(const run_args<S>& a) const {
            for (index_t c = 0; c < channels; ++c) {
                const S shift = loc.values[c];
                const S scale = scale_[c];
                for (index_t b = 0; b < a.batch; ++b) {
                    const S* x = a.in[0].row(b) + c * n_pix;
                    S* y = a.out[0].row(b) + c * n_pix;
                    // As FrEIA: a division by exp(log_scale), not a product with its reciprocal.
                    for (index_t p = 0; p < n_pix; ++p) y[p] = (x[p] - shift) / scale;
                }
            }
            if (a.jac) add_log_det(a, log_det_);
        }

        void inverse(const run_args<S>& a) const {
            for (index_t c = 0; c < channels; ++c) {
                const S shift = loc.values[c];
                const S scale = scale_[c];
                for (index_t b = 0; b < a.batch; ++b) {
                    const S* y = a.in[0].row(b) + c * n_pix;
                    S* x = a.out[0].row(b) + c * n_pix;
                    for (index_t p = 0; p < n_pix; ++p) x[p] = scale * y[p] + shift;
                }
            }
            if (a.jac) add_log_det(a, -log_det_);
        }

        /// Gradients of y = (x - loc) / exp(log_scale), log-det -n_pix Σ log_scale. The data
        /// initialisation is not differentiated: it sets the parameters, it is not part of f.
        void backward(const backward_args<S>& a) const {
            S* g_loc = a.grad_of(loc);
            S* g_log_scale = a.grad_of(log_scale);
            S sum_gl = 0;  // dL/d(ljd) summed over the batch
            if (a.grad_ljd)
                for (index_t b = 0; b < a.batch; ++b) sum_gl += a.grad_ljd[b];
            for (index_t c = 0; c < channels; ++c) {
                const S shift = loc.values[c];
                const S scale = scale_[c];
                S sum_g = 0, sum_gy = 0;  // Σ dL/dy and Σ dL/dy · y over this channel
                for (index_t b = 0; b < a.batch; ++b) {
                    const S* x = a.in[0].row(b) + c * n_pix;
                    const S* gy = a.grad_out[0].row(b) + c * n_pix;
                    S* gx = a.grad_in[0].row(b) + c * n_pix;
                    for (index_t p = 0; p < n_pix; ++p) {
                        gx[p] = gy[p] / scale;
                        sum_g += gy[p];
                        sum_gy += gy[p] * ((x[p] - shift) / scale);
                    }
                }
                if (g_loc) g_loc[c] -= sum_g / scale;
                if (g_log_scale) g_log_scale[c] -= sum_gy + S(n_pix) * sum_gl;
            }
        }

        /// For fusing with its neighbours (graph/fusion.hpp): forward x / e^s - loc / e^s (the
        /// division folded into a scale: equal to rounding), inverse e^s y + loc.
        void affine_form(pass p, affine_gather<S>& m) const {
            m.set_identity(size);
            for (index_t c = 0; c < channels; ++c)
                for (index_t q = 0; q < n_pix; ++q) {
                    const auto j = std::size_t(c * n_pix + q);
                    if (p == pass::inverse) {
                        m.scale[j] = scale_[c];
                        m.shift[j] = loc.values[c];
                    } else {
                        m.scale[j] = S(1) / scale_[c];
                        m.shift[j] = -loc.values[c] / scale_[c];
                    }
                }
            m.log_det = p == pass::inverse ? -log_det_ : log_det_;
        }

        template <class V>
        void visit(V&& v, const std::string& prefix) {
            v(prefix + "log_scale", log_scale.ref());
            v(prefix + "loc", loc.ref());
            v(prefix + "is_initialized",
              tensor_ref<S>{nullptr, nullptr, &is_initialized, tensor_shape{}, false});
        }

    private:
        // (1, C, 1, ...): one trailing 1 per spatial dim, as FrEIA's parameters.
        static tensor_shape state_shape() {
            tensor_shape t;
            t.rank = Sig.in().rank + 1;
            t.extent[0] = 1;
            t.extent[1] = channels;
            for (int d = 2; d < t.rank; ++d) t.extent[std::size_t(d)] = 1;
            return t;
        }
        static void add_log_det(const run_args<S>& a, S value) {
            for (index_t b = 0; b < a.batch; ++b) a.ljd[b] += value;
        }

        vector<S> scale_ = vector<S>::Ones(channels);
        S log_det_ = 0;
    };
};

}  // namespace inn
