// spikegrad/neuron_element.hpp — one neuron, one timestep: the single-level neuron's forward
// (docs/spec.md §1-5) and one step of its BPTT backward (docs/spec.md §8), written once for the
// CPU loops (neuron_cpu.hpp) and the CUDA kernels (cpp/cuda/neuron_cuda.cuh). Plain arithmetic:
// no threads, no memory layout. Test: cpp/tests/test_formulas.cpp, tests/ against spikegrad.ref.
#pragma once

#include <cmath>

#include "formulas.hpp"
#include "options.hpp"

namespace spikegrad {

// ---------------------------------------------------------------------------------------------
// The surrogate as a run-time value (docs/spec.md §5). The kernels are compiled per charge,
// reset, scale and mode, not per surrogate: each call below switches over SPIKEGRAD_SURROGATES
// to the formulas of formulas.hpp. A caller that evaluates a whole row of neurons with one
// surrogate makes the switch once per row instead (neuron_cpu.hpp, surrogate_rows).
// ---------------------------------------------------------------------------------------------

#define SPIKEGRAD_SURROGATE_FORMULA_CASE(value, name) \
  case Surrogate::value: return SPIKEGRAD_SURROGATE_FORMULA<Surrogate::value>(z, p);

// f'(z; p) of surrogate g.
template <typename real>
SPIKEGRAD_HD inline real surrogate_derivative(Surrogate g, real z, real p) {
#define SPIKEGRAD_SURROGATE_FORMULA surrogate_derivative
  switch (g) { SPIKEGRAD_SURROGATES(SPIKEGRAD_SURROGATE_FORMULA_CASE) }
#undef SPIKEGRAD_SURROGATE_FORMULA
  return static_cast<real>(NAN);  // not a surrogate: a NaN (the launchers reject such options first)
}

// F(z; p) of surrogate g.
template <typename real>
SPIKEGRAD_HD inline real surrogate_primitive(Surrogate g, real z, real p) {
#define SPIKEGRAD_SURROGATE_FORMULA surrogate_primitive
  switch (g) { SPIKEGRAD_SURROGATES(SPIKEGRAD_SURROGATE_FORMULA_CASE) }
#undef SPIKEGRAD_SURROGATE_FORMULA
  return static_cast<real>(NAN);
}

// dF(z; p)/dp of surrogate g.
template <typename real>
SPIKEGRAD_HD inline real surrogate_param_derivative(Surrogate g, real z, real p) {
#define SPIKEGRAD_SURROGATE_FORMULA surrogate_param_derivative
  switch (g) { SPIKEGRAD_SURROGATES(SPIKEGRAD_SURROGATE_FORMULA_CASE) }
#undef SPIKEGRAD_SURROGATE_FORMULA
  return static_cast<real>(NAN);
}

#undef SPIKEGRAD_SURROGATE_FORMULA_CASE

// What the backward needs of the surrogate at one z: F(z; p) (the spike of smooth mode; unused
// otherwise), f'(z; p) and dF(z; p)/dp.
template <typename real>
struct SurrogateValues {
  real primitive, derivative, param_derivative;
};

namespace detail {

// ---------------------------------------------------------------------------------------------
// One neuron, one timestep: the formulas of formulas.hpp in pyref/neuron.py's order. Every loop
// of neuron_cpu.hpp and every CUDA kernel calls these, so the sequence of operations is written
// once. The surrogate comes in through a callable of z, so that a caller can compute it where
// it is cheapest (a per-element switch on the GPU, a row evaluated beforehand on the CPU): it
// is one value per z either way, so the bits are the same.
// ---------------------------------------------------------------------------------------------

template <typename real>
struct ForwardElement {
  real output, membrane, v;  // o[t], h[t], v[t]
};

// forward: charge -> fire -> output -> reset, from v[t-1] and x[t]. smooth_spike(z): F(z; p),
// called in smooth mode only (otherwise the spike is H(z)).
template <typename real, Charge C, Reset R, Scale S, bool Smooth, typename SmoothSpike>
SPIKEGRAD_HD inline ForwardElement<real> forward_element(real x, real v_prev, real lam, real v_reset, real theta,
                                                         const SmoothSpike& smooth_spike) {
  const real h = charge<C>(v_prev, x, lam, v_reset);  // docs/spec.md §1
  const real z = spike_argument<S>(h, theta);         // docs/spec.md §3
  real s;                                             // docs/spec.md §3: H(z); docs/spec.md §5: F(z) if smooth
  if constexpr (Smooth) {
    s = smooth_spike(z);
  } else {
    s = heaviside(z);
  }
  return {output<S>(s, theta), h, reset<R>(h, s, theta, v_reset)};  // docs/spec.md §3, docs/spec.md §4
}

// The same with surrogate g and parameter p, switched per element.
template <typename real, Charge C, Reset R, Scale S, bool Smooth>
SPIKEGRAD_HD inline ForwardElement<real> forward_element(real x, real v_prev, real lam, real v_reset, real theta,
                                                         Surrogate g, real p) {
  return forward_element<real, C, R, S, Smooth>(x, v_prev, lam, v_reset, theta,
                                                [&](real z) { return surrogate_primitive(g, z, p); });
}

template <typename real>
struct BackwardElement {
  real grad_x, grad_v_prev;                        // dL/dx[t], dL/dv[t-1]
  real grad_threshold, grad_sg_param, grad_decay;  // this neuron's share of dL/dtheta[t], dL/dp[t], dL/dlam
};

// backward, one step of docs/spec.md §8 in pyref/neuron.py's expression shapes, rebuilding h, z and s
// from v[t-1] and x[t] (the same bits as the forward made). g_v: dL/dv[t]. surrogate_at(z): the
// SurrogateValues at z (its primitive is read in smooth mode only).
// Detach (detach_reset) is a template parameter, chosen once per loop by the caller: a select
// on a run-time bool inside the loop would keep it from vectorizing.
template <typename real, Charge C, Reset R, Scale S, bool Smooth, bool Detach, typename SurrogateAt>
SPIKEGRAD_HD inline BackwardElement<real> backward_element(real x, real v_prev, real g_out, real g_mem, real g_v,
                                                           real lam, real v_reset, real theta,
                                                           const SurrogateAt& surrogate_at) {
  const real h = charge<C>(v_prev, x, lam, v_reset);
  const real z = spike_argument<S>(h, theta);
  const SurrogateValues<real> f = surrogate_at(z);
  real s;
  if constexpr (Smooth) {
    s = f.primitive;
  } else {
    s = heaviside(z);
  }
  const SpikeArgumentPartials<real> dz = spike_argument_partials<S>(h, theta);
  const real sg = f.derivative;  // f'(z) in place of dH/dz

  real g_s = g_out * output_do_ds<S>(theta);  // docs/spec.md §3
  if constexpr (!Detach) g_s = g_s + g_v * reset_dv_ds<R>(h, theta, v_reset);  // docs/spec.md §4
  const real g_h = (g_mem + g_v * reset_dv_dh<R>(s)) + (g_s * sg) * dz.dh;

  // threshold: through z, through o = theta * s (TrSG), through v = h - theta * s (soft)
  real g_theta = (g_s * sg) * dz.dtheta;
  if constexpr (S == Scale::ThresholdRobust) g_theta = g_theta + g_out * s;
  if constexpr (R == Reset::Soft) g_theta = g_theta - g_v * s;
  const real g_p = g_s * f.param_derivative;  // straight-through primitive rule

  const ChargePartials<real> dh = charge_partials<C>(v_prev, x, lam, v_reset);  // docs/spec.md §1
  return {g_h * dh.dx, g_h * dh.dv_prev, g_theta, g_p, g_h * dh.dlam};
}

// The same with surrogate g and parameter p, switched per element (the primitive only in
// smooth mode).
template <typename real, Charge C, Reset R, Scale S, bool Smooth, bool Detach>
SPIKEGRAD_HD inline BackwardElement<real> backward_element(real x, real v_prev, real g_out, real g_mem, real g_v,
                                                           real lam, real v_reset, real theta, Surrogate g, real p) {
  return backward_element<real, C, R, S, Smooth, Detach>(
      x, v_prev, g_out, g_mem, g_v, lam, v_reset, theta, [&](real z) {
        const real primitive = Smooth ? surrogate_primitive(g, z, p) : static_cast<real>(0);
        return SurrogateValues<real>{primitive, surrogate_derivative(g, z, p), surrogate_param_derivative(g, z, p)};
      });
}

}  // namespace detail

}  // namespace spikegrad
