// spikegrad/neuron_cpu.hpp — the single-level neuron (SPEC 1-5) and its BPTT backward (SPEC 8)
// on the CPU: fused over T, OpenMP over blocks of neurons, the same bits for any thread count.
// The C++ twin of pyref/neuron.py. Test: cmake -S . -B build-cpp && cmake --build build-cpp -j2
// && ctest --test-dir build-cpp; tests/ compare it with spikegrad.ref.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__SSE2__)
#include <emmintrin.h>  // _mm_stream_ps / _mm_stream_pd: the forward's streaming stores
#endif

#include "formulas.hpp"
#include "options.hpp"

#if defined(__GNUC__) || defined(__clang__) || defined(_MSC_VER) || defined(__CUDACC__)
#define SPIKEGRAD_RESTRICT __restrict
#else
#define SPIKEGRAD_RESTRICT
#endif

namespace spikegrad {

// T = timesteps, N = neurons (batch and feature dimensions flattened).
// Every [T, N] array is time-major and row-major: element (t, n) is at t * N + n.
template <typename real>
struct NeuronParams {
  int64_t T = 0, N = 0;
  real decay = 0;                   // lam, the leak factor (SPEC 1)
  real v_reset = 0;                 // the hard-reset potential (SPEC 4), also used by the charge
  const real* threshold = nullptr;  // theta[t], [T]
  const real* sg_param = nullptr;   // p[t], [T]
  const real* v_init = nullptr;     // v[-1], [N]
};

// Neurons are processed in blocks of kNeuronBlock: the unit of parallel work, of the state
// kept in local arrays, and of the partial sums of the parameter gradients. It is a constant
// (not derived from the thread count) so that the float64 sums, made per block and then added
// in block order, give the same bits for any number of threads.
inline constexpr int64_t kNeuronBlock = 512;

inline int64_t neuron_num_blocks(int64_t N) { return N <= 0 ? 0 : (N + kNeuronBlock - 1) / kNeuronBlock; }

// Per block: [decay, threshold[0..T), sg_param[0..T)] partial sums.
inline std::size_t neuron_backward_workspace_size(int64_t T, int64_t N) {
  if (T <= 0 || N <= 0) return 0;
  return static_cast<std::size_t>(neuron_num_blocks(N)) * static_cast<std::size_t>(2 * T + 1);
}

namespace detail {
inline std::string number_string(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.9g", value);
  return buffer;
}
}  // namespace detail

// The checks of pyref/neuron.py's _check_parameters, in its order, with the Python argument names.
template <typename real>
void validate_neuron_params(const NeuronOptions& options, const NeuronParams<real>& params) {
  if (params.T < 1) {
    throw std::invalid_argument("x must have a time axis with T >= 1, got T = " + std::to_string(params.T));
  }
  if (params.N < 0) throw std::invalid_argument("x must have N >= 0 neurons, got N = " + std::to_string(params.N));
  if (params.threshold == nullptr) throw std::invalid_argument("threshold must not be null");
  if (params.sg_param == nullptr) throw std::invalid_argument("sg_param must not be null");
  if (params.N > 0 && params.v_init == nullptr) throw std::invalid_argument("v_init must not be null");
  if (std::isnan(params.decay)) throw std::invalid_argument("decay is NaN");
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

namespace detail {

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

// Runs fn(b) for b in [0, num_blocks), on num_threads OpenMP threads (<= 0: OpenMP's default).
template <typename F>
void parallel_for_blocks(int64_t num_blocks, int num_threads, const F& fn) {
#ifdef _OPENMP
  int threads = num_threads > 0 ? num_threads : omp_get_max_threads();
  if (static_cast<int64_t>(threads) > num_blocks) threads = static_cast<int>(num_blocks);
  if (threads > 1) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t b = 0; b < num_blocks; ++b) fn(b);
    return;
  }
#else
  (void)num_threads;
#endif
  for (int64_t b = 0; b < num_blocks; ++b) fn(b);
}

// sum(c[0..n)) in float64, in a fixed order: 8 interleaved lanes (lane = i mod 8, so the loop
// vectorizes without reassociation), then the lanes pairwise.
template <typename real>
inline double block_sum(const real* SPIKEGRAD_RESTRICT c, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += static_cast<double>(c[i + l]);
  }
  for (int l = 0; i + l < n; ++l) acc[l] += static_cast<double>(c[i + l]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Outputs at least this large are written with streaming (non-temporal) stores. Into memory
// that is already mapped, a normal store first reads each destination line from memory (the
// read-for-ownership) only to overwrite it: 12 bytes per element and step in the forward
// instead of 8, and streaming stores measured about 12 % faster there. But a fresh output
// (glibc's default allocator maps new pages for every large tensor) is zeroed by the page-fault
// handler into the caches, where normal stores then land for free, and streaming stores around
// those lines made the forward up to 2x slower (docs/performance.md). Most users run with the
// default allocator, so they are off unless a build sets SPIKEGRAD_STREAMING_STORE_BYTES
// (e.g. -DSPIKEGRAD_STREAMING_STORE_BYTES='(std::size_t(1) << 24)' for 16 MiB and more).
#ifndef SPIKEGRAD_STREAMING_STORE_BYTES
#define SPIKEGRAD_STREAMING_STORE_BYTES SIZE_MAX
#endif
inline constexpr std::size_t kStreamingStoreBytes = SPIKEGRAD_STREAMING_STORE_BYTES;

// dst[0..n) = src[0..n), with non-temporal stores where the target has them (SSE2). Copies the
// values, so the bits are those the formulas made; the caller issues stream_fence() after the
// last row, before another thread may read dst.
template <typename real>
inline void stream_row(real* SPIKEGRAD_RESTRICT dst, const real* SPIKEGRAD_RESTRICT src, int64_t n) {
  int64_t i = 0;
#if defined(__SSE2__)
  constexpr int64_t kLanes = static_cast<int64_t>(16 / sizeof(real));
  // scalar stores up to the first 16-byte-aligned element of dst, then whole vectors
  while (i < n && (reinterpret_cast<std::uintptr_t>(dst + i) & 15) != 0) {
    dst[i] = src[i];
    ++i;
  }
  for (; i + kLanes <= n; i += kLanes) {
    if constexpr (sizeof(real) == sizeof(float)) {
      _mm_stream_ps(reinterpret_cast<float*>(dst + i), _mm_loadu_ps(reinterpret_cast<const float*>(src + i)));
    } else {
      _mm_stream_pd(reinterpret_cast<double*>(dst + i), _mm_loadu_pd(reinterpret_cast<const double*>(src + i)));
    }
  }
#endif
  for (; i < n; ++i) dst[i] = src[i];
}

// The backward keeps v[t-1] of a block in a local array of this many rows (64 KiB) when T fits.
template <typename real>
inline constexpr int64_t kLocalScratchRows = static_cast<int64_t>((std::size_t(64) << 10) / (sizeof(real) * kNeuronBlock));

inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();  // streaming stores are weakly ordered: make them visible before the block ends
#endif
}

// ---------------------------------------------------------------------------------------------
// One timestep of one block of n neurons. The restrict-qualified arguments let the loops
// vectorize; each calls the formulas of formulas.hpp in pyref/neuron.py's order. The CUDA
// kernels (cpp/cuda/) call these same steps with n = 1, one neuron per thread.
// ---------------------------------------------------------------------------------------------

// forward: charge -> fire -> output -> reset. v: [n] in v[t-1], out v[t]; h_out receives h[t].
template <typename real, Charge C, Reset R, Scale S, Surrogate G, bool Smooth>
SPIKEGRAD_HD inline void forward_step(int64_t n, const real* SPIKEGRAD_RESTRICT x, real* SPIKEGRAD_RESTRICT v,
                         real* SPIKEGRAD_RESTRICT o, real* SPIKEGRAD_RESTRICT h_out, real lam, real v_reset,
                         real theta, real p) {
  for (int64_t i = 0; i < n; ++i) {
    const real h = charge<C>(v[i], x[i], lam, v_reset);   // SPEC 1
    const real z = spike_argument<S>(h, theta);           // SPEC 3
    const real s = spike<G, Smooth>(z, p);                // SPEC 3: H(z); SPEC 5: F(z) if smooth
    o[i] = output<S>(s, theta);                           // SPEC 3
    v[i] = reset<R>(h, s, theta, v_reset);                // SPEC 4
    h_out[i] = h;
  }
}

// The backward's recomputation of the forward: stores v[t-1] (not h) so that the reverse step
// can rebuild h, z and s from it and x[t] alone, the same bits as the forward made.
template <typename real, Charge C, Reset R, Scale S, Surrogate G, bool Smooth>
SPIKEGRAD_HD inline void recompute_step(int64_t n, const real* SPIKEGRAD_RESTRICT x, real* SPIKEGRAD_RESTRICT v,
                           real* SPIKEGRAD_RESTRICT v_prev_out, real lam, real v_reset, real theta, real p) {
  for (int64_t i = 0; i < n; ++i) {
    v_prev_out[i] = v[i];
    const real h = charge<C>(v[i], x[i], lam, v_reset);
    const real z = spike_argument<S>(h, theta);
    const real s = spike<G, Smooth>(z, p);
    v[i] = reset<R>(h, s, theta, v_reset);
  }
}

// backward, one step of SPEC 8 in pyref/neuron.py's expression shapes.
// scratch: in v[t-1], out dL/dx[t]. g_v: in dL/dv[t], out dL/dv[t-1].
// c_theta, c_p, c_lam: out the per-neuron contributions to dL/dtheta[t], dL/dp[t], dL/dlam.
// Detach (detach_reset) is a template parameter of this loop only, chosen once per step by the
// kernel: a select on a run-time bool inside the loop would keep it from vectorizing.
template <typename real, Charge C, Reset R, Scale S, Surrogate G, bool Smooth, bool Detach>
SPIKEGRAD_HD inline void backward_step(int64_t n, const real* SPIKEGRAD_RESTRICT x, real* SPIKEGRAD_RESTRICT scratch,
                          const real* SPIKEGRAD_RESTRICT g_out, const real* SPIKEGRAD_RESTRICT g_mem,
                          real* SPIKEGRAD_RESTRICT g_v, real* SPIKEGRAD_RESTRICT c_theta,
                          real* SPIKEGRAD_RESTRICT c_p, real* SPIKEGRAD_RESTRICT c_lam, real lam, real v_reset,
                          real theta, real p) {
  for (int64_t i = 0; i < n; ++i) {
    const real v_prev = scratch[i];
    const real h = charge<C>(v_prev, x[i], lam, v_reset);
    const real z = spike_argument<S>(h, theta);
    const real s = spike<G, Smooth>(z, p);
    const SpikeArgumentPartials<real> dz = spike_argument_partials<S>(h, theta);
    const real sg = surrogate_derivative<G>(z, p);          // f'(z) in place of dH/dz
    const real gv = g_v[i];

    real g_s = g_out[i] * output_do_ds<S>(theta);           // SPEC 3
    if constexpr (!Detach) g_s = g_s + gv * reset_dv_ds<R>(h, theta, v_reset);  // SPEC 4
    const real g_h = (g_mem[i] + gv * reset_dv_dh<R>(s)) + (g_s * sg) * dz.dh;

    // threshold: through z, through o = theta * s (TrSG), through v = h - theta * s (soft)
    real g_theta = (g_s * sg) * dz.dtheta;
    if constexpr (S == Scale::ThresholdRobust) g_theta = g_theta + g_out[i] * s;
    if constexpr (R == Reset::Soft) g_theta = g_theta - gv * s;
    c_theta[i] = g_theta;
    c_p[i] = g_s * surrogate_param_derivative<G>(z, p);    // straight-through primitive rule

    const ChargePartials<real> dh = charge_partials<C>(v_prev, x[i], lam, v_reset);  // SPEC 1
    scratch[i] = g_h * dh.dx;
    c_lam[i] = g_h * dh.dlam;
    g_v[i] = g_h * dh.dv_prev;
  }
}

// ---------------------------------------------------------------------------------------------
// Kernels: one compiled variant per (charge, reset, scale, surrogate, smooth)
// ---------------------------------------------------------------------------------------------

template <typename real, Charge C, Reset R, Scale S, Surrogate G, bool Smooth>
void neuron_forward_kernel(const NeuronParams<real>& P, const real* x, real* output, real* membrane,
                           real* v_last, int num_threads) {
  const int64_t T = P.T, N = P.N;
  const bool streaming = static_cast<std::size_t>(T) * static_cast<std::size_t>(N) * sizeof(real) >= kStreamingStoreBytes;
  parallel_for_blocks(neuron_num_blocks(N), num_threads, [&](int64_t b) {
    const int64_t n0 = b * kNeuronBlock;
    const int64_t nb = std::min(kNeuronBlock, N - n0);
    real v[kNeuronBlock];
    real h_local[kNeuronBlock];  // h[t] of the block (also where h goes when it is not wanted)
    real o_local[kNeuronBlock];  // o[t] of the block before its streaming store
    std::copy(P.v_init + n0, P.v_init + n0 + nb, v);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = t * N + n0;
      if (streaming) {
        // the step writes into the cache-resident local rows, then they stream out to memory
        forward_step<real, C, R, S, G, Smooth>(nb, x + row, v, o_local, h_local, P.decay, P.v_reset,
                                               P.threshold[t], P.sg_param[t]);
        stream_row(output + row, o_local, nb);
        if (membrane != nullptr) stream_row(membrane + row, h_local, nb);
      } else {
        forward_step<real, C, R, S, G, Smooth>(nb, x + row, v, output + row,
                                               membrane != nullptr ? membrane + row : h_local, P.decay,
                                               P.v_reset, P.threshold[t], P.sg_param[t]);
      }
    }
    if (streaming) stream_fence();
    std::copy(v, v + nb, v_last + n0);
  });
}

