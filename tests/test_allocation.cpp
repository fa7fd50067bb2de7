// Once a workspace is reserved, forward_into / inverse_into allocate nothing. Counted by
// replacing global operator new (every C++ allocation) and, unless built with AddressSanitizer,
// by interposing malloc itself (glibc supports replacing it; Eigen allocates through malloc).
// This file is its own test executable, since the replacements apply to the whole program
// (Catch2's main, tests/main.cpp, is linked in as an object, as for the other executables).

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>

#include <inn/inn.hpp>
#include <inn/modules/actnorm.hpp>
#include <inn/modules/all_in_one_block.hpp>
#include <inn/modules/concat.hpp>
#include <inn/modules/coupling.hpp>
#include <inn/modules/elementwise_scaling.hpp>
#include <inn/modules/irevnet.hpp>
#include <inn/modules/permute_random.hpp>
#include <inn/modules/reshape.hpp>
#include <inn/modules/split.hpp>
#include <inn/train/optim.hpp>

// The replacements below pair malloc with free by design; GCC cannot see that inlined
// library code deletes through them and warns.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
std::atomic<long> allocations{0};
thread_local bool counting = false;

void note() {
    if (counting) ++allocations;
}
}  // namespace

void* operator new(std::size_t n) {
    note();
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
    note();
    std::size_t al = std::size_t(a);
    if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
// The nothrow forms must be replaced too: a library that allocates with new(nothrow) and
// frees with plain delete would otherwise pair the runtime's allocator with our free.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return operator new(n);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    try {
        return operator new(n, a);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept {
    return operator new(n, a, t);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

#if !defined(__SANITIZE_ADDRESS__) && defined(__GLIBC__)
// glibc's documented way to replace malloc: define it and forward to the __libc_ versions.
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void* malloc(std::size_t n) {
    note();
    return __libc_malloc(n);
}
void* calloc(std::size_t a, std::size_t b) {
    note();
    return __libc_calloc(a, b);
}
void* realloc(void* p, std::size_t n) {
    note();
    return __libc_realloc(p, n);
}
void* aligned_alloc(std::size_t al, std::size_t n) {
    note();
    return __libc_memalign(al, n);
}
int posix_memalign(void** out, std::size_t al, std::size_t n) {
    note();
    *out = __libc_memalign(al, n);
    return *out ? 0 : 12;
}
}
#define INN_COUNTS_MALLOC 1
#endif

using namespace inn;

struct subnet_fc {
    template <int I, int O>
    using net = nn::Sequential<nn::Linear<I, 64>, nn::ReLU, nn::Linear<64, O>>;
};
struct subnet_conv {
    template <int I, int O>
    using net = nn::Sequential<nn::Conv2d<I, 16, 3>, nn::ReLU, nn::Conv2d<16, O, 3>>;
};

/// Allocations made by `f` on this thread.
template <class F>
long count_allocations(F&& f) {
    allocations = 0;
    counting = true;
    f();
    counting = false;
    return allocations.load();
}

template <class Net, class... Cond>
void check_no_allocation(Net& net, index_t batch, const Cond&... c) {
    using S = typename Net::scalar;
    constexpr index_t n = Net::input_dims().size();
    constexpr index_t m = Net::output_dims().size();
    row_matrix<S> x = row_matrix<S>::Random(batch, n), z(batch, m), x2(batch, n);
    vector<S> ljd(batch), ljd2(batch);
    net.reserve(batch);
    net.forward_into(x, z, ljd, c...);  // warm-up: first-call work such as ActNorm init
    long fwd = count_allocations([&] { net.forward_into(x, z, ljd, c...); });
    long inv = count_allocations([&] { net.inverse_into(z, x2, ljd2, c...); });
    INFO("batch " << batch);
    CHECK(fwd == 0);
    CHECK(inv == 0);
    // The counter works: the convenience form allocates its results (through malloc, which
    // sanitizer builds do not count; there, check with operator new).
#ifdef INN_COUNTS_MALLOC
    CHECK(count_allocations([&] { (void)net.forward(x, c...); }) > 0);
#else
    CHECK(count_allocations([&] { (void)std::make_unique<row_matrix<S>>(); }) > 0);
#endif
}

TEST_CASE("allocation: forward_into / inverse_into allocate nothing", "[allocation]") {
#ifdef INN_COUNTS_MALLOC
    INFO("counting operator new and malloc");
#else
    INFO("counting operator new only (sanitizer build)");
#endif
    SECTION("2-D AllInOneBlock chain (moons)") {
        SequenceINN<Shape<2>, Repeat<8, AllInOneBlock<subnet_fc, {.permute_soft = true}>>> net;
        for (index_t b : {1, 16, 256}) check_no_allocation(net, b);
        net.set_threads(2);  // the workers are created here, not per call
        for (index_t b : {16, 256}) check_no_allocation(net, b);
    }
    SECTION("conditional AllInOneBlock chain") {
        using Net = SequenceINN<Shape<16>, Conditions<Shape<4>>,
                                Repeat<3, Conditioned<AllInOneBlock<subnet_fc>, 0>>>;
        Net net;
        row_matrix<float> c = row_matrix<float>::Random(32, 4);
        check_no_allocation(net, 32, conditions(c));
    }
    SECTION("convolutional GLOW, downsampling, flatten") {
        using Net = SequenceINN<Shape<3, 8, 8>, GLOWCouplingBlock<subnet_conv>, PermuteRandom<>,
                                IRevNetDownsampling<>, GLOWCouplingBlock<subnet_conv>, Flatten,
                                GLOWCouplingBlock<subnet_fc>>;
        Net net;
        for (index_t b : {1, 8}) check_no_allocation(net, b);
        net.set_threads(2);
        check_no_allocation(net, 8);
    }
    SECTION("a fused chain of element-wise modules, composed again after a parameter change") {
        using Net = SequenceINN<Shape<4, 4, 4>, ActNorm, PermuteRandom<>, LearnedElementwiseScaling<>,
                                IRevNetDownsampling<>, GLOWCouplingBlock<subnet_conv>>;
        Net net;
        REQUIRE(net.summary().find("fused pass 1 (3/4)") != std::string::npos);
        check_no_allocation(net, 8);
        (void)net.module<2>();  // counts as a change: the next call composes the chain again
        row_matrix<float> x = row_matrix<float>::Random(8, 64), z(8, 64);
        vector<float> ljd(8);
        CHECK(count_allocations([&] { net.forward_into(x, z, ljd); }) == 0);
    }
}

TEST_CASE("allocation: optimiser steps, clipping and schedules allocate nothing", "[allocation]") {
    SequenceINN<Shape<2>, Repeat<2, AllInOneBlock<subnet_fc>>> net;
    // Gradient storage as a trainer attaches it (this test needs no backward pass).
    std::vector<float> grads(std::size_t(net.parameter_count()), 0.01f);
    std::size_t offset = 0;
    net.visit([&](const std::string&, const tensor_ref<float>& t) {
        if (!t.trainable) return;
        *t.grad_slot = grads.data() + offset;
        offset += std::size_t(t.shape.numel());
    });
    train::Adam adam{net, {.amsgrad = true}};
    train::AdamW adamw{net};
    train::SGD sgd{net, {.lr = 0.1, .momentum = 0.9, .nesterov = true}};
    train::StepLR step_lr{adam, 2};
    train::ExponentialLR exp_lr{sgd, 0.9};
    const long n = count_allocations([&] {
        for (int k = 0; k < 3; ++k) {
            train::clip_grad_norm(adam.parameters(), 1.0);
            train::clip_grad_value(adam.parameters(), 0.5);
            adam.step();
            adamw.step();
            sgd.step();
            step_lr.step();
            exp_lr.step();
        }
        adam.zero_grad();
    });
    CHECK(n == 0);
    CHECK(adam.steps() == 3);
    net.visit([&](const std::string&, const tensor_ref<float>& t) {
        if (t.trainable) *t.grad_slot = nullptr;
    });
}
