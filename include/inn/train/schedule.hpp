#pragma once
// Learning-rate schedules as torch.optim.lr_scheduler's StepLR and ExponentialLR: objects that
// set an optimiser's learning rate each time their step() is called (once per epoch or once
// per optimiser step, as the training loop chooses).
//
//   inn::train::Adam opt{net, {.lr = 1e-2}};
//   inn::train::StepLR sched{opt, /*step_size=*/30, /*gamma=*/0.1};
//   for (int epoch = 0; epoch < 100; ++epoch) {
//       for (...) { t.step(x, inn::train::max_likelihood); opt.step(); }
//       sched.step();                       // lr 1e-2 for epochs 0-29, 1e-3 for 30-59, ...
//   }
//
// As in PyTorch, each decay multiplies the optimiser's current learning rate by gamma
// (lr <- lr * gamma, in double), so the values equal torch's to the bit, and a learning rate
// set by hand in between is decayed from there on. Construction is torch's with
// last_epoch = -1: the epoch counter starts at 0 and the learning rate is left as it is.

#include <cmath>
#include <cstdint>
#include <string_view>

#include "optimizer.hpp"

namespace inn::train {

/// torch.optim.lr_scheduler.StepLR: lr <- lr * gamma whenever the epoch counter reaches a
/// multiple of step_size.
template <LearningRateHolder Opt>
class StepLR {
  public:
    /// The name checkpoints record.
    static constexpr std::string_view kind = "StepLR";

    StepLR(Opt& opt, std::int64_t step_size, double gamma = 0.1)
        : opt_(&opt), step_size_(step_size), gamma_(gamma), base_lr_(opt.lr()),
          last_lr_(opt.lr()) {
        check();
    }

    /// Advances the epoch counter and sets the optimiser's learning rate.
    void step() {
        // The learning rate first: a step it refuses (an lr that overflows) counts no epoch.
        const std::int64_t next = last_epoch_ + 1;
        if (next % step_size_ == 0)
            opt_->set_lr(opt_->lr() * gamma_);
        last_epoch_ = next;
        last_lr_ = opt_->lr();
    }

    /// The learning rate the last step() set (torch: get_last_lr()).
    double last_lr() const { return last_lr_; }
    /// Steps taken (torch: last_epoch).
    std::int64_t last_epoch() const { return last_epoch_; }
    /// The optimiser's learning rate when the schedule was made (torch: base_lrs).
    double base_lr() const { return base_lr_; }
    std::int64_t step_size() const { return step_size_; }
    double gamma() const { return gamma_; }

    /// data_error for a step_size below 1 or a gamma negative or not finite.
    void check() const {
        internal::require_option(step_size_ >= 1, kind, "step_size must be >= 1",
                               double(step_size_));
        internal::require_option(std::isfinite(gamma_) && gamma_ >= 0, kind,
                                 "gamma must be finite and >= 0", gamma_);
    }
    /// Its state for checkpoints (protocol: train/parameter_list.hpp).
    template <class V>
    void visit_state(V&& v) {
        v.count("last_epoch", last_epoch_);
        v.count("step_size", step_size_);
        v.real("gamma", gamma_);
        v.real("base_lr", base_lr_);
        v.real("last_lr", last_lr_);
    }

  private:
    Opt* opt_;
    std::int64_t step_size_;
    double gamma_;
    double base_lr_, last_lr_;
    std::int64_t last_epoch_ = 0;
};

/// torch.optim.lr_scheduler.ExponentialLR: lr <- lr * gamma at every step().
template <LearningRateHolder Opt>
class ExponentialLR {
  public:
    /// The name checkpoints record.
    static constexpr std::string_view kind = "ExponentialLR";

    ExponentialLR(Opt& opt, double gamma)
        : opt_(&opt), gamma_(gamma), base_lr_(opt.lr()), last_lr_(opt.lr()) {
        check();
    }

    /// Advances the epoch counter and sets the optimiser's learning rate.
    void step() {
        opt_->set_lr(opt_->lr() * gamma_); // first: a step it refuses counts no epoch
        ++last_epoch_;
        last_lr_ = opt_->lr();
    }

    double last_lr() const { return last_lr_; }
    std::int64_t last_epoch() const { return last_epoch_; }
    double base_lr() const { return base_lr_; }
    double gamma() const { return gamma_; }

    /// data_error for a gamma negative or not finite.
    void check() const {
        internal::require_option(std::isfinite(gamma_) && gamma_ >= 0, kind,
                                 "gamma must be finite and >= 0", gamma_);
    }
    /// Its state for checkpoints (protocol: train/parameter_list.hpp).
    template <class V>
    void visit_state(V&& v) {
        v.count("last_epoch", last_epoch_);
        v.real("gamma", gamma_);
        v.real("base_lr", base_lr_);
        v.real("last_lr", last_lr_);
    }

  private:
    Opt* opt_;
    double gamma_;
    double base_lr_, last_lr_;
    std::int64_t last_epoch_ = 0;
};

}  // namespace inn::train
