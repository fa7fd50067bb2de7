#pragma once
// Subnet layers (the torch.nn subset FrEIA subnets use).
#include "nn/activation.hpp"
#include "nn/conv2d.hpp"
#include "nn/linear.hpp"
#include "nn/sequential.hpp"