template <typename real, Charge C, Reset R, Scale S, Surrogate G, bool Smooth>
void neuron_backward_kernel(const NeuronParams<real>& P, bool detach_reset, const real* x,
                            const real* grad_output, const real* grad_membrane, const real* grad_v_last,
                            real* grad_x, real* grad_v_init, double* workspace, int num_threads) {
  const int64_t T = P.T, N = P.N;
  const int64_t stride = 2 * T + 1;
  // Where v[t-1] waits between the recomputed forward and the reverse step: a block-local array
  // when the T rows fit (then grad_x is only written, once, and large outputs stream out), else
  // grad_x itself (read back from the caches, but its lines are first read from memory).
  const bool local_scratch = T <= kLocalScratchRows<real>;
  const bool streaming = local_scratch && static_cast<std::size_t>(T) * static_cast<std::size_t>(N) * sizeof(real) >=
                                              kStreamingStoreBytes;
  parallel_for_blocks(neuron_num_blocks(N), num_threads, [&](int64_t b) {
    const int64_t n0 = b * kNeuronBlock;
    const int64_t nb = std::min(kNeuronBlock, N - n0);
    real v[kNeuronBlock];
    real g_v[kNeuronBlock];
    real zeros[kNeuronBlock];  // stands in for an absent grad_output / grad_membrane row
    real c_theta[kNeuronBlock], c_p[kNeuronBlock], c_lam[kNeuronBlock];
    real v_prev_rows[kLocalScratchRows<real> * kNeuronBlock];
    std::fill(zeros, zeros + nb, static_cast<real>(0));
    auto scratch_row = [&](int64_t t) {
      return local_scratch ? v_prev_rows + t * kNeuronBlock : grad_x + t * N + n0;
    };

    // forward again, keeping v[t-1] in the scratch row t
    std::copy(P.v_init + n0, P.v_init + n0 + nb, v);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = t * N + n0;
      recompute_step<real, C, R, S, G, Smooth>(nb, x + row, v, scratch_row(t), P.decay, P.v_reset,
                                               P.threshold[t], P.sg_param[t]);
    }

    // reverse time
    if (grad_v_last != nullptr) {
      std::copy(grad_v_last + n0, grad_v_last + n0 + nb, g_v);
    } else {
      std::fill(g_v, g_v + nb, static_cast<real>(0));
    }
    double* ws = workspace + b * stride;
    double decay_sum = 0;
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t row = t * N + n0;
      const real* g_out = grad_output != nullptr ? grad_output + row : zeros;
      const real* g_mem = grad_membrane != nullptr ? grad_membrane + row : zeros;
      real* scratch = scratch_row(t);  // in v[t-1], out dL/dx[t]
      if (detach_reset) {
        backward_step<real, C, R, S, G, Smooth, true>(nb, x + row, scratch, g_out, g_mem, g_v, c_theta, c_p, c_lam,
                                                      P.decay, P.v_reset, P.threshold[t], P.sg_param[t]);
      } else {
        backward_step<real, C, R, S, G, Smooth, false>(nb, x + row, scratch, g_out, g_mem, g_v, c_theta, c_p, c_lam,
                                                       P.decay, P.v_reset, P.threshold[t], P.sg_param[t]);
      }
      if (streaming) {
        stream_row(grad_x + row, scratch, nb);
      } else if (local_scratch) {
        std::copy(scratch, scratch + nb, grad_x + row);
      }
      ws[1 + t] = block_sum(c_theta, nb);
      ws[1 + T + t] = block_sum(c_p, nb);
      decay_sum += block_sum(c_lam, nb);
    }
    if (streaming) stream_fence();
    ws[0] = decay_sum;
    std::copy(g_v, g_v + nb, grad_v_init + n0);
  });
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Launchers
// ---------------------------------------------------------------------------------------------

