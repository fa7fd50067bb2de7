#pragma once
// What a network throws, by whose mistake. Every message names what it is about: the input,
// output or condition node, the module and its state_dict key, or the sample.
//
//   data_error       a call's arguments: wrong shape, too large a batch, a destination that
//                    cannot hold the result, an index out of range in a sample
//   parameter_error  parameters a module cannot run with (a permutation with duplicates),
//                    found when they change (prepare(), loading), never per call
//   usage_error      the network itself used wrongly (moved from, two threads in one call)
//   io_error         files (io/error.hpp)

#include <stdexcept>
#include <string>
#include <utility>

#include "config.hpp"

namespace inn {

/// Bad data handed to a network at run time: wrong size, too large a batch, ...
struct data_error : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

/// A problem with one sample of a batch (an index out of range, ...). `sample` is the row in
/// the caller's batch (`run_args::first_sample + b` inside a module); the network adds where it
/// happened ("node 'gmm' (GaussianMixtureModel)").
struct sample_error : data_error {
    sample_error(index_t sample, std::string problem, std::string where = {})
        : data_error("inn: " + (where.empty() ? std::string() : where + ": ") + "sample " +
                     std::to_string(sample) + ": " + problem),
          sample_(sample), problem_(std::move(problem)) {}
    index_t sample() const { return sample_; }
    const std::string& problem() const { return problem_; }

  private:
    index_t sample_;
    std::string problem_;
};

/// Parameters or buffers a module cannot run with. `key` is the state_dict key relative to the
/// module (`perm`); the network re-throws it with the full key (`module_list.3.perm`) and the
/// node's name.
struct parameter_error : std::invalid_argument {
    parameter_error(std::string key, std::string problem, std::string where = {})
        : std::invalid_argument("inn: " + (where.empty() ? std::string() : where + ": ") + "'" +
                                key + "' " + problem),
          key_(std::move(key)), problem_(std::move(problem)) {}
    const std::string& key() const { return key_; }
    const std::string& problem() const { return problem_; }

  private:
    std::string key_;
    std::string problem_;
};

/// A network used in a way it does not support: after a move, from two threads at once.
struct usage_error : std::logic_error {
    using std::logic_error::logic_error;
};

}  // namespace inn
