// spikegrad/formulas.hpp — the formulas of docs/spec.md §1-5, one small inline function each,
// shared by the CPU loops and (later) the CUDA kernels. The C++ twin of pyref/formulas.py.
// Test: cpp/tests/test_formulas.cpp; tests/ compare the kernels against spikegrad.ref bit for bit.
//
// Every expression is spelled with exactly the association of pyref/formulas.py and evaluated
// in the working type `real`, with no fused multiply-add (the library compiles with
// -ffp-contract=off): that is what makes the forward bit-identical to the NumPy reference.
// Change a formula here, change it there.
//
// Names (docs/spec.md §0): x input current, h membrane after charging, v membrane after reset,
// z spike argument, s spike, o output, lam leak factor, theta threshold, p surrogate parameter.
#pragma once

#include <cmath>
#include <type_traits>

#include "options.hpp"

#if defined(__CUDACC__)
#define SPIKEGRAD_HD __host__ __device__
#else
#define SPIKEGRAD_HD
#endif

namespace spikegrad {

// exp of the sigmoid surrogate's derivative, the one library call in the backward of a
// training variant. With SPIKEGRAD_USE_LIBMVEC (set by the CMake target on x86-64 glibc with
// GCC, which then also links libmvec) it is declared a SIMD function, so that GCC calls
// glibc's vector math library for a whole vector of neurons: the sigmoid backward vectorizes
// like the others instead of making one scalar call per element (4-8x the memory floor).
// libmvec's exp is not bit for bit glibc's scalar exp (nor NumPy's): the backward is within
// the compare bound as before, and the forward, which does not call it outside smooth mode,
// keeps its bits.
#if defined(SPIKEGRAD_USE_LIBMVEC) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define SPIKEGRAD_VECTOR_EXP 1
extern "C" __attribute__((simd("notinbranch"), const, nothrow)) float spikegrad_vector_expf(float) __asm__("expf");
extern "C" __attribute__((simd("notinbranch"), const, nothrow)) double spikegrad_vector_exp(double) __asm__("exp");
#endif

template <typename real>
SPIKEGRAD_HD inline real surrogate_exp(real a) {
#if defined(SPIKEGRAD_VECTOR_EXP)
  if constexpr (std::is_same_v<real, float>) {
    return spikegrad_vector_expf(a);
  } else if constexpr (std::is_same_v<real, double>) {
    return spikegrad_vector_exp(a);
  } else {
    return std::exp(a);
  }
#else
  return std::exp(a);
#endif
}

// Constants in the working type, rounded from the double literal as NumPy's
// `z.dtype.type(np.pi / 2)` does.
template <typename real>
SPIKEGRAD_HD constexpr real half_pi() { return static_cast<real>(1.5707963267948966); }
template <typename real>
SPIKEGRAD_HD constexpr real pi() { return static_cast<real>(3.141592653589793); }

// ---------------------------------------------------------------------------------------------
// docs/spec.md §1: charge, h[t] from v[t-1] and x[t]
// ---------------------------------------------------------------------------------------------

template <Charge C, typename real>
SPIKEGRAD_HD inline real charge(real v_prev, real x, [[maybe_unused]] real lam,
                                [[maybe_unused]] real v_reset) {
  if constexpr (C == Charge::Mul) {
    return lam * v_prev + x;                          // Wu et al. iterative LIF
  } else if constexpr (C == Charge::DecayInput) {
    return v_prev + lam * (x - (v_prev - v_reset));   // SpikingJelly LIF, TrSG default
  } else if constexpr (C == Charge::NoDecayInput) {
    return (v_prev - lam * (v_prev - v_reset)) + x;   // TrSG option
  } else {
    return v_prev + x;                                // integrate-and-fire
  }
}

template <typename real>
struct ChargePartials {
  real dx, dv_prev, dlam;  // dh/dx, dh/dv_prev, dh/dlam
};

// docs/spec.md §1, the partial derivatives of h.
template <Charge C, typename real>
SPIKEGRAD_HD inline ChargePartials<real> charge_partials([[maybe_unused]] real v_prev,
                                                         [[maybe_unused]] real x,
                                                         [[maybe_unused]] real lam,
                                                         [[maybe_unused]] real v_reset) {
  const real one = static_cast<real>(1);
  if constexpr (C == Charge::Mul) {
    return {one, lam, v_prev};
  } else if constexpr (C == Charge::DecayInput) {
    return {lam, one - lam, x - (v_prev - v_reset)};
  } else if constexpr (C == Charge::NoDecayInput) {
    return {one, one - lam, -(v_prev - v_reset)};
  } else {
    return {one, one, static_cast<real>(0)};
  }
}

// ---------------------------------------------------------------------------------------------
// docs/spec.md §3: fire and output
// ---------------------------------------------------------------------------------------------

// z: h - theta (absolute, AS-SG) or h / theta - 1 (relative RS-SG, threshold_robust TrSG).
template <Scale S, typename real>
SPIKEGRAD_HD inline real spike_argument(real h, real theta) {
  if constexpr (S == Scale::Absolute) {
    return h - theta;
  } else {
    return h / theta - static_cast<real>(1);
  }
}

template <typename real>
struct SpikeArgumentPartials {
  real dh, dtheta;  // dz/dh, dz/dtheta
};

template <Scale S, typename real>
SPIKEGRAD_HD inline SpikeArgumentPartials<real> spike_argument_partials([[maybe_unused]] real h,
                                                                        [[maybe_unused]] real theta) {
  if constexpr (S == Scale::Absolute) {
    return {static_cast<real>(1), static_cast<real>(-1)};
  } else {
    return {static_cast<real>(1) / theta, -h / (theta * theta)};
  }
}

// docs/spec.md §0: H(z) = 1 if z >= 0 else 0. The ordered comparison gives H(NaN) = 0.
template <typename real>
SPIKEGRAD_HD inline real heaviside(real z) {
  return z >= static_cast<real>(0) ? static_cast<real>(1) : static_cast<real>(0);
}

// docs/spec.md §3: o = s, or theta * s for the threshold-robust scale (TrSG).
template <Scale S, typename real>
SPIKEGRAD_HD inline real output(real s, [[maybe_unused]] real theta) {
  if constexpr (S == Scale::ThresholdRobust) {
    return theta * s;
  } else {
    return s;
  }
}

// docs/spec.md §3: do/ds, theta for TrSG, 1 otherwise.
template <Scale S, typename real>
SPIKEGRAD_HD inline real output_do_ds([[maybe_unused]] real theta) {
  if constexpr (S == Scale::ThresholdRobust) {
    return theta;
  } else {
    return static_cast<real>(1);
  }
}

// ---------------------------------------------------------------------------------------------
// docs/spec.md §4: reset
// ---------------------------------------------------------------------------------------------

template <Reset R, typename real>
SPIKEGRAD_HD inline real reset(real h, [[maybe_unused]] real s, [[maybe_unused]] real theta,
                               [[maybe_unused]] real v_reset) {
  if constexpr (R == Reset::Hard) {
    return h * (static_cast<real>(1) - s) + v_reset * s;
  } else if constexpr (R == Reset::Soft) {
    return h - theta * s;   // for TrSG this is h - o
  } else {
    return h;
  }
}

// dv/dh with the spike held fixed: 1 - s for hard, 1 otherwise.
template <Reset R, typename real>
SPIKEGRAD_HD inline real reset_dv_dh([[maybe_unused]] real s) {
  if constexpr (R == Reset::Hard) {
    return static_cast<real>(1) - s;
  } else {
    return static_cast<real>(1);
  }
}

// dv/ds (dropped when detach_reset): v_reset - h, -theta, or 0.
template <Reset R, typename real>
SPIKEGRAD_HD inline real reset_dv_ds([[maybe_unused]] real h, [[maybe_unused]] real theta,
                                     [[maybe_unused]] real v_reset) {
  if constexpr (R == Reset::Hard) {
    return v_reset - h;
  } else if constexpr (R == Reset::Soft) {
    return -theta;
  } else {
    return static_cast<real>(0);
  }
}

// ---------------------------------------------------------------------------------------------
// docs/spec.md §5: surrogate derivatives f'(z; p) and their primitives F(z; p).
// Citations and defaults are in pyref/formulas.py, next to the NumPy twin of each formula.
// ---------------------------------------------------------------------------------------------

// f'(z; p), what replaces dH/dz in the backward pass.
template <Surrogate G, typename real>
SPIKEGRAD_HD inline real surrogate_derivative(real z, real p) {
  const real one = static_cast<real>(1);
  const real zero = static_cast<real>(0);
  if constexpr (G == Surrogate::Rect) {
    // (1/p) * 1(|z| < p/2); the window is open (docs/spec.md §9).
    return std::fabs(z) < p / static_cast<real>(2) ? one / p : zero;
  } else if constexpr (G == Surrogate::Triangle) {
    // (1/p^2) * max(p - |z|, 0); `m < 0 ? 0 : m` is np.maximum(m, 0), NaN included.
    const real m = p - std::fabs(z);
    return (one / (p * p)) * (m < zero ? zero : m);
  } else if constexpr (G == Surrogate::Sigmoid) {
    // p * sg(p z) * (1 - sg(p z)), as p * e / (1 + e)^2 with e = exp(-|p z|): the same
    // function without the cancellation in 1 - sg (see pyref/formulas.py)
    const real e = surrogate_exp(-std::fabs(p * z));
    const real one_plus_e = one + e;
    return p * (e / (one_plus_e * one_plus_e));
  } else {
    // p / (2 * (1 + (pi/2 * p * z)^2))
    const real a = half_pi<real>() * p * z;
    return p / (static_cast<real>(2) * (one + a * a));
  }
}

// F(z; p) with F' = f', F(-inf) = 0, F(+inf) = 1: the spike of smooth mode.
template <Surrogate G, typename real>
SPIKEGRAD_HD inline real surrogate_primitive(real z, real p) {
  const real one = static_cast<real>(1);
  const real zero = static_cast<real>(0);
  const real half = static_cast<real>(0.5);
  if constexpr (G == Surrogate::Rect) {
    // clamp(z/p + 1/2, 0, 1), NaN passing through as in np.clip
    const real u = z / p + half;
    return u < zero ? zero : (u > one ? one : u);
  } else if constexpr (G == Surrogate::Triangle) {
    // with a = max(p - |z|, 0) / p: a^2/2 for z < 0, 1 - a^2/2 for z >= 0
    const real m = p - std::fabs(z);
    const real a = (m < zero ? zero : m) / p;
    return z < zero ? half * a * a : one - half * a * a;
  } else if constexpr (G == Surrogate::Sigmoid) {
    return one / (one + std::exp(-(p * z)));
  } else {
    const real a = half_pi<real>() * p * z;
    return std::atan(a) / pi<real>() + half;
  }
}

// dF(z; p)/dp: -(z/p) f' for width-type shapes (rect, triangle), +(z/p) f' for
// sharpness-type shapes (sigmoid, atan). The gradient reaching p[t] (docs/spec.md §5).
template <Surrogate G, typename real>
SPIKEGRAD_HD inline real surrogate_param_derivative(real z, real p) {
  real ratio = z / p;
  if constexpr (G == Surrogate::Rect || G == Surrogate::Triangle) {
    ratio = -ratio;
  }
  return ratio * surrogate_derivative<G>(z, p);
}

// The spike: s = H(z), or s = F(z; p) in smooth mode (docs/spec.md §3, docs/spec.md §5).
template <Surrogate G, bool Smooth, typename real>
SPIKEGRAD_HD inline real spike(real z, [[maybe_unused]] real p) {
  if constexpr (Smooth) {
    return surrogate_primitive<G>(z, p);
  } else {
    return heaviside(z);
  }
}

// ---------------------------------------------------------------------------------------------
// docs/spec.md §6: the level formulas of the multi-level circulate-firing (CF) neuron (the CF paper).
// The NumPy twins are at the end of pyref/formulas.py.
// ---------------------------------------------------------------------------------------------

// The k-th level magnitude k * theta, in the working precision.
template <typename real>
SPIKEGRAD_HD inline real level(int k, real theta) {
  return static_cast<real>(k) * theta;
}

// Eq. 12: 1(h > k theta_P), strict; Eq. 13: 1(h < -k theta_N), with level_value = -k theta_N.
// Ordered comparisons: NaN gives 0.
template <typename real>
SPIKEGRAD_HD inline real above_level(real h, real level_value) {
  return h > level_value ? static_cast<real>(1) : static_cast<real>(0);
}
template <typename real>
SPIKEGRAD_HD inline real below_level(real h, real level_value) {
  return h < level_value ? static_cast<real>(1) : static_cast<real>(0);
}

// Eqs. 15-16, one level's PLG triangle: max(0, a * (1 - a|d|)), d the distance from the level.
template <typename real>
SPIKEGRAD_HD inline real tsg_derivative(real d, real a) {
  const real r = a * (static_cast<real>(1) - a * std::fabs(d));
  return r < static_cast<real>(0) ? static_cast<real>(0) : r;
}

// Its primitive, from 0 to 1: with u = max(0, 1 - a|d|), u^2/2 for d < 0, 1 - u^2/2 for d >= 0.
template <typename real>
SPIKEGRAD_HD inline real tsg_primitive(real d, real a) {
  const real one = static_cast<real>(1);
  const real half = static_cast<real>(0.5);
  const real m = one - a * std::fabs(d);
  const real u = m < static_cast<real>(0) ? static_cast<real>(0) : m;
  return d < static_cast<real>(0) ? half * u * u : one - half * u * u;
}

// dF_a(d)/da = d * (1 - a|d|) * 1(|d| < 1/a), the indicator evaluated as 1 - a|d| > 0.
template <typename real>
SPIKEGRAD_HD inline real tsg_a_derivative(real d, real a) {
  const real m = static_cast<real>(1) - a * std::fabs(d);
  return m > static_cast<real>(0) ? d * m : static_cast<real>(0);
}

// Eq. 14, one sign's rectangle: a on the open interval (lower, upper), else 0.
template <typename real>
SPIKEGRAD_HD inline real span_window(real h, real lower, real upper, real a) {
  return (lower < h && h < upper) ? a : static_cast<real>(0);
}

// The primitive of the unit window: clamp(h, lower, upper) - lower (np.clip, NaN passing).
template <typename real>
SPIKEGRAD_HD inline real span_ramp(real h, real lower, real upper) {
  const real c = h < lower ? lower : (h > upper ? upper : h);
  return c - lower;
}

}  // namespace spikegrad
