#pragma once
// FrEIA's splines: RationalQuadraticSpline and LinearSpline
// (couplings, options SplineCouplingOptions) and ElementwiseRationalQuadraticSpline
// (options SplineOptions). Parameter handling and numerics: spline/binned.hpp.
#include "spline/binned.hpp"
#include "spline/elementwise_rq.hpp"
#include "spline/linear.hpp"
#include "spline/rational_quadratic.hpp"
