#pragma once
// Parity with FrEIA: runs a network declared in C++ on a golden file recorded from FrEIA
// (tests/data/freia, see its README) and compares outputs, inverses and log-dets.

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <inn/inn.hpp>
#include <inn/io/state_dict.hpp>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#if INN_TEST_CUDA
#include "device_parity.hpp"
#endif

#ifndef INN_TEST_DATA_DIR
#define INN_TEST_DATA_DIR "tests/data"
#endif

namespace inn::test {

/// The golden files: $INN_TEST_DATA_DIR when set (a test binary run from another checkout, as
/// benchmarks/gpu_check.sh does on a GPU machine), else where the build saw them.
inline std::string fixture_path(const std::string& name) {
    const char* dir = std::getenv("INN_TEST_DATA_DIR");
    return std::string(dir && *dir ? dir : INN_TEST_DATA_DIR) + "/freia/" + name + ".safetensors";
}

struct fixture {
    io::safetensors_file file;
    nlohmann::json arch;
    std::string name;
    index_t batch = 0;

    explicit fixture(const std::string& case_name)
        : file(io::safetensors_file::read(fixture_path(case_name))),
          arch(nlohmann::json::parse(file.metadata().at("architecture"))),
          name(case_name) {}

    template <Scalar T>
    row_matrix<T> matrix(const std::string& key) const {
        const io::tensor_info& t = file.at(key);
        index_t rows = t.shape.empty() ? 1 : index_t(t.shape[0]);
        index_t n = index_t(t.numel());
        row_matrix<T> m(rows, rows ? n / rows : 0);
        file.copy_to(t, std::span<T>(m.data(), std::size_t(m.size())));
        return m;
    }
    template <Scalar T>
    vector<T> vec(const std::string& key) const {
        const io::tensor_info& t = file.at(key);
        vector<T> v(index_t(t.numel()));
        file.copy_to(t, std::span<T>(v.data(), std::size_t(v.size())));
        return v;
    }
    bool has(const std::string& key) const { return file.find(key) != nullptr; }
    int count(const std::string& prefix) const {
        int n = 0;
        while (has(prefix + std::to_string(n))) ++n;
        return n;
    }
};

/// Tolerances: the fixture's hint for double (section 3 of the fixtures README); for float, a
/// relative 1e-4 (float32 arithmetic through a whole network, against a float64 recording).
struct tolerance {
    double z = 1e-10, x_rev = 1e-10, ljd = 1e-10, ljd_rev = 1e-10;
    /// Compare the inverse log-det with −test.log_jac_det instead of test.log_jac_det_rev: for a
    /// module whose FrEIA reverse log-det is a bug we fix (LearnedElementwiseScaling).
    bool ljd_rev_is_minus_forward = false;
    static tolerance for_float() { return {2e-4, 2e-4, 2e-4, 2e-4}; }
};

template <class A, class B>
double max_scaled_error(const A& a, const B& b) {
    REQUIRE(a.rows() == b.rows());
    REQUIRE(a.cols() == b.cols());
    double m = 0;
    for (Eigen::Index i = 0; i < a.rows(); ++i)
        for (Eigen::Index j = 0; j < a.cols(); ++j)
            m = std::max(m, std::abs(double(a(i, j)) - double(b(i, j))) / (1.0 + std::abs(double(b(i, j)))));
    return m;
}

/// A node name in a form that C++ and FrEIA names share when they cannot be equal: namespaces
/// dropped, a node template's index spelled `_K` (`conv_high_res<0>` -> `conv_high_res_0`),
/// spaces as underscores, lower case (`Split 1` -> `split_1`, `ActNorm` -> `actnorm`).
inline std::string normalized_node_name(std::string_view name) {
    const auto angle = name.find('<');
    const auto colon = name.substr(0, angle).rfind("::");
    if (colon != std::string_view::npos) name.remove_prefix(colon + 2);
    std::string r;
    for (char ch : name) {
        if (ch == '<' || ch == ' ' || ch == ',') {
            if (!r.empty() && r.back() != '_') r += '_';
        } else if (ch != '>') {
            r += char(std::tolower(static_cast<unsigned char>(ch)));
        }
    }
    return r;
}

/// Sets GraphINN module prefixes from the architecture JSON by node name: C++ node structs are
/// named like the FrEIA nodes, or, where FrEIA's names are no C++ identifiers (spaces) or C++
/// nodes are templates (`repeat_nodes`), match exactly one FrEIA node by `normalized_node_name`.
template <class Net>
void apply_graph_prefixes(Net& net, const nlohmann::json& arch) {
    if (arch.at("container") != "graph") return;
    for (int k = 0; k < Net::n_modules; ++k) {
        const std::string name = Net::module_node_name(k);
        const nlohmann::json* exact = nullptr;
        std::vector<const nlohmann::json*> similar;
        for (const auto& n : arch.at("nodes")) {
            const auto freia = n.at("name").get<std::string>();
            if (freia == name) exact = &n;
            if (normalized_node_name(freia) == normalized_node_name(name)) similar.push_back(&n);
        }
        INFO("C++ node '" << name << "' has no FrEIA node of that name (or " << similar.size()
                          << " of the same normalized name '" << normalized_node_name(name)
                          << "')");
        REQUIRE((exact || similar.size() == 1));
        const nlohmann::json& node = exact ? *exact : *similar.front();
        net.set_state_dict_prefix(k, node.at("state_dict_prefix").get<std::string>());
    }
}

/// A network result (one matrix or an array of them) as a list of matrices.
template <class R>
auto as_list(const R& r) {
    if constexpr (requires { r.begin(); r.size(); r[0].rows(); })
        return std::vector<std::decay_t<decltype(r[0])>>(r.begin(), r.end());
    else
        return std::vector<R>{r};
}

template <bool Reverse, class Net, Scalar T, std::size_t... I>
auto run_tuple(Net& net, const std::vector<row_matrix<T>>& x, const std::vector<row_matrix<T>>& c,
               std::index_sequence<I...>) {
    auto run = [&](const auto&... cs) {
        if constexpr (Reverse) {
            auto r = net.inverse(inputs(x[I]...), conditions(cs...));
            return std::make_pair(as_list(r.x), vector<T>(r.log_jac_det));
        } else {
            auto r = net.forward(inputs(x[I]...), conditions(cs...));
            return std::make_pair(as_list(r.z), vector<T>(r.log_jac_det));
        }
    };
    return [&]<std::size_t... J>(std::index_sequence<J...>) { return run(c[J]...); }(
        std::make_index_sequence<std::size_t(Net::n_conditions)>{});
}

/// Declares the parity test of one fixture for one Scalar: load, (ActNorm data-init), forward,
/// inverse, compare. `family` groups the worst-error report.
/// `setup(net)` runs before loading: for modules whose state_dict layout depends on how they
/// were built (e.g. FixedLinearTransform without `b`).
template <class Arch, Scalar T, class Setup = void (*)(typename Arch::template with_scalar<T>&)>
void check_parity(const std::string& case_name, const std::string& family,
                  tolerance tol = tolerance{}, Setup setup = nullptr) {
    using Net = typename Arch::template with_scalar<T>;
    if constexpr (std::is_same_v<T, float>) {
        const bool minus_forward = tol.ljd_rev_is_minus_forward;
        tol = tolerance::for_float();
        tol.ljd_rev_is_minus_forward = minus_forward;
    }
    fixture f(case_name);
    INFO("fixture " << case_name << " in " << (std::is_same_v<T, float> ? "float" : "double"));
    Net net;
    if constexpr (!std::is_pointer_v<Setup>)
        setup(net);
    else if (setup)
        setup(net);
    apply_graph_prefixes(net, f.arch);
    load_state_dict(net, f.file, {.strict = true, .ignore_prefixes = {"test."}});

    std::vector<row_matrix<T>> x, c, z, xr;
    for (int i = 0; i < f.count("test.x."); ++i) x.push_back(f.matrix<T>("test.x." + std::to_string(i)));
    for (int j = 0; j < f.count("test.c."); ++j) c.push_back(f.matrix<T>("test.c." + std::to_string(j)));
    for (int i = 0; i < f.count("test.z."); ++i) z.push_back(f.matrix<T>("test.z." + std::to_string(i)));
    REQUIRE(int(x.size()) == Net::n_inputs);
    REQUIRE(int(c.size()) == Net::n_conditions);
    REQUIRE(int(z.size()) == Net::n_outputs);

    if (f.has("test.init_x.0")) {
        // ActNorm: forget the stored initialisation and redo it from the recorded batch.
        std::map<std::string, vector<T>> stored;
        net.visit([&](const std::string& key, const tensor_ref<T>& t) {
            if (t.flag) *t.flag = false;
            if (t.real && (key.ends_with(".loc") || key.ends_with(".log_scale")))
                stored[key] = Eigen::Map<vector<T>>(t.real, index_t(t.shape.numel()));
        });
        std::vector<row_matrix<T>> ix, ic;
        for (int i = 0; i < f.count("test.init_x."); ++i) ix.push_back(f.matrix<T>("test.init_x." + std::to_string(i)));
        for (int j = 0; j < f.count("test.init_c."); ++j) ic.push_back(f.matrix<T>("test.init_c." + std::to_string(j)));
        net.reserve(std::max<index_t>(ix[0].rows(), x[0].rows()));
        run_tuple<false>(net, ix, ic, std::make_index_sequence<std::size_t(Net::n_inputs)>{});
        net.visit([&](const std::string& key, const tensor_ref<T>& t) {
            if (!stored.contains(key)) return;
            vector<T> now = Eigen::Map<vector<T>>(t.real, index_t(t.shape.numel()));
            INFO("ActNorm data init of " << key);
            CHECK(max_scaled_error(now, stored[key]) <= tol.z);
        });
    }

    auto [zf, ljd] = run_tuple<false>(net, x, c, std::make_index_sequence<std::size_t(Net::n_inputs)>{});
    auto [xb, ljd_rev] = run_tuple<true>(net, z, c, std::make_index_sequence<std::size_t(Net::n_outputs)>{});
    double worst = 0;
    for (std::size_t i = 0; i < z.size(); ++i) {
        double e = max_scaled_error(zf[i], z[i]);
        INFO("output " << i);
        CHECK(e <= tol.z);
        worst = std::max(worst, e);
    }
    for (std::size_t i = 0; i < x.size(); ++i) {
        row_matrix<T> want = f.matrix<T>("test.x_rev." + std::to_string(i));
        double e = max_scaled_error(xb[i], want);
        INFO("inverse output " << i);
        CHECK(e <= tol.x_rev);
        worst = std::max(worst, e);
    }
    vector<T> want_ljd = f.vec<T>(f.has("test.log_jac_det_exact") ? "test.log_jac_det_exact" : "test.log_jac_det");
    vector<T> want_rev = tol.ljd_rev_is_minus_forward
                             ? vector<T>(-want_ljd)
                             : f.vec<T>(f.has("test.log_jac_det_rev_exact") ? "test.log_jac_det_rev_exact"
                                                                             : "test.log_jac_det_rev");
    double e1 = max_scaled_error(ljd, want_ljd), e2 = max_scaled_error(ljd_rev, want_rev);
    CHECK(e1 <= tol.ljd);
    CHECK(e2 <= tol.ljd_rev);
    worst = std::max({worst, e1, e2});
    // One line per case, gathered for the parity report (docs/parity.md).
    std::printf("inn-parity %s %s %s max_scaled_error=%.3g\n", family.c_str(), case_name.c_str(),
                std::is_same_v<T, float> ? "float" : "double", worst);
#if INN_TEST_CUDA
    if constexpr (cuda::runs_on_device<Net>) {
        cuda::network<Net> g(net);
        g.reserve(x[0].rows());
        auto cols = [](auto dims_of) { return [=](int i) { return dims_of(i).size(); }; };
        auto [dz, dljd] = test::run_on_device<true, Net, T>(
            g, x, c, Net::n_outputs, cols([](int i) { return Net::output_dims(i); }));
        auto [dx, dljd_rev] = test::run_on_device<false, Net, T>(
            g, z, c, Net::n_inputs, cols([](int i) { return Net::input_dims(i); }));
        double dworst = 0;
        for (std::size_t i = 0; i < z.size(); ++i) {
            const double e = max_scaled_error(dz[i], z[i]);
            INFO("device output " << i);
            CHECK(e <= tol.z);
            dworst = std::max(dworst, e);
        }
        for (std::size_t i = 0; i < x.size(); ++i) {
            const double e = max_scaled_error(dx[i], f.matrix<T>("test.x_rev." + std::to_string(i)));
            INFO("device inverse output " << i);
            CHECK(e <= tol.x_rev);
            dworst = std::max(dworst, e);
        }
        const double d1 = max_scaled_error(dljd, want_ljd), d2 = max_scaled_error(dljd_rev, want_rev);
        CHECK(d1 <= tol.ljd);
        CHECK(d2 <= tol.ljd_rev);
        dworst = std::max({dworst, d1, d2});
        std::printf("inn-parity-cuda %s %s %s max_scaled_error=%.3g\n", family.c_str(),
                    case_name.c_str(), std::is_same_v<T, float> ? "float" : "double", dworst);
    } else {
        std::printf("inn-parity-cuda %s %s %s not on the device yet\n", family.c_str(),
                    case_name.c_str(), std::is_same_v<T, float> ? "float" : "double");
    }
#endif
}

template <class Arch>
void check_parity_both(const std::string& case_name, const std::string& family,
                       tolerance tol = tolerance{}) {
    SECTION("double") { check_parity<Arch, double>(case_name, family, tol); }
    SECTION("float") { check_parity<Arch, float>(case_name, family, tol); }
}
/// The same with a generic `setup(net)` (a lambda taking `auto&`).
template <class Arch, class Setup>
void check_parity_both(const std::string& case_name, const std::string& family, tolerance tol,
                       Setup setup) {
    SECTION("double") { check_parity<Arch, double>(case_name, family, tol, setup); }
    SECTION("float") { check_parity<Arch, float>(case_name, family, tol, setup); }
}

}  // namespace inn::test
