#pragma once
// Toy data for examples and tests: make_moons (scikit-learn's two moons) and randn.

#include "data/moons.hpp"
#include "data/randn.hpp"
