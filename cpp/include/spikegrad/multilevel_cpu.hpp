// spikegrad/multilevel_cpu.hpp — the multi-level circulate-firing (CF) neuron of docs/spec.md §6 (the CF paper)
// and its BPTT backward on the CPU: fused over T, OpenMP over fixed-size blocks of neurons, each
// neuron's step multilevel_element.hpp's (the CUDA kernels' too). The C++ twin of
// pyref/multilevel.py. Test: tests/kernels/test_multilevel.py compares it with spikegrad.ref;
// cpp/tests/test_family_siblings.cpp the entry points with each other.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "detail/parallel.hpp"
#include "multilevel_element.hpp"
#include "options.hpp"

namespace spikegrad {

// Per block: [decay, a[0..T)] float64 partial sums (multilevel_backward_workspace_bytes_cpu
// counts them in bytes).
inline std::size_t multilevel_backward_workspace_size(int64_t T, int64_t N) {
  if (T <= 0 || N <= 0) return 0;
  return static_cast<std::size_t>(neuron_num_blocks(N)) * static_cast<std::size_t>(T + 1);
}

// Bytes of the CPU backward's workspace (float64 partial sums, any alignment of double).
template <typename real>
inline std::size_t multilevel_backward_workspace_bytes_cpu(int64_t T, int64_t N) {
  return sizeof(double) * multilevel_backward_workspace_size(T, N);
}

namespace detail {

// The block loops: one call per block and step, each element multilevel_element.hpp's step.
// With the compile-time K the loop body is straight-line code over registers and vectorizes.
//
// The fixed-K loops do enough arithmetic per element (four TSG triangles and their a-derivatives
// in the reverse step) to be compute-bound on two cores: where the build targets AVX-512, GCC is
// asked for 512-bit vectors in them (its default for -march=native is 256). They are kept out of
// line (one call per block and step), else the preference is lost in the caller. Lane-wise IEEE
// operations round alike at any width and no FMA is contracted, so the bits do not change.
#if defined(__GNUC__) && !defined(__clang__) && defined(__AVX512F__) && !defined(__CUDACC__)
#define SPIKEGRAD_WIDE_VECTORS __attribute__((target("prefer-vector-width=512"), noinline))
#else
#define SPIKEGRAD_WIDE_VECTORS
#endif

// Forward step of a block. v: in v[t-1], out v[t]; o: o[t]; h_out: h[t] (or a local sink).
template <typename real, LevelSurrogate G, bool Smooth, int K>
SPIKEGRAD_WIDE_VECTORS inline void multilevel_forward_block(int64_t n, const real* SPIKEGRAD_RESTRICT x,
                                                            real* SPIKEGRAD_RESTRICT v, real* SPIKEGRAD_RESTRICT o,
                                                            real* SPIKEGRAD_RESTRICT h_out, const LevelParams<real>& L,
                                                            real a) {
  for (int64_t i = 0; i < n; ++i) h_out[i] = multilevel_element_step<real, G, Smooth, K>(x[i], v[i], o[i], L, a);
}

// The backward's recomputed forward step of a block: keeps v[t-1] in v_prev_out.
template <typename real, LevelSurrogate G, bool Smooth, int K>
SPIKEGRAD_WIDE_VECTORS inline void multilevel_recompute_block(int64_t n, const real* SPIKEGRAD_RESTRICT x,
                                                              real* SPIKEGRAD_RESTRICT v,
                                                              real* SPIKEGRAD_RESTRICT v_prev_out,
                                                              const LevelParams<real>& L, real a) {
  for (int64_t i = 0; i < n; ++i) {
    v_prev_out[i] = v[i];
    real o;
    multilevel_element_step<real, G, Smooth, K>(x[i], v[i], o, L, a);
  }
}

// Reverse step of a block. scratch: in v[t-1], out dL/dx[t]. g_v: in dL/dv[t], out dL/dv[t-1].
// c_a, c_lam: per-neuron contributions to dL/da[t] and dL/dlam.
template <typename real, LevelSurrogate G, bool Detach, int K>
SPIKEGRAD_WIDE_VECTORS inline void multilevel_backward_block(int64_t n, const real* SPIKEGRAD_RESTRICT x,
                                                             real* SPIKEGRAD_RESTRICT scratch,
                                                             const real* SPIKEGRAD_RESTRICT g_out,
                                                             const real* SPIKEGRAD_RESTRICT g_mem,
                                                             real* SPIKEGRAD_RESTRICT g_v, real* SPIKEGRAD_RESTRICT c_a,
                                                             real* SPIKEGRAD_RESTRICT c_lam, const LevelParams<real>& L,
                                                             real a) {
  for (int64_t i = 0; i < n; ++i) {
    multilevel_element_backward<real, G, K>(Detach, x[i], scratch[i], g_out[i], g_mem[i], g_v[i], c_a[i], c_lam[i], L,
                                            a);
  }
}

// K: the number of levels of each sign when it is the compile-time K of the fixed path
// (k_p = k_n = K), or 0: the run-time k_p and k_n (multilevel_element.hpp).
template <typename real, LevelSurrogate G, bool Smooth, int K>
void multilevel_forward_kernel(const MultilevelParams<real>& P, const real* x, real* output, real* membrane,
                               real* v_last, int num_threads) {
  const int64_t T = P.T, N = P.N;
  const LevelParams<real> L = level_params(P);
  parallel_for_blocks(neuron_num_blocks(N), num_threads, [&](int64_t b) {
    const int64_t n0 = b * kNeuronBlock;
    const int64_t nb = std::min(kNeuronBlock, N - n0);
    real v[kNeuronBlock];
    real h_sink[kNeuronBlock];  // h[t] of the block when the membrane is not wanted
    std::copy(P.v_init + n0, P.v_init + n0 + nb, v);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = t * N + n0;
      multilevel_forward_block<real, G, Smooth, K>(nb, x + row, v, output + row,
                                                   membrane != nullptr ? membrane + row : h_sink, L, P.a[t]);
    }
    std::copy(v, v + nb, v_last + n0);
  });
}

// want_decay, want_a: whether dL/dlam and dL/da[t] are wanted; their float64 block sums (a
// third of the step's work with TSG) are skipped otherwise. workspace: multilevel_backward_workspace_size
// doubles.
template <typename real, LevelSurrogate G, bool Smooth, int K>
void multilevel_backward_kernel(const MultilevelParams<real>& P, bool detach_reset, const real* x,
                                const real* grad_output, const real* grad_membrane, const real* grad_v_last,
                                real* grad_x, real* grad_v_init, bool want_decay, bool want_a, double* workspace,
                                int num_threads) {
  const int64_t T = P.T, N = P.N;
  const int64_t stride = T + 1;
  const LevelParams<real> L = level_params(P);
  // Where v[t-1] waits between the recomputed forward and the reverse step, as in
  // neuron_backward_kernel: a block-local array when the T rows fit (grad_x is then only
  // written, 12 bytes per element and step in float32), else grad_x itself (16).
  const bool local_scratch = T <= kLocalScratchRows<real>;
  parallel_for_blocks(neuron_num_blocks(N), num_threads, [&](int64_t b) {
    const int64_t n0 = b * kNeuronBlock;
    const int64_t nb = std::min(kNeuronBlock, N - n0);
    real v[kNeuronBlock], g_v[kNeuronBlock], zeros[kNeuronBlock], c_a[kNeuronBlock], c_lam[kNeuronBlock];
    real v_prev_rows[kLocalScratchRows<real> * kNeuronBlock];
    std::fill(zeros, zeros + nb, static_cast<real>(0));
    auto scratch_row = [&](int64_t t) {
      return local_scratch ? v_prev_rows + t * kNeuronBlock : grad_x + t * N + n0;
    };

    // forward again, keeping v[t-1] in the scratch row t
    std::copy(P.v_init + n0, P.v_init + n0 + nb, v);
    for (int64_t t = 0; t < T; ++t) {
      multilevel_recompute_block<real, G, Smooth, K>(nb, x + t * N + n0, v, scratch_row(t), L, P.a[t]);
    }

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
        multilevel_backward_block<real, G, true, K>(nb, x + row, scratch, g_out, g_mem, g_v, c_a, c_lam, L, P.a[t]);
      } else {
        multilevel_backward_block<real, G, false, K>(nb, x + row, scratch, g_out, g_mem, g_v, c_a, c_lam, L, P.a[t]);
      }
      if (local_scratch) std::copy(scratch, scratch + nb, grad_x + row);
      if (want_a) ws[1 + t] = block_sum(c_a, nb);
      if (want_decay) decay_sum += block_sum(c_lam, nb);
    }
    ws[0] = decay_sum;
    std::copy(g_v, g_v + nb, grad_v_init + n0);
  });
}

