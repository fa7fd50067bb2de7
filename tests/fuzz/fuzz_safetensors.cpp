// libFuzzer target for the safetensors parser. Any input must either parse or throw
// inn::io_error; crashes, sanitizer reports, other exceptions and broken invariants (checked
// below with abort) are parser bugs.
//
// Build: clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
//            tests/fuzz/fuzz_safetensors.cpp -o fuzz_safetensors
// Run:   ./fuzz_safetensors -max_total_time=60 tests/fuzz/corpus

#include <inn/io/error.hpp>
#include <inn/io/safetensors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

void require(bool ok) {
    if (!ok) {
        std::abort();
    }
}

template <class T> void convert(const inn::io::safetensors_file& f, const inn::io::tensor_info& t) {
    try {
        const auto v = f.to_vector<T>(t);
        require(static_cast<std::int64_t>(v.size()) == t.numel());
    } catch (const inn::io_error&) {
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::byte> bytes(size);
    if (size != 0) {
        std::memcpy(bytes.data(), data, size);
    }

    try {
        const auto f = inn::io::safetensors_file::parse(std::move(bytes), "fuzz");
        std::vector<inn::io::tensor_to_write> again;
        for (const auto& t : f.tensors()) {
            require(f.find(t.name) == &t);
            require(t.numel() >= 0);
            const auto raw = f.raw(t);
            require(raw.size() == t.end - t.begin);
            require(raw.size() ==
                    static_cast<std::size_t>(t.numel()) * inn::io::element_size(t.dtype));
            convert<double>(f, t);
            convert<float>(f, t);
            convert<std::int64_t>(f, t);
            convert<bool>(f, t);
            again.push_back({t.name, t.dtype, t.shape, {raw.begin(), raw.end()}});
        }
        // What was read must be writable, and must read back the same.
        const std::map<std::string, std::string> meta(f.metadata().begin(), f.metadata().end());
        const auto image = inn::io::serialize_safetensors(again, meta);
        const auto g = inn::io::safetensors_file::parse(image, "fuzz-rewritten");
        require(g.tensors().size() == f.tensors().size());
        require(g.metadata() == f.metadata());
        for (std::size_t i = 0; i < g.tensors().size(); ++i) {
            const auto& a = f.tensors()[i];
            const auto& b = g.tensors()[i];
            require(a.name == b.name && a.dtype == b.dtype && a.shape == b.shape);
            const auto ra = f.raw(a);
            const auto rb = g.raw(b);
            require(ra.size() == rb.size() &&
                    (ra.empty() || std::memcmp(ra.data(), rb.data(), ra.size()) == 0));
        }
    } catch (const inn::io_error&) {
    }
    return 0;
}
