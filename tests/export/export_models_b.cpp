// The export test's checks of the README's three models (moons, mnist_cinn, conv_cifar), the
// branching graph, the splines and the i-ResNet. export_test.cpp runs them.

#include "export_check.hpp"

#include <memory>

#include "branches.hpp"
#include "conv_cifar.hpp"
#include "iresnet.hpp"
#include "mnist_cinn.hpp"
#include "moons.hpp"
#include "splines.hpp"

namespace export_check {

void moons_test(const fs::path& dir) {
    const tensors io(dir / "moons.io.safetensors");
    auto net = std::make_unique<moons::net>(moons::load(dir / "moons.safetensors"));
    check_both_ways("moons", *net, io);
    save_changed("moons", *net, dir, io);
}

void mnist_test(const fs::path& dir) {
    const tensors io(dir / "mnist_cinn.io.safetensors");
    auto net = std::make_unique<mnist_cinn::net>(mnist_cinn::load(dir / "mnist_cinn.safetensors"));
    const matrix c = io["c0"];
    check_both_ways("mnist_cinn", *net, io, c);
}

void conv_test(const fs::path& dir) {
    const tensors io(dir / "conv_cifar.io.safetensors");
    auto net = std::make_unique<conv_cifar::net>(conv_cifar::load(dir / "conv_cifar.safetensors"));
    check_both_ways("conv_cifar", *net, io);
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

void splines_test(const fs::path& dir) {
    const tensors io(dir / "splines.io.safetensors");
    auto net = std::make_unique<splines::net>(splines::load(dir / "splines.safetensors"));
    const matrix c = io["c0"];
    check_both_ways("splines", *net, io, c);
    save_changed("splines", *net, dir, io, c);
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

} // namespace export_check
