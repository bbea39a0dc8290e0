// spikegrad/multilevel_element.hpp — one neuron's step of the multi-level CF neuron (docs/spec.md §6), as
// SPIKEGRAD_HD functions for the CUDA kernels (cpp/cuda/multilevel_cuda.cu). Each performs, for its
// one neuron, exactly the operations of multilevel_cpu.hpp's block loops in the same order (those
// run level-outer over a block so that they vectorize). Test: tests/test_cuda.py compares the two.
#pragma once

#include "formulas.hpp"
#include "multilevel_cpu.hpp"  // LevelSurrogate, detail::SpanBounds

namespace spikegrad::detail {

// The level parameters one step needs, in the working precision.
template <typename real>
struct LevelParams {
  real decay, theta_p, theta_n;
  int k_p, k_n;
  SpanBounds<real> span;
};

// Forward: v in v[t-1], out v[t]; returns h; o receives the signed count (level_counts and
// multilevel_step of multilevel_cpu.hpp).
template <typename real, LevelSurrogate G, bool Smooth>
SPIKEGRAD_HD inline real multilevel_element_step(real x, real& v, real& o, const LevelParams<real>& L, real a) {
  const real one = static_cast<real>(1);
  const real h = charge<Charge::Mul>(v, x, L.decay, static_cast<real>(0));  // docs/spec.md §1
  real n_p = static_cast<real>(0), n_n = static_cast<real>(0);
  if constexpr (Smooth && G == LevelSurrogate::Span) {
    n_p = a * span_ramp(h, L.span.lower_p, L.span.upper_p);
    n_n = a * ((L.span.upper_n - L.span.lower_n) - span_ramp(h, L.span.lower_n, L.span.upper_n));
  } else {
    for (int k = 1; k <= L.k_p; ++k) {
      const real lvl = level(k, L.theta_p);
      if constexpr (Smooth) {
        n_p = n_p + tsg_primitive(h - lvl, a);
      } else {
        n_p = n_p + above_level(h, lvl);  // Eq. 12
      }
    }
    for (int k = 1; k <= L.k_n; ++k) {
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

// Backward (multilevel_backward_step): scratch in v[t-1], out dL/dx[t]; g_v in dL/dv[t], out
// dL/dv[t-1]; c_a, c_lam: this neuron's contributions to dL/da[t] and dL/dlam.
template <typename real, LevelSurrogate G>
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
    for (int k = 1; k <= L.k_p; ++k) {
      const real d = h - level(k, L.theta_p);
      sp = sp + tsg_derivative(d, a);  // Eq. 15
      a_p = a_p + tsg_a_derivative(d, a);
    }
    for (int k = 1; k <= L.k_n; ++k) {
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

}  // namespace spikegrad::detail
