// Uses the component io of an installed inn (inn::io) the way an application does: a network's
// parameters are saved to a safetensors file and loaded into a second network of the same type
// (built from another seed), which then runs forward and inverse. Checks: the file holds
// FrEIA's keys, the loaded network computes exactly what the saved one does, and the inverse
// gives the input back.
#include <inn/inn.hpp>
#include <inn/io/safetensors.hpp>
#include <inn/io/state_dict.hpp>
#include <inn/modules/all_in_one_block.hpp>
#include <inn/modules/coupling/glow.hpp>
#include <inn/modules/permute_random.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace {

struct subnet_fc {
    template <int In, int Out>
    using net =
        inn::nn::Sequential<inn::nn::Linear<In, 32>, inn::nn::ReLU, inn::nn::Linear<32, Out>>;
};

using Net = inn::SequenceINN<
    inn::Shape<6>, inn::Conditions<inn::Shape<2>>,
    inn::Repeat<2, inn::Conditioned<inn::GLOWCouplingBlock<subnet_fc>, 0>, inn::PermuteRandom<>>,
    inn::AllInOneBlock<subnet_fc, {.permute_soft = true}>>;

bool check(bool ok, const char* what) {
    std::printf("inn consumer (io): %-52s %s\n", what, ok ? "ok" : "FAILED");
    return ok;
}

} // namespace

int main(int argc, char** argv) {
    const std::filesystem::path path = argc > 1 ? argv[1] : "inn_consumer_weights.safetensors";
    bool ok = true;

    Net saved(1);
    inn::save_safetensors(saved, path);

    // The file, read with the low-level reader: FrEIA's state_dict keys and shapes.
    const auto file = inn::io::safetensors_file::read(path);
    ok &= check(file.at("module_list.1.perm").numel() == 6 &&
                    file.to_vector<std::int64_t>(file.at("module_list.1.perm")).size() == 6 &&
                    file.at("module_list.4.subnet.0.weight").shape ==
                        std::vector<std::int64_t>{32, 3},
                "file has FrEIA's keys and shapes");

    inn::row_matrix<float> x = inn::row_matrix<float>::Random(16, 6);
    inn::row_matrix<float> c = inn::row_matrix<float>::Random(16, 2);
    const auto [z_saved, ljd_saved] = saved.forward(x, inn::conditions(c));

    Net loaded(2); // other parameters until the file is loaded
    const auto [z_before, ljd_before] = loaded.forward(x, inn::conditions(c));
    ok &= check((z_before - z_saved).cwiseAbs().maxCoeff() > 1e-3f,
                "another seed computes otherwise");

    const auto result = inn::load_safetensors(loaded, path); // strict: every key must match
    ok &= check(result.missing_keys.empty() && result.unexpected_keys.empty(), "strict load");

    const auto [z, ljd] = loaded.forward(x, inn::conditions(c));
    ok &= check(z == z_saved && ljd == ljd_saved, "loaded network: same z and log-det");

    const auto [x_rev, ljd_rev] = loaded.inverse(z, inn::conditions(c));
    const float err_x = (x_rev - x).cwiseAbs().maxCoeff();
    const float err_ljd = (ljd_rev + ljd).cwiseAbs().maxCoeff();
    std::printf("inn consumer (io): max |x_rev - x| = %.2g, max |ljd_rev + ljd| = %.2g\n", err_x,
                err_ljd);
    ok &= check(err_x < 1e-4f && err_ljd < 1e-4f, "inverse gives x back, log-det negated");

    std::filesystem::remove(path);
    return ok ? 0 : 1;
}
