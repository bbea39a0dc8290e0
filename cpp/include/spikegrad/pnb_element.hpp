// spikegrad/pnb_element.hpp — the PNB loss's partial sums (docs/spec.md §6, the CF paper's Eqs. 18-21):
// their parameters and checks, and one element's region test and weight, written once as
// SPIKEGRAD_HD functions for the CPU sums (pnb_cpu.hpp) and the CUDA kernel
// (cpp/cuda/multilevel_cuda.cu). No OpenMP, no kernel. Test: tests/kernels/test_multilevel.py.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "formulas.hpp"
#include "options.hpp"

namespace spikegrad {

// count = elements of h (one layer's membranes, any layout, flattened); K = levels of each sign.
template <typename real>
struct PnbParams {
  int64_t count = 0;
  real theta_p = 1, theta_n = 1;  // level magnitudes, > 0
  int K = 1;                      // levels of each sign, >= 1
};

// The checks every PNB entry point makes, in this order, with the Python argument names.
template <typename real>
void validate_pnb_params(const PnbParams<real>& P) {
  if (P.K < 1) throw std::invalid_argument("k must be >= 1, got " + std::to_string(P.K));
  if (!(std::isfinite(P.theta_p) && P.theta_p > 0)) {
    throw std::invalid_argument("theta_p must be a finite magnitude > 0, got " +
                                detail::number_string(static_cast<double>(P.theta_p)));
  }
  if (!(std::isfinite(P.theta_n) && P.theta_n > 0)) {
    throw std::invalid_argument("theta_n must be a finite magnitude > 0, got " +
                                detail::number_string(static_cast<double>(P.theta_n)));
  }
  if (P.count < 0) throw std::invalid_argument("count must be >= 0");
}

namespace detail {

// The regions of level k, bounds in the working precision like the neuron's levels. Eq. 18:
// R+_k = ((k-1) theta_P, k theta_P], level value k theta_P; Eq. 19: R-_k = [-k theta_N,
// -(k-1) theta_N), level value -k theta_N.
template <typename real>
struct PnbRegions {
  real top_p, bottom_p, top_n, bottom_n;
};

template <typename real>
SPIKEGRAD_HD inline PnbRegions<real> pnb_regions(int k, real theta_p, real theta_n) {
  return {level(k, theta_p), level(k - 1, theta_p), -level(k, theta_n), -level(k - 1, theta_n)};
}

template <typename real>
SPIKEGRAD_HD inline bool in_positive_region(real h, const PnbRegions<real>& R) {
  return R.bottom_p < h && h <= R.top_p;  // Eq. 18
}

template <typename real>
SPIKEGRAD_HD inline bool in_negative_region(real h, const PnbRegions<real>& R) {
  return R.top_n <= h && h < R.bottom_n;  // Eq. 19
}

// An element's weight inside its region, in float64: w = exp(-|level_value - h|) (Eqs. 20-21).
SPIKEGRAD_HD inline double pnb_weight(double h64, double level_value) { return exp(-fabs(level_value - h64)); }

}  // namespace detail
}  // namespace spikegrad
