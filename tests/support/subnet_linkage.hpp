#pragma once
// The regression test of subnet linkage (test_subnet_linkage_a.cpp, _b.cpp): two files define a
// subnet of the same name, `subnet_fc`, with different widths, and spell the same network type
// with it. Each file reports what its network is; the test checks that neither sees the other's.

#include <cstdint>
#include <string>
#include <vector>

#include <inn/inn.hpp>

namespace inn::test::linkage {

struct probe {
    std::int64_t parameter_count = 0;
    std::vector<std::int64_t> subnet1_weight0_shape;  // module_list.0.subnet1.0.weight
    row_matrix<float> x, z;                           // a fixed input and its output
    double round_trip_error = 0;                      // max |inverse(forward(x)) - x|
};

/// Built, run and measured inside the file that defines `Net`.
template <class Net>
probe measure() {
    Net net(7);
    probe p;
    p.parameter_count = net.parameter_count();
    net.visit([&](const std::string& key, const auto& t) {
        if (key == "module_list.0.subnet1.0.weight") p.subnet1_weight0_shape = t.shape.as_vector();
    });
    p.x = row_matrix<float>(1, 4);
    p.x << 0.5f, -1.0f, 0.25f, 2.0f;
    auto [z, ljd] = net.forward(p.x);
    auto [xr, ljd_rev] = net.inverse(z);
    p.z = z;
    p.round_trip_error = double((xr - p.x).cwiseAbs().maxCoeff());
    return p;
}

probe probe_a();  // test_subnet_linkage_a.cpp: subnet_fc of width 8
probe probe_b();  // test_subnet_linkage_b.cpp: subnet_fc of width 24

}  // namespace inn::test::linkage
