// The export test's checks of the module zoo (every exportable module in one graph, alone about
// as slow to compile at -O2 as the other models together: hence a file of its own), the
// two-input topology and the command line's float32 model. export_test.cpp runs them.

#include "export_check.hpp"

#include <algorithm>
#include <memory>
#include <type_traits>

#include "tiny.hpp"
#include "topology.hpp"
#include "zoo.hpp"

namespace export_check {

void zoo_test(const fs::path& dir) {
    const tensors io(dir / "zoo.io.safetensors");
    auto net = std::make_unique<zoo::net>(zoo::load(dir / "zoo.safetensors"));
    const matrix c = io["c0"];
    check_both_ways("zoo", *net, io, c);
    save_changed("zoo", *net, dir, io, c);
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

} // namespace export_check
