#pragma once
// The coupling family of FrEIA, with their options.
#include "coupling/conditional_affine.hpp"
#include "coupling/gin.hpp"
#include "coupling/glow.hpp"
#include "coupling/nice.hpp"
#include "coupling/one_sided.hpp"
#include "coupling/options.hpp"
#include "coupling/rnvp.hpp"