// `real` is deduced from NeuronParams alone, so that nullptr can be passed for optional arrays.
template <typename T>
struct same_type {
  using type = T;
};
template <typename T>
using same_t = typename same_type<T>::type;

// x, output: [T, N]. membrane: [T, N] (receives h) or nullptr. v_last: [N] (receives v[T-1]).
// options.detach_reset is ignored (forward only). num_threads <= 0: OpenMP's default.
template <typename real>
void neuron_forward_cpu(const NeuronOptions& options, const NeuronParams<real>& params, const same_t<real>* x,
                        same_t<real>* output, same_t<real>* membrane, same_t<real>* v_last, int num_threads = 0) {
  validate_neuron_params(options, params);
  if (params.N == 0) return;
  if (x == nullptr) throw std::invalid_argument("x must not be null");
  if (output == nullptr) throw std::invalid_argument("output must not be null");
  if (v_last == nullptr) throw std::invalid_argument("v_last must not be null");
  dispatch_neuron(options, [&](auto charge_c, auto reset_c, auto scale_c, auto surrogate_c, auto smooth_c) {
    constexpr bool smooth = decltype(smooth_c)::value;
    // Outside smooth mode the forward never looks at the surrogate: share one variant.
    constexpr Surrogate shape = smooth ? decltype(surrogate_c)::value : Surrogate::Rect;
    detail::neuron_forward_kernel<real, decltype(charge_c)::value, decltype(reset_c)::value,
                                  decltype(scale_c)::value, shape, smooth>(params, x, output, membrane, v_last,
                                                                           num_threads);
  });
}

