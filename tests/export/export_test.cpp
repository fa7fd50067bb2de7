// Export test, C++ side (tests/export/run.sh drives it): includes the headers inn_export wrote
// from FrEIA models (tests/export/models.py), loads the weights it wrote, and compares z,
// log|det J| and the inverse with FrEIA's own outputs (<name>.io.safetensors) in double, to 1e-10.
// Then changes the parameters of two of the models and saves their state_dicts and outputs
// (<name>.cpp.safetensors, <name>.cpp.io.safetensors), which check_back.py loads into FrEIA.
//
//   export_test DIR   (DIR: where generate.py wrote)

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <inn/io/reader.hpp>
#include <inn/io/writer.hpp>

#include "branches.hpp"
#include "conv_cifar.hpp"
#include "iresnet.hpp"
#include "mnist_cinn.hpp"
#include "moons.hpp"
#include "splines.hpp"
#include "tiny.hpp"
#include "topology.hpp"
#include "zoo.hpp"

namespace {

using matrix = inn::row_matrix<double>;
namespace fs = std::filesystem;

constexpr double tolerance = 1e-10;
int failures = 0;

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

double worst = 0;

template <class A, class B>
void check(const std::string& model, const std::string& what, const A& got, const B& want) {
    const double d = max_abs_diff(got, want);
    worst = std::max(worst, d);
    const bool ok = d <= tolerance;
    failures += ok ? 0 : 1;
    std::printf("  %-12s %-22s max |inn - FrEIA| = %.3g%s\n", model.c_str(), what.c_str(), d,
                ok ? "" : "   FAILED (> 1e-10)");
}

matrix column(const inn::vector<double>& v) { return matrix(v); }

void write(const fs::path& path, const std::vector<std::pair<std::string, matrix>>& named) {
    std::vector<inn::io::tensor_to_write> out;
    for (const auto& [name, m] : named) {
        out.push_back(inn::io::make_tensor<double>(
            name, {m.rows(), m.cols()}, std::span<const double>(m.data(), std::size_t(m.size()))));
    }
    inn::io::write_safetensors(path, out);
}

// Parameters changed in C++ (a step along a fixed direction, standing in for training: inn's
// coupling blocks have no backward() yet, so no optimiser can train these models), so that
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

void moons_test(const fs::path& dir) {
    const tensors io(dir / "moons.io.safetensors");
    auto net = std::make_unique<moons::net>(moons::load(dir / "moons.safetensors"));
    auto [z, ljd] = net->forward(io["x"]);
    check("moons", "z", z, io["z0"]);
    check("moons", "log_jac_det", column(ljd), io["log_jac_det"]);
    auto [x_inv, ljd_inv] = net->inverse(io["z_inv0"]);
    check("moons", "inverse x", x_inv, io["x_inv"]);
    check("moons", "inverse log_jac_det", column(ljd_inv), io["log_jac_det_inv"]);

    change_parameters(*net);
    inn::save_safetensors(*net, dir / "moons.cpp.safetensors");
    auto [z2, ljd2] = net->forward(io["x"]);
    write(dir / "moons.cpp.io.safetensors", {{"z0", z2}, {"log_jac_det", column(ljd2)}});
}

void mnist_test(const fs::path& dir) {
    const tensors io(dir / "mnist_cinn.io.safetensors");
    auto net = std::make_unique<mnist_cinn::net>(mnist_cinn::load(dir / "mnist_cinn.safetensors"));
    const matrix c = io["c0"];
    auto [z, ljd] = net->forward(io["x"], inn::conditions(c));
    check("mnist_cinn", "z", z, io["z0"]);
    check("mnist_cinn", "log_jac_det", column(ljd), io["log_jac_det"]);
    auto [x_inv, ljd_inv] = net->inverse(io["z_inv0"], inn::conditions(c));
    check("mnist_cinn", "inverse x", x_inv, io["x_inv"]);
    check("mnist_cinn", "inverse log_jac_det", column(ljd_inv), io["log_jac_det_inv"]);
}

void conv_test(const fs::path& dir) {
    const tensors io(dir / "conv_cifar.io.safetensors");
    auto net = std::make_unique<conv_cifar::net>(conv_cifar::load(dir / "conv_cifar.safetensors"));
    auto [z, ljd] = net->forward(io["x"]);
    check("conv_cifar", "z", z, io["z0"]);
    check("conv_cifar", "log_jac_det", column(ljd), io["log_jac_det"]);
    auto [x_inv, ljd_inv] = net->inverse(io["z_inv0"]);
    check("conv_cifar", "inverse x", x_inv, io["x_inv"]);
    check("conv_cifar", "inverse log_jac_det", column(ljd_inv), io["log_jac_det_inv"]);
}

void branches_test(const fs::path& dir) {
    const tensors io(dir / "branches.io.safetensors");
    auto net = std::make_unique<branches::net>(branches::load(dir / "branches.safetensors"));
    const matrix c = io["c0"];
    auto [z, ljd] = net->forward(io["x"], inn::conditions(c));
    check("branches", "z1", z[0], io["z0"]);
    check("branches", "z2", z[1], io["z1"]);
    check("branches", "log_jac_det", column(ljd), io["log_jac_det"]);
    const matrix zi0 = io["z_inv0"], zi1 = io["z_inv1"];
    auto [x_inv, ljd_inv] = net->inverse(inn::inputs(zi0, zi1), inn::conditions(c));
    check("branches", "inverse x", x_inv, io["x_inv"]);
    check("branches", "inverse log_jac_det", column(ljd_inv), io["log_jac_det_inv"]);

    change_parameters(*net);
    inn::save_safetensors(*net, dir / "branches.cpp.safetensors");
    auto [z2, ljd2] = net->forward(io["x"], inn::conditions(c));
    write(dir / "branches.cpp.io.safetensors",
          {{"z0", z2[0]}, {"z1", z2[1]}, {"log_jac_det", column(ljd2)}});
}

void zoo_test(const fs::path& dir) {
    const tensors io(dir / "zoo.io.safetensors");
    auto net = std::make_unique<zoo::net>(zoo::load(dir / "zoo.safetensors"));
    const matrix c = io["c0"];
    auto [z, ljd] = net->forward(io["x"], inn::conditions(c));
    check("zoo", "z", z, io["z0"]);
    check("zoo", "log_jac_det", column(ljd), io["log_jac_det"]);
    auto [x_inv, ljd_inv] = net->inverse(io["z_inv0"], inn::conditions(c));
    check("zoo", "inverse x", x_inv, io["x_inv"]);
    check("zoo", "inverse log_jac_det", column(ljd_inv), io["log_jac_det_inv"]);

    change_parameters(*net);
    inn::save_safetensors(*net, dir / "zoo.cpp.safetensors");
    auto [z2, ljd2] = net->forward(io["x"], inn::conditions(c));
    write(dir / "zoo.cpp.io.safetensors", {{"z0", z2}, {"log_jac_det", column(ljd2)}});
}

void topology_test(const fs::path& dir) {
    const tensors io(dir / "topology.io.safetensors");
    auto net = std::make_unique<topology::net>(topology::load(dir / "topology.safetensors"));
    const matrix a = io["x0"], b = io["x1"];
    auto [z, ljd] = net->forward(inn::inputs(a, b));
    check("topology", "out_a", z[0], io["z0"]);
    check("topology", "out_b", z[1], io["z1"]);
    check("topology", "log_jac_det", column(ljd), io["log_jac_det"]);
    const matrix zi0 = io["z_inv0"], zi1 = io["z_inv1"];
    auto [x_inv, ljd_inv] = net->inverse(inn::inputs(zi0, zi1));
    check("topology", "inverse a", x_inv[0], io["x_inv0"]);
    check("topology", "inverse b", x_inv[1], io["x_inv1"]);
    check("topology", "inverse log_jac_det", column(ljd_inv), io["log_jac_det_inv"]);
}

void splines_test(const fs::path& dir) {
    const tensors io(dir / "splines.io.safetensors");
    auto net = std::make_unique<splines::net>(splines::load(dir / "splines.safetensors"));
    const matrix c = io["c0"];
    auto [z, ljd] = net->forward(io["x"], inn::conditions(c));
    check("splines", "z", z, io["z0"]);
    check("splines", "log_jac_det", column(ljd), io["log_jac_det"]);
    auto [x_inv, ljd_inv] = net->inverse(io["z_inv0"], inn::conditions(c));
    check("splines", "inverse x", x_inv, io["x_inv"]);
    check("splines", "inverse log_jac_det", column(ljd_inv), io["log_jac_det_inv"]);

    change_parameters(*net);
    inn::save_safetensors(*net, dir / "splines.cpp.safetensors");
    auto [z2, ljd2] = net->forward(io["x"], inn::conditions(c));
    write(dir / "splines.cpp.io.safetensors", {{"z0", z2}, {"log_jac_det", column(ljd2)}});
}

// FrEIA's IResNetLayer log-det is a random estimate (inn's is exact): z and the inverse only.
void iresnet_test(const fs::path& dir) {
    const tensors io(dir / "iresnet.io.safetensors");
    auto net = std::make_unique<iresnet::net>(iresnet::load(dir / "iresnet.safetensors"));
    auto [z, ljd] = net->forward(io["x"]);
    check("iresnet", "z", z, io["z0"]);
    auto [x_inv, ljd_inv] = net->inverse(io["z_inv0"]);
    check("iresnet", "inverse x", x_inv, io["x_inv"]);
}

// The command line's export of a float32 model (refusals.py): the default scalar, float.
void tiny_test(const fs::path& dir) {
    static_assert(std::is_same_v<tiny::net::scalar, float>);
    const tensors io(dir / "tiny.io.safetensors");
    auto net = std::make_unique<tiny::net>(tiny::load(dir / tiny::weights_file));
    const inn::row_matrix<float> x = io["x"].cast<float>();
    auto [z, ljd] = net->forward(x);
    // float: FrEIA and inn round differently; 1e-5 relative is a few float32 ulps per block
    const matrix z_want = io["z0"], ljd_want = io["log_jac_det"];
    const double dz =
        max_abs_diff(z.cast<double>(), z_want) / std::max(1.0, z_want.cwiseAbs().maxCoeff());
    const double dl = max_abs_diff(matrix(ljd.cast<double>()), ljd_want) /
                      std::max(1.0, ljd_want.cwiseAbs().maxCoeff());
    const bool ok = dz <= 1e-5 && dl <= 1e-5;
    failures += ok ? 0 : 1;
    std::printf(
        "  %-12s %-22s max |inn - FrEIA| / max(1, |FrEIA|) = %.3g (z), %.3g (log_jac_det)%s\n",
        "tiny", "float32, command line", dz, dl, ok ? "" : "   FAILED (> 1e-5)");
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: export_test DIR\n");
        return 2;
    }
    const fs::path dir = argv[1];
    try {
        moons_test(dir);
        mnist_test(dir);
        conv_test(dir);
        branches_test(dir);
        zoo_test(dir);
        topology_test(dir);
        splines_test(dir);
        iresnet_test(dir);
        tiny_test(dir);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "export_test: %s\n", e.what());
        return 1;
    }
    std::printf("export_test: %s, largest difference %.3g (tolerance %.0e)\n",
                failures ? "FAILED" : "passed", worst, tolerance);
    return failures ? 1 : 0;
}
