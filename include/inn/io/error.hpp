#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace inn {

// The one exception type for everything that goes wrong while reading or writing model files:
// malformed bytes, missing tensors, shape or dtype mismatches. Messages are meant for the user
// of the file, so they always name the source (file path or buffer name) and, where there is
// one, the tensor key, and say plainly what is wrong.
struct io_error : std::runtime_error {
    using std::runtime_error::runtime_error;

    // "<source>: <problem>", for problems that concern the file as a whole (or its header).
    io_error(std::string_view source, std::string_view problem)
        : std::runtime_error(compose(source, {}, problem, false)) {}

    // "<source>: tensor '<key>': <problem>", for problems with one entry.
    io_error(std::string_view source, std::string_view key, std::string_view problem)
        : std::runtime_error(compose(source, key, problem, true)) {}

  private:
    static std::string compose(std::string_view source, std::string_view key,
                               std::string_view problem, bool has_key) {
        std::string msg;
        msg.reserve(source.size() + key.size() + problem.size() + 16);
        msg.append(source.empty() ? std::string_view("<unnamed>") : source);
        if (has_key) {
            msg.append(": tensor '").append(key).append("'");
        }
        msg.append(": ").append(problem);
        return msg;
    }
};

namespace io {
// Spelled both ways so that code inside inn::io can say io_error as well.
using io_error = inn::io_error;
} // namespace io

} // namespace inn
