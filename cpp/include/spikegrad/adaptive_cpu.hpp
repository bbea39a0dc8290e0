// spikegrad/adaptive_cpu.hpp — DS-ATGO's adaptive threshold (docs/spec.md §2, "AT") and TGO width
// schedule (docs/spec.md §5) in the fused CPU forward: between charge and fire, one float64 reduction of
// h[t] over all N neurons sets theta[t] and the surrogate width k_t. The C++ twin of
// pyref/adaptive.py. Test: tests/nn/test_atgo.py compares it with spikegrad.ref.adaptive;
// cpp/tests/test_family_siblings.cpp the entry points with each other.
//
// The backward is neuron_backward_cpu with the recorded thresholds and widths: theta[t] and k_t
// are detached statistics, so the neuron is an ordinary neuron with per-step vectors.
//
// The parameters, the equations on float64 scalars (layer_mean, layer_std, adaptive_step_values)
// and each neuron's charge, deviation and fire are adaptive_element.hpp's, SPIKEGRAD_HD: the CUDA
// forward (cpp/cuda/adaptive_cuda.cu) runs the same source on the device, and adds the block sums
// in the same order (ordered_sum of portable.hpp), so its statistics, thresholds and widths are
// these bits.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "adaptive_element.hpp"
#include "detail/parallel.hpp"
#include "options.hpp"
#include "portable.hpp"

