// Uses the component io of an installed inn (inn::io): a network's state_dict written to a
// safetensors image in memory and read back.
#include <inn/inn.hpp>
#include <inn/io/safetensors.hpp>
#include <inn/modules/permute_random.hpp>

#include <cstdint>
#include <iostream>
#include <span>
#include <string>
#include <vector>

int main() {
    using Net = inn::SequenceINN<inn::Shape<5>, inn::PermuteRandom<>>;
    Net net(7);
    std::vector<inn::io::tensor_to_write> tensors;
    net.visit([&](const std::string& key, const inn::tensor_ref<Net::scalar>& t) {
        if (t.integer)
            tensors.push_back(inn::io::make_tensor(
                key, t.shape.as_vector(),
                std::span<const std::int64_t>(t.integer, std::size_t(t.shape.numel()))));
    });
    const auto file =
        inn::io::safetensors_file::parse(inn::io::serialize_safetensors(tensors), "in memory");
    const auto perm = file.to_vector<std::int64_t>(file.at("module_list.0.perm"));
    std::cout << "inn consumer (io): " << file.tensors().size() << " tensors, perm of "
              << perm.size() << '\n';
    return file.tensors().size() == 2 && perm.size() == 5 ? 0 : 1;
}
