// spikegrad/adaptive_element.hpp — DS-ATGO's adaptive threshold (docs/spec.md §2, "AT") and TGO width
// schedule (docs/spec.md §5): the parameters and their checks, the equations on float64 scalars,
// and one neuron's charge, squared deviation and fire, written once as SPIKEGRAD_HD functions.
// The CPU forward (adaptive_cpu.hpp) and the CUDA forward (cpp/cuda/adaptive_cuda.cu) both call
// them, so the statistics, thresholds and widths are the same bits on both. No OpenMP, no kernel.
// Test: tests/nn/test_atgo.py (CPU against spikegrad.ref.adaptive), tests/cuda/test_cuda.py (GPU).
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "formulas.hpp"
#include "options.hpp"
#include "portable.hpp"

namespace spikegrad {

// T = timesteps, N = neurons (the whole batch: the statistic is over all of them).
template <typename real>
struct AdaptiveParams {
  int64_t T = 0, N = 0;
  real decay = 0;                  // lam (docs/spec.md §1)
  real v_reset = 0;                // the hard-reset potential (docs/spec.md §4)
  const real* v_init = nullptr;    // v[-1], [N]; nullptr: zeros (no [N] array of zeros to read)
  ThresholdMode threshold_mode = ThresholdMode::True;
  double f_c = 1;                  // the threshold's scale factor of Eq. 5
  double v_th = 1;                 // V_th of Eq. 5 (estimated) and Eq. 7
  bool tgo = true;                 // width schedule of Eq. 7; false: k_t = width throughout
  TgoDriver tgo_driver = TgoDriver::Std;
  double width = 1;                // k0, the rect surrogate's base width
};

// ---------------------------------------------------------------------------------------------
// The equations, on float64 scalars (pyref/adaptive.py spells them in the same order)
// ---------------------------------------------------------------------------------------------

// Eq. 5, second line ("true"): theta[t] = f_c * (mean(h[t]) + std(h[t])).
SPIKEGRAD_HD inline double adaptive_threshold(double mean, double std_dev, double f_c) { return f_c * (mean + std_dev); }

// Eq. 5, first line ("estimated"): theta = f_c * sqrt(1 + lam^2) * V_th.
SPIKEGRAD_HD inline double estimated_threshold(double lam, double f_c, double v_th) {
  return f_c * std::sqrt(1.0 + lam * lam) * v_th;
}

// Eq. 7 (docs/spec.md §5): k_t = k0 * (1 + tanh(d_t - V_th)), both branches of the paper in one (tanh is odd).
// tanh is spikegrad's own (portable.hpp): the same bits on the CPU, on CUDA and in pyref.
SPIKEGRAD_HD inline double tgo_width(double k0, double driver, double v_th) {
  return k0 * (1.0 + detail::portable_tanh(driver - v_th));
}

// What one step uses: theta[t] and k_t, computed in float64 and rounded once to the working dtype.
template <typename real>
struct AdaptiveStepValues {
  real threshold;
  real width;
};

template <typename real>
SPIKEGRAD_HD AdaptiveStepValues<real> adaptive_step_values(const AdaptiveParams<real>& P, double mean, double std_dev) {
  const double theta = P.threshold_mode == ThresholdMode::True
                           ? adaptive_threshold(mean, std_dev, P.f_c)
                           : estimated_threshold(static_cast<double>(P.decay), P.f_c, P.v_th);
  double width = P.width;
  if (P.tgo) width = tgo_width(P.width, P.tgo_driver == TgoDriver::Std ? std_dev : theta, P.v_th);
  return {static_cast<real>(theta), static_cast<real>(width)};
}

// The values of one step must be usable, else the forward raises where the cause is known:
// - a non-finite threshold or width means NaN or Inf among the layer's membranes (from x or
//   v_init): the layer statistic is then undefined, and H(NaN) = 0 would silently silence
//   every neuron of the layer, so it is an error rather than IEEE propagation;
// - k_t = 0 happens when tanh(d_t - V_th) rounds to -1 (d_t - V_th < -19 in float64): the rect
//   surrogate of width 0 is undefined (its limit is a Dirac delta, not 0).
// The CUDA forward makes the same checks on the device (adaptive_cuda.cu, check_step_on_device),
// with these messages.
template <typename real>
void check_adaptive_step(const AdaptiveParams<real>& P, const AdaptiveStepValues<real>& step, double mean,
                         double std_dev, int64_t t) {
  const auto statistics = [&] {
    return "(mean(h) = " + detail::number_string(mean) + ", std(h) = " + detail::number_string(std_dev) +
           ", v_th = " + detail::number_string(P.v_th) + ")";
  };
  if (!std::isfinite(step.threshold) || !std::isfinite(step.width)) {
    throw std::invalid_argument("the adaptive threshold or TGO width is not finite at t = " + std::to_string(t) + " " +
                                statistics() + ": the layer's membranes contain NaN or Inf (from x or v_init), or "
                                "are so large that the float64 statistic overflows: DS-ATGO's threshold is undefined");
  }
  if (step.width <= 0) {
    throw std::invalid_argument("the TGO width k_t = width * (1 + tanh(d_t - v_th)) rounds to 0 at t = " +
                                std::to_string(t) + " " + statistics() +
                                ": d_t is too far below v_th; use a smaller v_th or tgo=False");
  }
}

// mean(h[t]) from the layer's sum of h, and the Bessel-corrected std from its sum of squared
// deviations (two passes: the second sums (h - mean)^2 around the first's mean).
SPIKEGRAD_HD inline double layer_mean(double sum, int64_t N) { return sum / static_cast<double>(N); }
SPIKEGRAD_HD inline double layer_std(double sum_squared_deviations, int64_t N) {
  return std::sqrt(sum_squared_deviations / static_cast<double>(N - 1));
}


template <typename real>
void validate_adaptive_params(const AdaptiveParams<real>& P) {
  if (P.T < 1) throw std::invalid_argument("x must have a time axis with T >= 1, got T = " + std::to_string(P.T));
  if (P.N < 2) {
    throw std::invalid_argument(
        "the adaptive threshold needs N >= 2 neurons (the std divides by N - 1), got N = " + std::to_string(P.N));
  }
  if (std::isnan(P.decay)) throw std::invalid_argument("decay is NaN");
  if (!std::isfinite(P.f_c)) throw std::invalid_argument("f_c must be finite, got " + detail::number_string(P.f_c));
  if (!std::isfinite(P.v_th)) throw std::invalid_argument("v_th must be finite, got " + detail::number_string(P.v_th));
  if (!(P.width > 0 && std::isfinite(P.width))) {
    throw std::invalid_argument("width must be a finite number > 0, got " + detail::number_string(P.width));
  }
}

// ---------------------------------------------------------------------------------------------
// One neuron's steps (pyref/adaptive.py's order)
// ---------------------------------------------------------------------------------------------

namespace detail {

// Charge: h[t] = charge(v[t-1], x[t]) (docs/spec.md §1).
template <typename real, Charge C>
SPIKEGRAD_HD inline real adaptive_element_charge(real v, real x, real lam, real v_reset) {
  return charge<C>(v, x, lam, v_reset);
}

// One term of the second pass of the statistic: (h - mean)^2 in float64.
template <typename real>
SPIKEGRAD_HD inline double adaptive_element_deviation(real h, double mean) {
  const double d = static_cast<double>(h) - mean;
  return d * d;
}

// Fire and reset with the step's threshold: o = H(h - theta) (docs/spec.md §3, absolute scale);
// returns v = reset(h, s) (docs/spec.md §4).
template <typename real, Reset R>
SPIKEGRAD_HD inline real adaptive_element_fire(real h, real& o, real theta, real v_reset) {
  const real z = spike_argument<Scale::Absolute>(h, theta);
  const real s = heaviside(z);
  o = output<Scale::Absolute>(s, theta);
  return reset<R>(h, s, theta, v_reset);
}

}  // namespace detail
}  // namespace spikegrad