namespace spikegrad {

// The number of float64 per-block partial sums a step writes (one per block of kNeuronBlock).
inline int64_t adaptive_workspace_size(int64_t N) { return neuron_num_blocks(N); }

// Bytes of the fused CPU forward's workspace: the per-block float64 sums, then one step's h ([N]
// of real, used when the membrane is not kept). Aligned for double.
template <typename real>
inline std::size_t adaptive_forward_workspace_bytes_cpu(int64_t N) {
  if (N <= 0) return 0;
  return sizeof(double) * static_cast<std::size_t>(adaptive_workspace_size(N)) +
         sizeof(real) * static_cast<std::size_t>(N);
}

// The blocks' partial sums added in the canonical order (ordered_sum, portable.hpp: 256 strided
// lanes, then the warp shuffle trees), the order the CUDA forward adds them in with one block of
// 256 threads. A data-parallel caller concatenates the ranks' partials in rank order and adds
// them the same way (pyref/adaptive.py, combine_partial_sums).
inline double combine_block_sums(const double* block_sums, int64_t num_blocks) {
  return ordered_sum(block_sums, num_blocks);
}

namespace detail {

// sum((h[i] - mean)^2) over one block in float64, in block_sum's order (8 interleaved lanes,
// combined pairwise).
template <typename real>
inline double block_sum_squared_deviations(const real* SPIKEGRAD_RESTRICT h, int64_t n, double mean) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += adaptive_element_deviation(h[i + l], mean);
  }
  for (int l = 0; i + l < n; ++l) acc[l] += adaptive_element_deviation(h[i + l], mean);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// One block's charge: h = charge(v, x) (docs/spec.md §1). Separate from the fire so that the fused
// forward can write h[t] over h[t-1] in place (the two loops then never alias within one).
template <typename real, Charge C>
inline void charge_block(int64_t n, const real* SPIKEGRAD_RESTRICT x, const real* SPIKEGRAD_RESTRICT v,
                         real* SPIKEGRAD_RESTRICT h, real lam, real v_reset) {
  for (int64_t i = 0; i < n; ++i) h[i] = adaptive_element_charge<real, C>(v[i], x[i], lam, v_reset);
}

// One block's fire and reset with the step's threshold: o = H(h - theta) (docs/spec.md §3, absolute
// scale), v = reset(h, s) (docs/spec.md §4).
template <typename real, Reset R>
inline void fire_block(int64_t n, const real* SPIKEGRAD_RESTRICT h, real* SPIKEGRAD_RESTRICT v,
                       real* SPIKEGRAD_RESTRICT o, real theta, real v_reset) {
  for (int64_t i = 0; i < n; ++i) v[i] = adaptive_element_fire<real, R>(h[i], o[i], theta, v_reset);
}

template <typename real, Charge C>
void charge_blocks(int64_t N, const real* x, const real* v, real* h, real lam, real v_reset, double* block_sums,
                   int num_threads) {
  parallel_for_blocks(neuron_num_blocks(N), num_threads, [&](int64_t b) {
    const int64_t n0 = b * kNeuronBlock;
    const int64_t nb = std::min(kNeuronBlock, N - n0);
    charge_block<real, C>(nb, x + n0, v + n0, h + n0, lam, v_reset);
    block_sums[b] = block_sum(h + n0, nb);
  });
}

template <typename real, Reset R>
void fire_blocks(int64_t N, const real* h, real* v, real* o, real theta, real v_reset, int num_threads) {
  parallel_for_blocks(neuron_num_blocks(N), num_threads, [&](int64_t b) {
    const int64_t n0 = b * kNeuronBlock;
    fire_block<real, R>(std::min(kNeuronBlock, N - n0), h + n0, v + n0, o + n0, theta, v_reset);
  });
}

// The fused forward's first pass of step t: fire step t-1 (from h[t-1], with theta[t-1], writing
// o[t-1]) and charge step t from the v[t-1] it leaves in a block-local array; then the block
// sums of h[t]. At t = 0 (h_prev == nullptr) v[-1] = v_init, or 0 where v_init is nullptr. h_prev and h may be the same
// array (h[t] then overwrites h[t-1]): v[t-1] is never stored, so a step reads h[t-1] and x[t]
// and writes o[t-1] and h[t], 16 bytes per neuron instead of the 24 of charge_blocks +
// fire_blocks (which also write and read v). Each value is made by the same formulas from the
// same operands as in those two, so the bits are theirs.
template <typename real, Charge C, Reset R>
void fire_then_charge_blocks(int64_t N, const real* h_prev, const real* v_init, const real* x, real* o_prev, real* h,
                             real theta_prev, real lam, real v_reset, double* block_sums, int num_threads) {
  parallel_for_blocks(neuron_num_blocks(N), num_threads, [&](int64_t b) {
    const int64_t n0 = b * kNeuronBlock;
    const int64_t nb = std::min(kNeuronBlock, N - n0);
    real v[kNeuronBlock];
    if (h_prev == nullptr && v_init == nullptr) {
      std::fill(v, v + nb, static_cast<real>(0));
    } else if (h_prev == nullptr) {
      std::copy(v_init + n0, v_init + n0 + nb, v);
    } else {
      fire_block<real, R>(nb, h_prev + n0, v, o_prev + n0, theta_prev, v_reset);
    }
    charge_block<real, C>(nb, x + n0, v, h + n0, lam, v_reset);
    block_sums[b] = block_sum(h + n0, nb);
  });
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// The step functions: one timestep over all N neurons. A data-parallel caller runs these three
// in a loop and all-reduces the block sums between them (spikegrad.nn.ATGO(sync_stats=True));
// the fused forward below makes the same values with the fire of step t-1 and the charge of
// step t in one pass.
// ---------------------------------------------------------------------------------------------

// Charge: h[t] = charge(v[t-1], x[t]) for the N neurons. x_t, v, h: [N]. Writes h and
// block_sums[adaptive_workspace_size(N)], the per-block float64 sums of h.
template <typename real>
void adaptive_charge_step(Charge charge_kind, int64_t N, const same_t<real>* x_t, const same_t<real>* v,
                          same_t<real>* h, real lam, same_t<real> v_reset, double* block_sums, int num_threads = 0) {
  dispatch_charge(charge_kind, [&](auto c) {
    detail::charge_blocks<real, decltype(c)::value>(N, x_t, v, h, lam, v_reset, block_sums, num_threads);
  });
}

// Deviations: block_sums[b] = sum over block b of (h - mean)^2 in float64.
template <typename real>
void adaptive_deviation_step(int64_t N, const real* h, double mean, double* block_sums, int num_threads = 0) {
  detail::parallel_for_blocks(neuron_num_blocks(N), num_threads, [&](int64_t b) {
    const int64_t n0 = b * kNeuronBlock;
    block_sums[b] = detail::block_sum_squared_deviations(h + n0, std::min(kNeuronBlock, N - n0), mean);
  });
}

// Fire and reset with the step's threshold: o = H(h - theta), v = reset(h, s). h, v, o: [N].
template <typename real>
void adaptive_fire_step(Reset reset_kind, int64_t N, const same_t<real>* h, same_t<real>* v, same_t<real>* o,
                        real theta, same_t<real> v_reset, int num_threads = 0) {
  dispatch_reset(reset_kind, [&](auto r) {
    detail::fire_blocks<real, decltype(r)::value>(N, h, v, o, theta, v_reset, num_threads);
  });
}

// ---------------------------------------------------------------------------------------------
// The fused forward
// ---------------------------------------------------------------------------------------------

// options: charge and reset are used; the scale must be absolute and smooth false (the spike is
// H(h - theta)); the surrogate and detach_reset are the backward's.
// x, output: [T, N]. membrane: [T, N] (receives h) or nullptr, then h_scratch: [N] holds h[t].
// v_last: [N], receives v[T-1]. threshold, sg_param: [T], the theta[t] and k_t used. mean,
// std_dev: [T] doubles. workspace: adaptive_workspace_size(N) doubles.
// The same bits for any num_threads (<= 0: OpenMP's default).
//
// Two passes over [N] per step, then one more at the end. theta[t] needs the float64 mean and
// std of all of h[t] (two reductions, pyref/adaptive.py's two-pass order), so a step cannot be
// fused over T; but the fire of step t-1 and the charge of step t can share a pass:
//   pass 1 of step t: fire t-1 (o[t-1], v[t-1]) -> charge t (h[t]) -> block sums of h[t]
//   pass 2 of step t: block sums of (h[t] - mean[t])^2
//   after step T-1:   fire T-1 (o[T-1], v_last)
// v is never stored between passes (it lives in a block-local array), and without the
// membrane h[t] overwrites h[t-1] in h_scratch. Per neuron and step: read h, x and h again,
// write o and h: 20 bytes in float32 (24 with the membrane, which is then written apart).
template <typename real>
void adaptive_forward_cpu(const NeuronOptions& options, const AdaptiveParams<real>& P, const same_t<real>* x,
                          same_t<real>* output, same_t<real>* membrane, same_t<real>* v_last,
                          same_t<real>* threshold, same_t<real>* sg_param, double* mean, double* std_dev,
                          same_t<real>* h_scratch, double* workspace, int num_threads = 0) {
  validate_adaptive_params(P);
  if (options.scale != Scale::Absolute) {
    throw std::invalid_argument("the adaptive threshold uses scale='absolute', got scale='" +
                                std::string(to_string(options.scale)) + "'");
  }
  if (options.smooth) throw std::invalid_argument("the adaptive threshold has no smooth mode");
  if (x == nullptr || output == nullptr || v_last == nullptr || threshold == nullptr || sg_param == nullptr ||
      mean == nullptr || std_dev == nullptr || workspace == nullptr || (membrane == nullptr && h_scratch == nullptr)) {
    throw std::invalid_argument("adaptive_forward_cpu: a required buffer is null");
  }
  const int64_t T = P.T, N = P.N, num_blocks = neuron_num_blocks(N);
  auto h_row = [&](int64_t t) -> real* { return membrane != nullptr ? membrane + t * N : h_scratch; };
  dispatch_charge(options.charge, [&](auto charge_c) {
    dispatch_reset(options.reset, [&](auto reset_c) {
      constexpr Charge C = decltype(charge_c)::value;
      constexpr Reset R = decltype(reset_c)::value;
      for (int64_t t = 0; t < T; ++t) {
        const real* h_prev = t == 0 ? nullptr : h_row(t - 1);
        real* o_prev = t == 0 ? nullptr : output + (t - 1) * N;
        const real theta_prev = t == 0 ? real(0) : threshold[t - 1];
        real* h = h_row(t);
        detail::fire_then_charge_blocks<real, C, R>(N, h_prev, P.v_init, x + t * N, o_prev, h, theta_prev, P.decay,
                                                    P.v_reset, workspace, num_threads);
        mean[t] = layer_mean(combine_block_sums(workspace, num_blocks), N);
        adaptive_deviation_step<real>(N, h, mean[t], workspace, num_threads);
        std_dev[t] = layer_std(combine_block_sums(workspace, num_blocks), N);
        const AdaptiveStepValues<real> step = adaptive_step_values(P, mean[t], std_dev[t]);  // Eq. 5, 7
        check_adaptive_step(P, step, mean[t], std_dev[t], t);
        threshold[t] = step.threshold;
        sg_param[t] = step.width;
      }
      detail::fire_blocks<real, R>(N, h_row(T - 1), v_last, output + (T - 1) * N, threshold[T - 1], P.v_reset,
                                   num_threads);
    });
  });
}

// The same with one workspace of adaptive_forward_workspace_bytes_cpu<real>(N) bytes (aligned
// for double): the block sums, then h_scratch. The CUDA sibling: adaptive_forward_cuda (cuda.hpp).
template <typename real>
void adaptive_forward_cpu(const NeuronOptions& options, const AdaptiveParams<real>& P, const same_t<real>* x,
                          same_t<real>* output, same_t<real>* membrane, same_t<real>* v_last,
                          same_t<real>* threshold, same_t<real>* sg_param, double* mean, double* std_dev,
                          void* workspace, int num_threads = 0) {
  double* block_sums = static_cast<double*>(workspace);
  real* h_scratch = workspace == nullptr || P.N < 1
                        ? nullptr
                        : reinterpret_cast<real*>(block_sums + adaptive_workspace_size(P.N));
  adaptive_forward_cpu(options, P, x, output, membrane, v_last, threshold, sg_param, mean, std_dev, h_scratch,
                       block_sums, num_threads);
}

}  // namespace spikegrad
