#pragma once
// What Adam, AdamW and SGD share: the parameters they update (train/parameter_list.hpp), the
// number of steps taken, zero_grad(), and the checks of hyper-parameters (torch.optim's, as
// data_error).

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <string_view>

#include "../core/errors.hpp"
#include "parameter_list.hpp"

namespace inn::train {

/// An object whose learning rate a schedule sets (train/schedule.hpp).
template <class Opt>
concept LearningRateHolder = requires(Opt& o, const Opt& c, double lr) {
    { c.lr() } -> std::convertible_to<double>;
    o.set_lr(lr);
};

// Implementation details live in `internal`, not `detail`: trainer.hpp's unqualified `detail::`
// must keep meaning inn::detail.
namespace internal {

/// Throws data_error "inn: <who>: <what>, got <value>" unless `ok`.
inline void require_option(bool ok, std::string_view who, std::string_view what, double value) {
    if (!ok) {
        char buf[40];
        std::snprintf(buf, sizeof buf, "%.17g", value);
        throw data_error("inn: " + std::string(who) + ": " + std::string(what) + ", got " + buf);
    }
}

/// A moment (Adam's m and v, SGD's momentum buffer) as the optimisers store it: a subnormal
/// value becomes zero. torch keeps it, but a moment decaying under zero gradients (a dead ReLU
/// unit) then settles on a subnormal for good - 0.9 times 4 * 2^-149 rounds back to it - and
/// every later instruction on it takes a microcode assist on Intel cores (moons' Adam step:
/// 80 us against 10 us). The parameters move by at most lr * min / eps less (1e-32 in float).
template <Scalar S> inline S flush_subnormal(S x) {
    return (x != S(0) && std::abs(x) < std::numeric_limits<S>::min()) ? S(0) : x;
}

/// The parameters, the step count and zero_grad().
template <Scalar S>
class optimizer_core {
  public:
    using scalar = S;

    /// The trainable parameters this optimiser updates, in visit order.
    const parameter_list<S>& parameters() const { return params_; }
    /// Steps taken (torch: state[p]["step"]); restored from checkpoints.
    std::int64_t steps() const { return steps_; }

    /// Sets every gradient to zero (a trainer's step() zeroes them itself; this is for
    /// accumulate()). Parameters without gradient storage are skipped, as torch skips those
    /// whose .grad is None.
    void zero_grad() {
        params_.check_usable("zero_grad");
        for (const auto& e : params_.entries())
            if (S* g = e.grad()) std::fill_n(g, e.size, S(0));
    }

  protected:
    /// usage_error for a network without trainable parameters (torch: "optimizer got an
    /// empty parameter list"): steps would do nothing.
    template <TrainableNetwork Net>
    explicit optimizer_core(Net& net) : params_(net) {
        if (params_.entries().empty())
            throw usage_error("inn: an optimiser was given a network without trainable "
                              "parameters (every tensor fixed or none at all)");
    }

    parameter_list<S> params_;
    std::int64_t steps_ = 0;
};

}  // namespace internal
}  // namespace inn::train
