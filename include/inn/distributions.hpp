#pragma once
// Distributions (FrEIA.distributions): the standard normal base and the density of a
// network's data side, PushForward. See the two headers for details.
#include "distributions/push_forward.hpp"
#include "distributions/standard_normal.hpp"
