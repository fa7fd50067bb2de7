// Export test, C++ side (tests/export/run.sh drives it): includes the headers inn_export wrote
// from FrEIA models (tests/export/models.py), loads the weights it wrote, and compares z,
// log|det J| and the inverse with FrEIA's own outputs (<name>.io.safetensors) in double, to 1e-10.
// Then changes the parameters of two of the models and saves their state_dicts and outputs
// (<name>.cpp.safetensors, <name>.cpp.io.safetensors), which check_back.py loads into FrEIA.
//
//   export_test DIR   (DIR: where generate.py wrote)
//
// The models' checks are in export_models_a.cpp and export_models_b.cpp (export_check.hpp).

#include <cstdio>
#include <exception>
#include <filesystem>

#include "export_check.hpp"

int main(int argc, char** argv) {
    using namespace export_check;
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