// grad_output, grad_membrane: [T, N] or nullptr (zero). grad_v_last: [N] or nullptr (zero).
// grad_x: [T, N], also the scratch of the recomputed forward (x is the only saved state).
// grad_v_init: [N]. grad_decay: 1 double; grad_threshold, grad_sg_param: [T] doubles.
// workspace: neuron_backward_workspace_size(T, N) doubles.
template <typename real>
void neuron_backward_cpu(const NeuronOptions& options, const NeuronParams<real>& params, const same_t<real>* x,
                         const same_t<real>* grad_output, const same_t<real>* grad_membrane,
                         const same_t<real>* grad_v_last, same_t<real>* grad_x, same_t<real>* grad_v_init,
                         double* grad_decay, double* grad_threshold, double* grad_sg_param, double* workspace,
                         int num_threads = 0) {
  validate_neuron_params(options, params);
  if (grad_decay == nullptr) throw std::invalid_argument("grad_decay must not be null");
  if (grad_threshold == nullptr) throw std::invalid_argument("grad_threshold must not be null");
  if (grad_sg_param == nullptr) throw std::invalid_argument("grad_sg_param must not be null");
  const int64_t T = params.T, N = params.N;
  *grad_decay = 0;
  std::fill(grad_threshold, grad_threshold + T, 0.0);
  std::fill(grad_sg_param, grad_sg_param + T, 0.0);
  if (N == 0) return;
  if (x == nullptr) throw std::invalid_argument("x must not be null");
  if (grad_x == nullptr) throw std::invalid_argument("grad_x must not be null");
  if (grad_v_init == nullptr) throw std::invalid_argument("grad_v_init must not be null");
  if (workspace == nullptr) throw std::invalid_argument("workspace must not be null");
  dispatch_neuron(options, [&](auto charge_c, auto reset_c, auto scale_c, auto surrogate_c, auto smooth_c) {
    detail::neuron_backward_kernel<real, decltype(charge_c)::value, decltype(reset_c)::value,
                                   decltype(scale_c)::value, decltype(surrogate_c)::value,
                                   decltype(smooth_c)::value>(params, options.detach_reset, x, grad_output,
                                                              grad_membrane, grad_v_last, grad_x, grad_v_init,
                                                              workspace, num_threads);
  });
  // the per-block partial sums, added in block order
  const int64_t stride = 2 * T + 1;
  for (int64_t b = 0; b < neuron_num_blocks(N); ++b) {
    const double* ws = workspace + b * stride;
    *grad_decay += ws[0];
    for (int64_t t = 0; t < T; ++t) {
      grad_threshold[t] += ws[1 + t];
      grad_sg_param[t] += ws[1 + T + t];
    }
  }
}

