#pragma once
// Scalar functions callable from functors on both sides (CUDA's device math library under
// nvcc, <cmath> on the host system), overloaded for float and double as std:: is.

#include <cmath>

#include "config.hpp"

namespace inn::cuda::math {

INN_HD inline float exp(float x) { return ::expf(x); }
INN_HD inline double exp(double x) { return ::exp(x); }
INN_HD inline float expm1(float x) { return ::expm1f(x); }
INN_HD inline double expm1(double x) { return ::expm1(x); }
INN_HD inline float log(float x) { return ::logf(x); }
INN_HD inline double log(double x) { return ::log(x); }
INN_HD inline float tanh(float x) { return ::tanhf(x); }
INN_HD inline double tanh(double x) { return ::tanh(x); }
INN_HD inline float atan(float x) { return ::atanf(x); }
INN_HD inline double atan(double x) { return ::atan(x); }

} // namespace inn::cuda::math
