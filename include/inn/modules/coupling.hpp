#pragma once
// The coupling family of FrEIA (freia-reference.md §4.1-§4.7), with their options.
#include "coupling/conditional_affine.hpp"
#include "coupling/gin.hpp"
#include "coupling/glow.hpp"
#include "coupling/nice.hpp"
#include "coupling/one_sided.hpp"
#include "coupling/options.hpp"
#include "coupling/rnvp.hpp"
