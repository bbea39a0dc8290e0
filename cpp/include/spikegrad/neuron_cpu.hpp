// spikegrad/neuron_cpu.hpp — the single-level neuron (docs/spec.md §1-5) and its BPTT backward (docs/spec.md §8)
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
#include <type_traits>

#include "detail/parallel.hpp"
#include "formulas.hpp"
#include "neuron_params.hpp"
#include "options.hpp"

namespace spikegrad {

namespace detail {

// ---------------------------------------------------------------------------------------------
// One neuron, one timestep: the formulas of formulas.hpp in pyref/neuron.py's order. Every loop
// below (and the CUDA kernels) calls these, so the sequence of operations is written once.
// ---------------------------------------------------------------------------------------------

template <typename real>
struct ForwardElement {
  real output, membrane, v;  // o[t], h[t], v[t]
};

// forward: charge -> fire -> output -> reset, from v[t-1] and x[t].
template <typename real, Charge C, Reset R, Scale S, Surrogate G, bool Smooth>
SPIKEGRAD_HD inline ForwardElement<real> forward_element(real x, real v_prev, real lam, real v_reset, real theta,
                                                         real p) {
  const real h = charge<C>(v_prev, x, lam, v_reset);   // docs/spec.md §1
  const real z = spike_argument<S>(h, theta);          // docs/spec.md §3
  const real s = spike<G, Smooth>(z, p);               // docs/spec.md §3: H(z); docs/spec.md §5: F(z) if smooth
  return {output<S>(s, theta), h, reset<R>(h, s, theta, v_reset)};  // docs/spec.md §3, docs/spec.md §4
}

template <typename real>
struct BackwardElement {
  real grad_x, grad_v_prev;              // dL/dx[t], dL/dv[t-1]
  real grad_threshold, grad_sg_param, grad_decay;  // this neuron's share of dL/dtheta[t], dL/dp[t], dL/dlam
};

// backward, one step of docs/spec.md §8 in pyref/neuron.py's expression shapes, rebuilding h, z and s
// from v[t-1] and x[t] (the same bits as the forward made). g_v: dL/dv[t].
// Detach (detach_reset) is a template parameter, chosen once per loop by the caller: a select
// on a run-time bool inside the loop would keep it from vectorizing.
template <typename real, Charge C, Reset R, Scale S, Surrogate G, bool Smooth, bool Detach>
SPIKEGRAD_HD inline BackwardElement<real> backward_element(real x, real v_prev, real g_out, real g_mem, real g_v,
                                                           real lam, real v_reset, real theta, real p) {
  const real h = charge<C>(v_prev, x, lam, v_reset);
  const real z = spike_argument<S>(h, theta);
  const real s = spike<G, Smooth>(z, p);
  const SpikeArgumentPartials<real> dz = spike_argument_partials<S>(h, theta);
  const real sg = surrogate_derivative<G>(z, p);          // f'(z) in place of dH/dz

  real g_s = g_out * output_do_ds<S>(theta);              // docs/spec.md §3
  if constexpr (!Detach) g_s = g_s + g_v * reset_dv_ds<R>(h, theta, v_reset);  // docs/spec.md §4
  const real g_h = (g_mem + g_v * reset_dv_dh<R>(s)) + (g_s * sg) * dz.dh;

  // threshold: through z, through o = theta * s (TrSG), through v = h - theta * s (soft)
  real g_theta = (g_s * sg) * dz.dtheta;
  if constexpr (S == Scale::ThresholdRobust) g_theta = g_theta + g_out * s;
  if constexpr (R == Reset::Soft) g_theta = g_theta - g_v * s;
  const real g_p = g_s * surrogate_param_derivative<G>(z, p);  // straight-through primitive rule

  const ChargePartials<real> dh = charge_partials<C>(v_prev, x, lam, v_reset);  // docs/spec.md §1
  return {g_h * dh.dx, g_h * dh.dv_prev, g_theta, g_p, g_h * dh.dlam};
}

// ---------------------------------------------------------------------------------------------
// A block of neurons through U consecutive steps in one pass
// ---------------------------------------------------------------------------------------------
// The loops below run U steps (kTimeUnroll; the last T mod U steps one at a time) per pass
// over a block, the membrane (or its gradient) held in a register across them. That puts 2U
// row streams in flight in the forward instead of 2: the memory system serves them in
// parallel, while one step per pass left the core waiting on each row in turn (T = 8,
// N = 2^22, float32, one thread: forward 1.36x -> 1.20x of a memcpy's time). Each neuron
// still sees the formulas of forward_element / backward_element in the same order, so the
// bits do not change. Rows of step t + u are at `row + u * stride` (backward: t - u at
// `row - u * stride`); a stride of 0 repeats one row (the zeros row).
inline constexpr int kTimeUnroll = 4;

// The U rows a pass touches are written through separate pointers the compiler cannot prove
// apart; they never overlap (different steps, or one read and written by the same neuron
// only), so the loops tell it to vectorize anyway.
// The passes are not inlined into their callers: each is then compiled once per variant,
// not once per call site, which keeps the build time in check.
#if defined(__CUDACC__)
#define SPIKEGRAD_IVDEP
#define SPIKEGRAD_UNROLL_STEPS
#define SPIKEGRAD_PASS inline
#elif defined(__clang__)
#define SPIKEGRAD_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#define SPIKEGRAD_UNROLL_STEPS _Pragma("unroll")
#define SPIKEGRAD_PASS __attribute__((noinline))
#elif defined(__GNUC__)
#define SPIKEGRAD_IVDEP _Pragma("GCC ivdep")
#define SPIKEGRAD_UNROLL_STEPS _Pragma("GCC unroll 16")
#define SPIKEGRAD_PASS __attribute__((noinline))
#else
#define SPIKEGRAD_IVDEP
#define SPIKEGRAD_UNROLL_STEPS
#define SPIKEGRAD_PASS inline
#endif

// Runs step_group(t, U) over [0, T): groups of Unroll steps, then single steps for what is
// left, forward in time, or backward (t is then the group's latest step, and it covers t,
// t-1, ...). Only two group sizes, and Unroll = 1 where unrolling buys nothing: every extra
// size multiplies the build time of the 288 variants.
template <bool Reverse, int Unroll, typename F>
inline void for_each_step_group(int64_t T, const F& step_group) {
  const int64_t grouped = T - T % Unroll;  // steps [0, grouped) go in full groups
  if constexpr (!Reverse) {
    for (int64_t t = 0; t < grouped; t += Unroll) step_group(t, std::integral_constant<int, Unroll>{});
    if constexpr (Unroll > 1) {
      for (int64_t t = grouped; t < T; ++t) step_group(t, std::integral_constant<int, 1>{});
    }
  } else {
    if constexpr (Unroll > 1) {
      for (int64_t t = T - 1; t >= grouped; --t) step_group(t, std::integral_constant<int, 1>{});
    }
    for (int64_t t = grouped - 1; t >= 0; t -= Unroll) step_group(t, std::integral_constant<int, Unroll>{});
  }
}

// Smooth mode's sigmoid and atan are scalar library calls: there the loop is bound by
// arithmetic, not by memory, and unrolling would only add build time.
template <bool Smooth>
inline constexpr int kStepsPerPass = Smooth ? 1 : kTimeUnroll;

// forward over n neurons and U steps: v in v[t-1], out v[t+U-1]; o gets the outputs of steps
// t..t+U-1, x and o rows `stride` apart. A single-step pass (U = 1) also writes the membrane h
// (to a scratch row when the caller does not want it); unrolled passes run only without it.
// theta, p: the U steps' thresholds and surrogate parameters.
template <int U, typename real, Charge C, Reset R, Scale S, Surrogate G, bool Smooth>
SPIKEGRAD_PASS void forward_steps(int64_t n, int64_t stride, const real* x, real* v, real* o, real* h, real lam,
                                  real v_reset, const real* theta, const real* p) {
  real theta_u[U], p_u[U];
  for (int u = 0; u < U; ++u) {
    theta_u[u] = theta[u];
    p_u[u] = p[u];
  }
  SPIKEGRAD_IVDEP
  for (int64_t i = 0; i < n; ++i) {
    real membrane = v[i];
    SPIKEGRAD_UNROLL_STEPS
    for (int u = 0; u < U; ++u) {
      const ForwardElement<real> e =
          forward_element<real, C, R, S, G, Smooth>(x[u * stride + i], membrane, lam, v_reset, theta_u[u], p_u[u]);
      o[u * stride + i] = e.output;
      if constexpr (U == 1) h[i] = e.membrane;
      membrane = e.v;
    }
    v[i] = membrane;
  }
}

// The backward's forward again: as forward_steps, keeping v[t-1], v[t], ... (rows v_prev_stride
// apart) instead of the outputs.
template <int U, typename real, Charge C, Reset R, Scale S, Surrogate G, bool Smooth>
SPIKEGRAD_PASS void recompute_steps(int64_t n, int64_t stride, const real* x, real* v, real* v_prev,
                                    int64_t v_prev_stride, real lam, real v_reset, const real* theta,
                                    const real* p) {
  real theta_u[U], p_u[U];
  for (int u = 0; u < U; ++u) {
    theta_u[u] = theta[u];
    p_u[u] = p[u];
  }
  SPIKEGRAD_IVDEP
  for (int64_t i = 0; i < n; ++i) {
    real membrane = v[i];
    SPIKEGRAD_UNROLL_STEPS
    for (int u = 0; u < U; ++u) {
      v_prev[u * v_prev_stride + i] = membrane;
      membrane = forward_element<real, C, R, S, G, Smooth>(x[u * stride + i], membrane, lam, v_reset, theta_u[u],
                                                           p_u[u])
                     .v;
    }
    v[i] = membrane;
  }
}

// One row of a [steps, n] array per step of a reverse pass: the row of step t - u.
template <typename real>
struct StepRows {
  real* latest;    // the row of the pass's latest step t
  int64_t stride;  // distance to the previous step's row (0: one row for all)
  real& operator()(int u, int64_t i) const { return latest[i - u * stride]; }
};

// Reverse pass over n neurons and U steps t, t-1, ..., t-U+1 (u = 0 is step t).
// g_v: in dL/dv[t], out dL/dv[t-U]. g_x may be the very rows v_prev is read from (long
// windows park v[t-1] in dL/dx[t]'s row): each neuron reads its v[t-1] before it writes there.
// A single-step pass (U = 1) also gives c_theta/c_p/c_lam[i], the per-neuron contributions to
// dL/dtheta[t], dL/dp[t], dL/dlam: passes that sum parameter gradients run one step. Unrolled
// passes run only without them, and skip the stores.
template <int U, typename real, Charge C, Reset R, Scale S, Surrogate G, bool Smooth, bool Detach>
SPIKEGRAD_PASS void backward_steps(int64_t n, StepRows<const real> x, StepRows<const real> v_prev,
                                   StepRows<const real> g_out, StepRows<const real> g_mem, StepRows<real> g_x,
                                   real* g_v, real* c_theta, real* c_p, real* c_lam, real lam, real v_reset,
                                   const real* theta, const real* p) {
  real theta_u[U], p_u[U];
  for (int u = 0; u < U; ++u) {  // theta[-u], p[-u]: the steps t - u
    theta_u[u] = theta[-u];
    p_u[u] = p[-u];
  }
  SPIKEGRAD_IVDEP
  for (int64_t i = 0; i < n; ++i) {
    real grad_v = g_v[i];
    SPIKEGRAD_UNROLL_STEPS
    for (int u = 0; u < U; ++u) {
      const BackwardElement<real> e = backward_element<real, C, R, S, G, Smooth, Detach>(
          x(u, i), v_prev(u, i), g_out(u, i), g_mem(u, i), grad_v, lam, v_reset, theta_u[u], p_u[u]);
      g_x(u, i) = e.grad_x;
      grad_v = e.grad_v_prev;
      if constexpr (U == 1) {
        c_theta[i] = e.grad_threshold;
        c_p[i] = e.grad_sg_param;
        c_lam[i] = e.grad_decay;
      }
    }
    g_v[i] = grad_v;
  }
}

// ---------------------------------------------------------------------------------------------
// Kernels: one compiled variant per (charge, reset, scale, surrogate, smooth)
// ---------------------------------------------------------------------------------------------

// The forward's unit of parallel work: a block of this many neurons runs through all T steps,
// its membrane in a local array. The forward sums nothing, so its block need not be
// kNeuronBlock; rows of 8 KiB (float32) give the prefetcher longer runs than 2 KiB did.
inline constexpr int64_t kForwardBlock = 2048;

// v[-1] of neurons [n0, n0 + n): v_init, or zeros when the caller passed none.
template <typename real>
inline void load_initial_membrane(const real* v_init, int64_t n0, int64_t n, real* v) {
  if (v_init != nullptr) {
    std::copy(v_init + n0, v_init + n0 + n, v);
  } else {
    std::fill(v, v + n, static_cast<real>(0));
  }
}

template <typename real, Charge C, Reset R, Scale S, Surrogate G, bool Smooth>
void neuron_forward_kernel(const NeuronParams<real>& P, const real* x, real* output, real* membrane,
                           real* v_last, int num_threads) {
  const int64_t T = P.T, N = P.N;
  parallel_for_blocks((N + kForwardBlock - 1) / kForwardBlock, num_threads, [&](int64_t b) {
    const int64_t n0 = b * kForwardBlock;
    const int64_t nb = std::min(kForwardBlock, N - n0);
    real v[kForwardBlock];
    load_initial_membrane(P.v_init, n0, nb, v);
    if (membrane != nullptr) {
      // the membrane as an output too, the less common case: one step per pass (to build half
      // as many unrolled loops)
      for_each_step_group<false, 1>(T, [&](int64_t t, auto) {
        const int64_t row = t * N + n0;
        forward_steps<1, real, C, R, S, G, Smooth>(nb, N, x + row, v, output + row, membrane + row, P.decay,
                                                   P.v_reset, P.threshold + t, P.sg_param + t);
      });
    } else {
      real h_scratch[kForwardBlock];  // where a single-step pass puts h
      for_each_step_group<false, kStepsPerPass<Smooth>>(T, [&](int64_t t, auto steps) {
        const int64_t row = t * N + n0;
        forward_steps<decltype(steps)::value, real, C, R, S, G, Smooth>(
            nb, N, x + row, v, output + row, h_scratch, P.decay, P.v_reset, P.threshold + t, P.sg_param + t);
      });
    }
    std::copy(v, v + nb, v_last + n0);
  });
}

// One reverse pass of U steps from step t, its parameter-gradient sums (when wanted) into ws.
// Detach and ParamGrads select the instantiation of backward_steps, once per pass: a run-time
// branch inside its loop would keep it from vectorizing.
template <int U, typename real, Charge C, Reset R, Scale S, Surrogate G, bool Smooth, bool Detach, bool ParamGrads>
inline void reverse_pass(const NeuronParams<real>& P, int64_t t, int64_t nb, StepRows<const real> x,
                         StepRows<const real> v_prev, StepRows<const real> g_out, StepRows<const real> g_mem,
                         StepRows<real> g_x, real* g_v, real* c_theta, real* c_p, real* c_lam, double* ws,
                         double& decay_sum) {
  static_assert(!ParamGrads || U == 1, "passes that sum parameter gradients run one step");
  backward_steps<U, real, C, R, S, G, Smooth, Detach>(nb, x, v_prev, g_out, g_mem, g_x, g_v, c_theta, c_p, c_lam,
                                                      P.decay, P.v_reset, P.threshold + t, P.sg_param + t);
  if constexpr (ParamGrads) {
    const real* const contributions[3] = {c_theta, c_p, c_lam};
    double sums[3];
    block_sums(contributions, nb, sums);
    ws[1 + t] = sums[0];
    ws[1 + P.T + t] = sums[1];
    decay_sum += sums[2];
  }
}

// workspace: 2T + 1 doubles per block for its [decay, threshold[0..T), sg_param[0..T)] sums, or
// null when no parameter gradient is wanted (the sums are then skipped).
template <typename real, Charge C, Reset R, Scale S, Surrogate G, bool Smooth>
void neuron_backward_kernel(const NeuronParams<real>& P, bool detach_reset, const real* x,
                            const real* grad_output, const real* grad_membrane, const real* grad_v_last,
                            real* grad_x, real* grad_v_init, double* workspace, int num_threads) {
  const int64_t T = P.T, N = P.N;
  const int64_t stride = 2 * T + 1;
  const bool local_rows = T <= kLocalScratchRows<real>;
  parallel_for_blocks(neuron_num_blocks(N), num_threads, [&](int64_t b) {
    const int64_t n0 = b * kNeuronBlock;
    const int64_t nb = std::min(kNeuronBlock, N - n0);
    real v[kNeuronBlock];
    real g_v[kNeuronBlock];
    real zeros[kNeuronBlock];  // stands in for an absent grad_output / grad_membrane row
    // per-neuron parameter-gradient contributions of one step (passes with sums run one step)
    real c_theta[kNeuronBlock], c_p[kNeuronBlock], c_lam[kNeuronBlock];
    real v_prev_rows[kLocalScratchRows<real> * kNeuronBlock];
    std::fill(zeros, zeros + nb, static_cast<real>(0));
    // v[t-1] of step t: a local row, or grad_x's row t for long windows
    real* const v_prev_base = local_rows ? v_prev_rows : grad_x + n0;
    const int64_t v_prev_stride = local_rows ? kNeuronBlock : N;

    // the forward again, keeping v[t-1] (not h: h, z and s are rebuilt from v[t-1] and x[t]
    // with the same formulas, so the same bits)
    load_initial_membrane(P.v_init, n0, nb, v);
    const int64_t next_nb = std::min(kNeuronBlock, N - n0 - nb);  // the next block's size (<= 0: none)
    for_each_step_group<false, kStepsPerPass<Smooth>>(T, [&](int64_t t, auto steps) {
      constexpr int U = decltype(steps)::value;
      recompute_steps<U, real, C, R, S, G, Smooth>(nb, N, x + t * N + n0, v, v_prev_base + t * v_prev_stride,
                                                   v_prev_stride, P.decay, P.v_reset, P.threshold + t,
                                                   P.sg_param + t);
      // Ask for the lines the reverse pass will write, and for the next block's x, now: the
      // hardware prefetcher alone keeps too few of the short row streams in flight (the
      // backward ran 1.2x faster with these, one thread, T = 8, N = 2^22).
      for (int u = 0; u < U; ++u) {
        const int64_t row = (t + u) * N + n0;
        if (local_rows) prefetch_lines<true>(grad_x + row, nb);
        prefetch_lines<false>(x + row + nb, next_nb);
      }
    });

    // reverse time
    if (grad_v_last != nullptr) {
      std::copy(grad_v_last + n0, grad_v_last + n0 + nb, g_v);
    } else {
      std::fill(g_v, g_v + nb, static_cast<real>(0));
    }
    double* ws = workspace != nullptr ? workspace + b * stride : nullptr;
    double decay_sum = 0;
    auto pass = [&](int64_t t, auto steps, auto detach_c, auto param_grads_c) {
      const int64_t row = t * N + n0;
      const StepRows<const real> g_out =
          grad_output != nullptr ? StepRows<const real>{grad_output + row, N} : StepRows<const real>{zeros, 0};
      const StepRows<const real> g_mem =
          grad_membrane != nullptr ? StepRows<const real>{grad_membrane + row, N} : StepRows<const real>{zeros, 0};
      reverse_pass<decltype(steps)::value, real, C, R, S, G, Smooth, decltype(detach_c)::value,
                   decltype(param_grads_c)::value>(P, t, nb, {x + row, N},
                                                   {v_prev_base + t * v_prev_stride, v_prev_stride}, g_out, g_mem,
                                                   {grad_x + row, N}, g_v, c_theta, c_p, c_lam, ws, decay_sum);
    };
    using yes = std::true_type;
    using no = std::false_type;
    if (ws != nullptr) {
      // with parameter gradients, the less common case, one step per pass: the float64 sums
      // per step dominate there, and it halves the unrolled loops to build
      for_each_step_group<true, 1>(T, [&](int64_t t, auto steps) {
        detach_reset ? pass(t, steps, yes{}, yes{}) : pass(t, steps, no{}, yes{});
      });
      ws[0] = decay_sum;
    } else {
      for_each_step_group<true, kStepsPerPass<Smooth>>(T, [&](int64_t t, auto steps) {
        detach_reset ? pass(t, steps, yes{}, no{}) : pass(t, steps, no{}, no{});
      });
    }
    std::copy(g_v, g_v + nb, grad_v_init + n0);
  });
}

// The backward variants of one surrogate shape G: every charge, reset, scale and mode (72 of
// the 288). A program that compiles the kernels in its own translation units builds each G in
// one of its own (SPIKEGRAD_NEURON_CPU_EXTERN below), so that the variants build in parallel.
template <typename real, Surrogate G>
void neuron_backward_variants(const NeuronOptions& options, const NeuronParams<real>& params, const real* x,
                              const real* grad_output, const real* grad_membrane, const real* grad_v_last,
                              real* grad_x, real* grad_v_init, double* workspace, int num_threads) {
  dispatch_neuron_but_surrogate(options, [&](auto charge_c, auto reset_c, auto scale_c, auto smooth_c) {
    neuron_backward_kernel<real, decltype(charge_c)::value, decltype(reset_c)::value, decltype(scale_c)::value, G,
                           decltype(smooth_c)::value>(params, options.detach_reset, x, grad_output, grad_membrane,
                                                      grad_v_last, grad_x, grad_v_init, workspace, num_threads);
  });
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Launchers
// ---------------------------------------------------------------------------------------------


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
// grad_x: [T, N]. grad_v_init: [N].
// grad_decay: 1 double; grad_threshold, grad_sg_param: [T] doubles; workspace:
// neuron_backward_workspace_size(T, N) doubles. Pass nullptr for the three gradients (and the
// workspace) when no parameter gradient is wanted: the kernel then skips their sums (fixed
// parameters, the common case, cost nothing). Given one of the three, give all three.
template <typename real>
void neuron_backward_cpu(const NeuronOptions& options, const NeuronParams<real>& params, const same_t<real>* x,
                         const same_t<real>* grad_output, const same_t<real>* grad_membrane,
                         const same_t<real>* grad_v_last, same_t<real>* grad_x, same_t<real>* grad_v_init,
                         double* grad_decay, double* grad_threshold, double* grad_sg_param, double* workspace,
                         int num_threads = 0) {
  validate_neuron_params(options, params);
  const bool param_grads = grad_decay != nullptr || grad_threshold != nullptr || grad_sg_param != nullptr;
  if (param_grads) {
    if (grad_decay == nullptr) throw std::invalid_argument("grad_decay must not be null");
    if (grad_threshold == nullptr) throw std::invalid_argument("grad_threshold must not be null");
    if (grad_sg_param == nullptr) throw std::invalid_argument("grad_sg_param must not be null");
  }
  const int64_t T = params.T, N = params.N;
  if (param_grads) {
    *grad_decay = 0;
    std::fill(grad_threshold, grad_threshold + T, 0.0);
    std::fill(grad_sg_param, grad_sg_param + T, 0.0);
  }
  if (N == 0) return;
  if (x == nullptr) throw std::invalid_argument("x must not be null");
  if (grad_x == nullptr) throw std::invalid_argument("grad_x must not be null");
  if (grad_v_init == nullptr) throw std::invalid_argument("grad_v_init must not be null");
  if (param_grads && workspace == nullptr) throw std::invalid_argument("workspace must not be null");
  dispatch_surrogate(options.surrogate, [&](auto surrogate_c) {
    detail::neuron_backward_variants<real, decltype(surrogate_c)::value>(options, params, x, grad_output,
                                                                         grad_membrane, grad_v_last, grad_x,
                                                                         grad_v_init,
                                                                         param_grads ? workspace : nullptr,
                                                                         num_threads);
  });
  if (!param_grads) return;
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

// A program that compiles the kernels in their own translation units (the Python module and
// this repository's C++ tests do, to build in parallel) defines SPIKEGRAD_NEURON_CPU_EXTERN
// before including this header and instantiates, once each, for float and double: the two
// launchers (`template SPIKEGRAD_NEURON_FORWARD_CPU_SIGNATURE(float);` etc.) and the backward
// variants of each surrogate (`template SPIKEGRAD_NEURON_BACKWARD_VARIANTS_SIGNATURE(float, Rect);`).
// cmake/SpikegradInstances.cmake writes those translation units.
#define SPIKEGRAD_NEURON_FORWARD_CPU_SIGNATURE(real)                                                        \
  void neuron_forward_cpu<real>(const NeuronOptions&, const NeuronParams<real>&, const real*, real*, real*, \
                                real*, int)
#define SPIKEGRAD_NEURON_BACKWARD_CPU_SIGNATURE(real)                                                         \
  void neuron_backward_cpu<real>(const NeuronOptions&, const NeuronParams<real>&, const real*, const real*,   \
                                 const real*, const real*, real*, real*, double*, double*, double*, double*, \
                                 int)

#define SPIKEGRAD_NEURON_BACKWARD_VARIANTS_SIGNATURE(real, surrogate)                                            \
  void detail::neuron_backward_variants<real, Surrogate::surrogate>(                                              \
      const NeuronOptions&, const NeuronParams<real>&, const real*, const real*, const real*, const real*, real*, \
      real*, double*, int)

#ifdef SPIKEGRAD_NEURON_CPU_EXTERN
extern template SPIKEGRAD_NEURON_FORWARD_CPU_SIGNATURE(float);
extern template SPIKEGRAD_NEURON_FORWARD_CPU_SIGNATURE(double);
extern template SPIKEGRAD_NEURON_BACKWARD_CPU_SIGNATURE(float);
extern template SPIKEGRAD_NEURON_BACKWARD_CPU_SIGNATURE(double);
#define SPIKEGRAD_EXTERN_BACKWARD_VARIANTS(real)                      \
  extern template SPIKEGRAD_NEURON_BACKWARD_VARIANTS_SIGNATURE(real, Rect);     \
  extern template SPIKEGRAD_NEURON_BACKWARD_VARIANTS_SIGNATURE(real, Triangle); \
  extern template SPIKEGRAD_NEURON_BACKWARD_VARIANTS_SIGNATURE(real, Sigmoid);  \
  extern template SPIKEGRAD_NEURON_BACKWARD_VARIANTS_SIGNATURE(real, Atan)
SPIKEGRAD_EXTERN_BACKWARD_VARIANTS(float);
SPIKEGRAD_EXTERN_BACKWARD_VARIANTS(double);
#undef SPIKEGRAD_EXTERN_BACKWARD_VARIANTS
#endif

}  // namespace spikegrad
