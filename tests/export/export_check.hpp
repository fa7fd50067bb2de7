#pragma once
// What the export test's files share (export_test.cpp has main; export_models_*.cpp check the
// models inn_export wrote, two files so that the two cores of a CI machine compile them at once):
// the tensors of a safetensors file as matrices, the comparison that counts failures, and the
// writer of what check_back.py loads into FrEIA.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <inn/inn.hpp>
#include <inn/io/reader.hpp>
#include <inn/io/state_dict.hpp>
#include <inn/io/writer.hpp>

namespace export_check {

using matrix = inn::row_matrix<double>;
namespace fs = std::filesystem;

inline constexpr double tolerance = 1e-10;
inline int failures = 0;
inline double worst = 0;

// The tensors of a safetensors file, each as a batch x features matrix (vectors: n x 1).
struct tensors {
    inn::io::safetensors_file file;

    explicit tensors(const fs::path& path) : file(inn::io::safetensors_file::read(path)) {}

    matrix operator[](const std::string& name) const {
        const auto& t = file.at(name);
        const auto rows = t.shape.empty() ? 1 : t.shape[0];
        const auto cols = t.numel() / std::max<std::int64_t>(rows, 1);
        matrix m(rows, cols);
        file.copy_to<double>(t, std::span<double>(m.data(), std::size_t(m.size())));
        return m;
    }
};

template <class A, class B> double max_abs_diff(const A& a, const B& b) {
    const matrix ma = a, mb = b;
    if (ma.rows() != mb.rows() || ma.cols() != mb.cols()) {
        throw std::runtime_error("shapes differ: " + std::to_string(ma.rows()) + "x" +
                                 std::to_string(ma.cols()) + " and " + std::to_string(mb.rows()) +
                                 "x" + std::to_string(mb.cols()));
    }
    return (ma - mb).cwiseAbs().maxCoeff();
}

template <class A, class B>
void check(const std::string& model, const std::string& what, const A& got, const B& want) {
    const double d = max_abs_diff(got, want);
    worst = std::max(worst, d);
    const bool ok = d <= tolerance;
    failures += ok ? 0 : 1;
    std::printf("  %-12s %-22s max |inn - FrEIA| = %.3g%s\n", model.c_str(), what.c_str(), d,
                ok ? "" : "   FAILED (> 1e-10)");
}

inline matrix column(const inn::vector<double>& v) { return matrix(v); }

inline void write(const fs::path& path, const std::vector<std::pair<std::string, matrix>>& named) {
    std::vector<inn::io::tensor_to_write> out;
    for (const auto& [name, m] : named) {
        out.push_back(inn::io::make_tensor<double>(
            name, {m.rows(), m.cols()}, std::span<const double>(m.data(), std::size_t(m.size()))));
    }
    inn::io::write_safetensors(path, out);
}

// Parameters changed in C++ (a step along a fixed direction, standing in for training), so that
// what FrEIA gets back differs from what it gave.
template <class Net> void change_parameters(Net& net) {
    double phase = 0;
    net.visit([&](const std::string&, const inn::tensor_ref<double>& t) {
        if (!t.trainable || t.real == nullptr) {
            return;
        }
        for (std::int64_t i = 0; i < t.shape.numel(); ++i) {
            t.real[i] += 0.01 * std::sin(phase += 0.7);
        }
    });
    net.parameters_changed();
}

// net.forward (Forward) or net.inverse of x, with the condition c if one is given.
template <bool Forward, class Net, class... C> auto run(Net& net, const matrix& x, const C&... c) {
    if constexpr (sizeof...(C) == 0) {
        if constexpr (Forward)
            return net.forward(x);
        else
            return net.inverse(x);
    } else {
        if constexpr (Forward)
            return net.forward(x, inn::conditions(c...));
        else
            return net.inverse(x, inn::conditions(c...));
    }
}

// A model of one input and one output: z and log|det J| of x, then x and log|det J| of the
// latents z_inv0, against FrEIA's (<model>.io.safetensors).
template <class Net, class... C>
void check_both_ways(const std::string& model, Net& net, const tensors& io, const C&... c) {
    auto [z, ljd] = run<true>(net, io["x"], c...);
    check(model, "z", z, io["z0"]);
    check(model, "log_jac_det", column(ljd), io["log_jac_det"]);
    auto [x_inv, ljd_inv] = run<false>(net, io["z_inv0"], c...);
    check(model, "inverse x", x_inv, io["x_inv"]);
    check(model, "inverse log_jac_det", column(ljd_inv), io["log_jac_det_inv"]);
}

// For check_back.py: the parameters changed, their state_dict (<model>.cpp.safetensors) and the
// outputs for x (<model>.cpp.io.safetensors); one input, one output.
template <class Net, class... C>
void save_changed(const std::string& model, Net& net, const fs::path& dir, const tensors& io,
                  const C&... c) {
    change_parameters(net);
    inn::save_safetensors(net, dir / (model + ".cpp.safetensors"));
    auto [z, ljd] = run<true>(net, io["x"], c...);
    write(dir / (model + ".cpp.io.safetensors"), {{"z0", z}, {"log_jac_det", column(ljd)}});
}

// One function per model, in export_models_a.cpp and export_models_b.cpp.
void moons_test(const fs::path& dir);
void mnist_test(const fs::path& dir);
void conv_test(const fs::path& dir);
void branches_test(const fs::path& dir);
void zoo_test(const fs::path& dir);
void topology_test(const fs::path& dir);
void splines_test(const fs::path& dir);
void iresnet_test(const fs::path& dir);
void tiny_test(const fs::path& dir);

} // namespace export_check
