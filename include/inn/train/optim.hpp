#pragma once
// Optimisers, learning-rate schedules and gradient clipping (torch.optim's counterparts), one
// concept per header:
//
//   train/parameter_list.hpp  the trainable parameters in visit order, flat offsets
//   train/adam.hpp            Adam, AdamW
//   train/sgd.hpp             SGD (momentum, dampening, Nesterov, weight decay)
//   train/schedule.hpp        StepLR, ExponentialLR
//   train/clip.hpp            clip_grad_norm, clip_grad_value
//
// Checkpoints (parameters and optimiser state in one safetensors file) are in
// train/checkpoint.hpp, which needs inn::io.

#include "adam.hpp"
#include "clip.hpp"
#include "parameter_list.hpp"
#include "schedule.hpp"
#include "sgd.hpp"
