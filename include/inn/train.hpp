#pragma once
// inn training: the trainer (forward, loss, backward), losses, optimisers, schedules, gradient
// clipping. Checkpoints are not included here: include <inn/train/checkpoint.hpp> and link
// inn::io (the safetensors reader and writer need nlohmann_json).
//
//   inn::train::trainer t{net};
//   inn::train::Adam opt{net, {.lr = 1e-3}};
//   for (...) {
//       t.step(x, inn::train::max_likelihood);
//       inn::train::clip_grad_norm(opt.parameters(), 10.0);
//       opt.step();
//   }

#include "train/loss.hpp"
#include "train/optim.hpp"
#include "train/trainer.hpp"