// A program that compiles the kernels in their own translation units (the Python module does,
// to build in parallel) defines SPIKEGRAD_NEURON_CPU_EXTERN before including this header and
// instantiates them elsewhere with SPIKEGRAD_INSTANTIATE_NEURON_CPU(float) etc.
#define SPIKEGRAD_NEURON_FORWARD_CPU_SIGNATURE(real)                                                        \
  void neuron_forward_cpu<real>(const NeuronOptions&, const NeuronParams<real>&, const real*, real*, real*, \
                                real*, int)
#define SPIKEGRAD_NEURON_BACKWARD_CPU_SIGNATURE(real)                                                         \
  void neuron_backward_cpu<real>(const NeuronOptions&, const NeuronParams<real>&, const real*, const real*,   \
                                 const real*, const real*, real*, real*, double*, double*, double*, double*, \
                                 int)

#ifdef SPIKEGRAD_NEURON_CPU_EXTERN
extern template SPIKEGRAD_NEURON_FORWARD_CPU_SIGNATURE(float);
extern template SPIKEGRAD_NEURON_FORWARD_CPU_SIGNATURE(double);
extern template SPIKEGRAD_NEURON_BACKWARD_CPU_SIGNATURE(float);
extern template SPIKEGRAD_NEURON_BACKWARD_CPU_SIGNATURE(double);
#endif

}  // namespace spikegrad
