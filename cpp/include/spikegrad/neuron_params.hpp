// spikegrad/neuron_params.hpp — the single-level neuron's parameters (docs/spec.md §1-5), their
// checks, and the size of the backward's workspace: shared by the CPU and CUDA kernels.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "detail/parallel.hpp"
#include "options.hpp"

namespace spikegrad {

// T = timesteps, N = neurons (batch and feature dimensions flattened).
// Every [T, N] array is time-major and row-major: element (t, n) is at t * N + n.
template <typename real>
struct NeuronParams {
  int64_t T = 0, N = 0;
  real decay = 0;                   // lam, the leak factor (docs/spec.md §1)
  real v_reset = 0;                 // the hard-reset potential (docs/spec.md §4), also used by the charge
  const real* threshold = nullptr;  // theta[t], [T]
  const real* sg_param = nullptr;   // p[t], [T]
  const real* v_init = nullptr;     // v[-1], [N]; nullptr: zeros
};

// The CPU backward's workspace in doubles: per block, its [decay, threshold[0..T),
// sg_param[0..T)] partial sums.
inline std::size_t neuron_backward_workspace_size(int64_t T, int64_t N) {
  if (T <= 0 || N <= 0) return 0;
  return static_cast<std::size_t>(neuron_num_blocks(N)) * static_cast<std::size_t>(2 * T + 1);
}

// The CPU backward's workspace in bytes (8-byte aligned), the convention of its CUDA sibling
// neuron_backward_workspace_bytes_cuda<real> (spikegrad/cuda.hpp). The sums are float64 for
// either state dtype, so the size does not depend on real.
template <typename real>
std::size_t neuron_backward_workspace_bytes_cpu(int64_t T, int64_t N) {
  return sizeof(double) * neuron_backward_workspace_size(T, N);
}

// The checks that read no parameter array (T, N, the arrays' presence, decay): all a CUDA launcher
// can make without a copy from the device (its kernels check the arrays' values).
template <typename real>
void validate_neuron_shape(const NeuronParams<real>& params) {
  if (params.T < 1) {
    throw std::invalid_argument("x must have a time axis with T >= 1, got T = " + std::to_string(params.T));
  }
  if (params.N < 0) throw std::invalid_argument("x must have N >= 0 neurons, got N = " + std::to_string(params.N));
  if (params.threshold == nullptr) throw std::invalid_argument("threshold must not be null");
  if (params.sg_param == nullptr) throw std::invalid_argument("sg_param must not be null");
  if (std::isnan(params.decay)) throw std::invalid_argument("decay is NaN");
}

// The checks of pyref/neuron.py's _check_parameters, in its order, with the Python argument names:
// validate_neuron_shape, then the values of threshold[t] and sg_param[t].
template <typename real>
void validate_neuron_params(const NeuronOptions& options, const NeuronParams<real>& params) {
  validate_neuron_shape(params);
  for (int64_t t = 0; t < params.T; ++t) {
    if (std::isnan(params.threshold[t])) throw std::invalid_argument("threshold contains NaN");
  }
  for (int64_t t = 0; t < params.T; ++t) {
    if (std::isnan(params.sg_param[t])) throw std::invalid_argument("sg_param contains NaN");
  }
  if (options.scale != Scale::Absolute) {
    for (int64_t t = 0; t < params.T; ++t) {
      if (params.threshold[t] <= 0) {
        throw std::invalid_argument(std::string("threshold must be > 0 for scale='") + to_string(options.scale) +
                                    "', got " + detail::number_string(static_cast<double>(params.threshold[t])) +
                                    " at t = " + std::to_string(t));
      }
    }
  }
  for (int64_t t = 0; t < params.T; ++t) {
    if (params.sg_param[t] <= 0) {
      throw std::invalid_argument("sg_param must be > 0, got " + detail::number_string(static_cast<double>(params.sg_param[t])) +
                                  " at t = " + std::to_string(t));
    }
  }
}

}  // namespace spikegrad