// The compiled level count of the fixed path: the seed's K = 2 of each sign.
inline constexpr int kFixedLevels = 2;

// f(levels) with std::integral_constant<int, kFixedLevels> when k_p = k_n = kFixedLevels, else
// std::integral_constant<int, 0> (the run-time level counts).
template <typename real, typename F>
void dispatch_levels(const MultilevelParams<real>& P, F&& f) {
  if (P.k_p == kFixedLevels && P.k_n == kFixedLevels) {
    f(std::integral_constant<int, kFixedLevels>{});
  } else {
    f(std::integral_constant<int, 0>{});
  }
}

}  // namespace detail

// x, output: [T, N]. membrane: [T, N] (receives h) or nullptr. v_last: [N]. The same bits for
// any num_threads (<= 0: OpenMP's default). The CUDA sibling: multilevel_forward_cuda (cuda.hpp).
template <typename real>
void multilevel_forward_cpu(const MultilevelOptions& options, const MultilevelParams<real>& params,
                            const same_t<real>* x, same_t<real>* output, same_t<real>* membrane,
                            same_t<real>* v_last, int num_threads = 0) {
  validate_multilevel_params(params);
  if (params.N == 0) return;
  if (x == nullptr) throw std::invalid_argument("x must not be null");
  if (output == nullptr) throw std::invalid_argument("output must not be null");
  if (v_last == nullptr) throw std::invalid_argument("v_last must not be null");
  dispatch_multilevel_forward(options, [&](auto surrogate_c, auto smooth_c) {
    detail::dispatch_levels(params, [&](auto levels_c) {
      detail::multilevel_forward_kernel<real, decltype(surrogate_c)::value, decltype(smooth_c)::value,
                                        decltype(levels_c)::value>(params, x, output, membrane, v_last, num_threads);
    });
  });
}

