#pragma once
// Every invertible module of inn (FrEIA.modules). Include single headers from inn/modules/ to
// keep compile times down; this one is for convenience.

#include "modules/actnorm.hpp"
#include "modules/all_in_one_block.hpp"
#include "modules/concat.hpp"
#include "modules/coupling.hpp"
#include "modules/elementwise_scaling.hpp"
#include "modules/fixed_1x1_conv.hpp"
#include "modules/fixed_linear.hpp"
#include "modules/gaussian_mixture.hpp"
#include "modules/haar.hpp"
#include "modules/invauto.hpp"
#include "modules/invertible_sigmoid.hpp"
#include "modules/iresnet.hpp"
#include "modules/irevnet.hpp"
#include "modules/orthogonal.hpp"
#include "modules/permute_random.hpp"
#include "modules/reshape.hpp"
#include "modules/spline.hpp"
#include "modules/split.hpp"
