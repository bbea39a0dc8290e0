// spikegrad/multilevel_element.hpp — the multi-level circulate-firing (CF) neuron of docs/spec.md §6:
// its parameters and their checks, and one neuron's forward and backward step, written once as
// SPIKEGRAD_HD functions. The CPU block loops (multilevel_cpu.hpp) and the CUDA kernels
// (cpp/cuda/multilevel_cuda.cu) both call these steps, so both make the operations of
// pyref/multilevel.py in its order. No OpenMP, no kernel: plain C++ a CUDA file can include.
// Test: tests/kernels/test_multilevel.py (CPU against spikegrad.ref), tests/cuda/test_cuda.py (GPU against CPU).
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "formulas.hpp"
#include "options.hpp"

namespace spikegrad {

// T = timesteps, N = neurons; [T, N] arrays are time-major, element (t, n) at t * N + n.
// The CPU kernels read host pointers, the CUDA siblings (cuda.hpp) device pointers.
template <typename real>
struct MultilevelParams {
  int64_t T = 0, N = 0;
  real decay = 0;               // lam (docs/spec.md §1, `mul` charge)
  real theta_p = 1, theta_n = 1;  // level magnitudes, > 0
  int k_p = 2, k_n = 2;         // numbers of positive and negative levels, >= 1
  const real* a = nullptr;      // a[t], [T]: the surrogate height (span) or TSG parameter
  const real* v_init = nullptr; // v[-1], [N]
};

// The checks of pyref/multilevel.py that read no parameter array (all a CUDA launcher can make
// without a copy from the device; its kernels check a[t]), with the Python argument names.
template <typename real>
void validate_multilevel_shape(const MultilevelParams<real>& P) {
  if (P.T < 1) throw std::invalid_argument("x must have a time axis with T >= 1, got T = " + std::to_string(P.T));
  if (P.N < 0) throw std::invalid_argument("x must have N >= 0 neurons, got N = " + std::to_string(P.N));
  if (P.a == nullptr) throw std::invalid_argument("a must not be null");
  if (P.N > 0 && P.v_init == nullptr) throw std::invalid_argument("v_init must not be null");
  if (std::isnan(P.decay)) throw std::invalid_argument("decay is NaN");
  if (P.k_p < 1) throw std::invalid_argument("k_p must be >= 1, got " + std::to_string(P.k_p));
  if (P.k_n < 1) throw std::invalid_argument("k_n must be >= 1, got " + std::to_string(P.k_n));
  if (!(std::isfinite(P.theta_p) && P.theta_p > 0)) {
    throw std::invalid_argument("theta_p must be a finite magnitude > 0, got " +
                                detail::number_string(static_cast<double>(P.theta_p)));
  }
  if (!(std::isfinite(P.theta_n) && P.theta_n > 0)) {
    throw std::invalid_argument("theta_n must be a finite magnitude > 0, got " +
                                detail::number_string(static_cast<double>(P.theta_n)));
  }
}

// The checks of pyref/multilevel.py, with the Python argument names: validate_multilevel_shape,
// then the values of a[t] (host memory).
template <typename real>
void validate_multilevel_params(const MultilevelParams<real>& P) {
  validate_multilevel_shape(P);
  for (int64_t t = 0; t < P.T; ++t) {
    if (!(std::isfinite(P.a[t]) && P.a[t] > 0)) {
      throw std::invalid_argument("a must be finite and > 0, got " + detail::number_string(static_cast<double>(P.a[t])) +
                                  " at t = " + std::to_string(t));
    }
  }
}

namespace detail {

// Eq. 14's windows in the working precision, as pyref.multilevel.span_bounds.
template <typename real>
struct SpanBounds {
  real lower_p, upper_p, lower_n, upper_n;
};

template <typename real>
SPIKEGRAD_HD inline SpanBounds<real> span_bounds(real theta_p, real theta_n, int k_p, int k_n) {
  const real half = static_cast<real>(0.5);
  return {theta_p * half, (static_cast<real>(k_p) + half) * theta_p, -((static_cast<real>(k_n) + half) * theta_n),
          -(theta_n * half)};
}

// The scalars one step needs, in the working precision (a CUDA kernel takes them by value).
template <typename real>
struct LevelParams {
  real decay, theta_p, theta_n;
  int k_p, k_n;
  SpanBounds<real> span;
};

template <typename real>
inline LevelParams<real> level_params(const MultilevelParams<real>& P) {
  return {P.decay, P.theta_p, P.theta_n, P.k_p, P.k_n, span_bounds(P.theta_p, P.theta_n, P.k_p, P.k_n)};
}

// K: the number of levels of each sign when it is known at compile time (k_p = k_n = K; the CPU
// compiles the default K = 2 so that the level loops unroll and every per-level sum stays in a
// register), or 0: the run-time k_p and k_n of L. Either way each neuron adds its levels in the
// order k = 1, 2, ... from 0, as pyref/multilevel.py, so the bits do not depend on K.

// Forward step (docs/spec.md §6): charge -> counts -> reset -> output. v: in v[t-1], out v[t];
// o: out the signed count; returns h[t]. In smooth mode the counts are the primitives of the
// level surrogates (pyref.multilevel.level_counts).
template <typename real, LevelSurrogate G, bool Smooth, int K = 0>
SPIKEGRAD_HD inline real multilevel_element_step(real x, real& v, real& o, const LevelParams<real>& L, real a) {
  const real one = static_cast<real>(1);
  const real h = charge<Charge::Mul>(v, x, L.decay, static_cast<real>(0));  // docs/spec.md §1
  real n_p = static_cast<real>(0), n_n = static_cast<real>(0);
  if constexpr (Smooth && G == LevelSurrogate::Span) {
    n_p = a * span_ramp(h, L.span.lower_p, L.span.upper_p);
    n_n = a * ((L.span.upper_n - L.span.lower_n) - span_ramp(h, L.span.lower_n, L.span.upper_n));
  } else {
    const int k_p = K > 0 ? K : L.k_p, k_n = K > 0 ? K : L.k_n;
    for (int k = 1; k <= k_p; ++k) {
      const real lvl = level(k, L.theta_p);
      if constexpr (Smooth) {
        n_p = n_p + tsg_primitive(h - lvl, a);
      } else {
        n_p = n_p + above_level(h, lvl);  // Eq. 12
      }
    }
    for (int k = 1; k <= k_n; ++k) {
      const real lvl = level(k, L.theta_n);
      if constexpr (Smooth) {
        n_n = n_n + (one - tsg_primitive(h + lvl, a));
      } else {
        n_n = n_n + below_level(h, -lvl);  // Eq. 13
      }
    }
  }
  v = (h - n_p * L.theta_p) + n_n * L.theta_n;  // Eq. 10
  o = n_p - n_n;                                // Eq. 11
  return h;
}

// Backward step (docs/spec.md §6 and 8, pyref.multilevel.backward's expressions): h is made
// again from v[t-1], then the level surrogates of each sign (Eq. 14 or Eqs. 15-16) and their
// dF_a/da (tsg; zero for span). scratch: in v[t-1], out dL/dx[t] (= dL/dh[t], dh/dx = 1); g_v:
// in dL/dv[t], out dL/dv[t-1]; c_a, c_lam: out this neuron's contributions to dL/da[t] and
// dL/dlam. detach_reset: the counts inside the reset are constants (a compile-time constant in
// the CPU loops, which inline this function; a run-time flag in the CUDA kernel).
template <typename real, LevelSurrogate G, int K = 0>
SPIKEGRAD_HD inline void multilevel_element_backward(bool detach_reset, real x, real& scratch, real g_out, real g_mem,
                                                     real& g_v, real& c_a, real& c_lam, const LevelParams<real>& L,
                                                     real a) {
  const real one = static_cast<real>(1);
  const real zero = static_cast<real>(0);
  const real v_prev = scratch;
  const real h = charge<Charge::Mul>(v_prev, x, L.decay, zero);
  real sp = zero, sn = zero, a_p = zero, a_n = zero;
  if constexpr (G == LevelSurrogate::Span) {
    sp = span_window(h, L.span.lower_p, L.span.upper_p, a);
    sn = span_window(h, L.span.lower_n, L.span.upper_n, a);
  } else {
    const int k_p = K > 0 ? K : L.k_p, k_n = K > 0 ? K : L.k_n;
    for (int k = 1; k <= k_p; ++k) {
      const real d = h - level(k, L.theta_p);
      sp = sp + tsg_derivative(d, a);  // Eq. 15
      a_p = a_p + tsg_a_derivative(d, a);
    }
    for (int k = 1; k <= k_n; ++k) {
      const real d = h + level(k, L.theta_n);
      sn = sn + tsg_derivative(d, a);  // Eq. 16
      a_n = a_n + tsg_a_derivative(d, a);
    }
  }
  const real gv = g_v;
  const real do_dh = sp + sn;
  real dv_dh = one;
  if (detach_reset) {
    c_a = g_out * (a_p + a_n);
  } else {
    dv_dh = (one - L.theta_p * sp) - L.theta_n * sn;
    c_a = (g_out - L.theta_p * gv) * a_p + (g_out - L.theta_n * gv) * a_n;
  }
  const real g_h = (g_mem + gv * dv_dh) + g_out * do_dh;
  scratch = g_h;          // dh/dx = 1
  c_lam = g_h * v_prev;   // dh/dlam = v_prev
  g_v = g_h * L.decay;    // dh/dv_prev = lam
}

}  // namespace detail
}  // namespace spikegrad