// grad_output, grad_membrane: [T, N] or nullptr (zero). grad_v_last: [N] or nullptr (zero).
// grad_x: [T, N] (for T > 32 in float32, 16 in float64, also the scratch of the recomputed
// forward). grad_v_init: [N]. grad_decay: 1 double, grad_a: [T] doubles, each nullptr when that
// gradient is not wanted (its float64 sums are then skipped). workspace:
// multilevel_backward_workspace_bytes_cpu<real>(T, N) bytes, aligned for double. The CUDA
// sibling: multilevel_backward_cuda (cuda.hpp).
template <typename real>
void multilevel_backward_cpu(const MultilevelOptions& options, const MultilevelParams<real>& params,
                             const same_t<real>* x, const same_t<real>* grad_output,
                             const same_t<real>* grad_membrane, const same_t<real>* grad_v_last,
                             same_t<real>* grad_x, same_t<real>* grad_v_init, double* grad_decay, double* grad_a,
                             void* workspace, int num_threads = 0) {
  validate_multilevel_params(params);
  const int64_t T = params.T, N = params.N;
  if (grad_decay != nullptr) *grad_decay = 0;
  if (grad_a != nullptr) std::fill(grad_a, grad_a + T, 0.0);
  if (N == 0) return;
  if (x == nullptr) throw std::invalid_argument("x must not be null");
  if (grad_x == nullptr) throw std::invalid_argument("grad_x must not be null");
  if (grad_v_init == nullptr) throw std::invalid_argument("grad_v_init must not be null");
  if (workspace == nullptr) throw std::invalid_argument("workspace must not be null");
  double* partials = static_cast<double*>(workspace);
  dispatch_multilevel(options, [&](auto surrogate_c, auto smooth_c) {
    detail::dispatch_levels(params, [&](auto levels_c) {
      detail::multilevel_backward_kernel<real, decltype(surrogate_c)::value, decltype(smooth_c)::value,
                                         decltype(levels_c)::value>(
          params, options.detach_reset, x, grad_output, grad_membrane, grad_v_last, grad_x, grad_v_init,
          grad_decay != nullptr, grad_a != nullptr, partials, num_threads);
    });
  });
  // the per-block partial sums, added in block order
  for (int64_t b = 0; b < neuron_num_blocks(N); ++b) {
    const double* ws = partials + b * (T + 1);
    if (grad_decay != nullptr) *grad_decay += ws[0];
    if (grad_a != nullptr) {
      for (int64_t t = 0; t < T; ++t) grad_a[t] += ws[1 + t];
    }
  }
}

// The same with the workspace as multilevel_backward_workspace_size(T, N) doubles.
template <typename real>
void multilevel_backward_cpu(const MultilevelOptions& options, const MultilevelParams<real>& params,
                             const same_t<real>* x, const same_t<real>* grad_output,
                             const same_t<real>* grad_membrane, const same_t<real>* grad_v_last,
                             same_t<real>* grad_x, same_t<real>* grad_v_init, double* grad_decay, double* grad_a,
                             double* workspace, int num_threads = 0) {
  multilevel_backward_cpu(options, params, x, grad_output, grad_membrane, grad_v_last, grad_x, grad_v_init, grad_decay,
                          grad_a, static_cast<void*>(workspace), num_threads);
}

}  // namespace spikegrad
