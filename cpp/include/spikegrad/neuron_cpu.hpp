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
#include "neuron_element.hpp"
#include "neuron_params.hpp"
#include "options.hpp"

namespace spikegrad {

namespace detail {

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
// size multiplies the build time of the 72 variants.
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

// The forward's unit of parallel work: a block of this many neurons runs through all T steps,
// its membrane in a local array. The forward sums nothing, so its block need not be
// kNeuronBlock; rows of 8 KiB (float32) give the prefetcher longer runs than 2 KiB did.
inline constexpr int64_t kForwardBlock = 2048;

// Smooth mode's sigmoid and atan are scalar library calls: there the loop is bound by
// arithmetic, not by memory, and unrolling would only add build time.
template <bool Smooth>
inline constexpr int kStepsPerPass = Smooth ? 1 : kTimeUnroll;

// ---------------------------------------------------------------------------------------------
// The surrogate over a row of neurons. The passes are compiled per charge, reset, scale and
// mode; the surrogate is a run-time value, switched once per row here, and each of these
// loops is compiled once per surrogate (and dtype) only. A row is at most one block's neurons,
// held in a local array that stays in L1 next to the pass that reads it.
// ---------------------------------------------------------------------------------------------

// z of n neurons of one step from v[t-1] and x[t] (docs/spec.md §1, §3): the very bits the
// forward_element / backward_element of the same neurons compute.
template <typename real, Charge C, Scale S>
inline void spike_argument_row(int64_t n, const real* x, const real* v_prev, real lam, real v_reset, real theta,
                               real* z) {
  SPIKEGRAD_IVDEP
  for (int64_t i = 0; i < n; ++i) z[i] = spike_argument<S>(charge<C>(v_prev[i], x[i], lam, v_reset), theta);
}

// Surrogate G at the n values z (docs/spec.md §5): F(z; p) into primitive, f'(z; p) into
// derivative, dF/dp into param_derivative, each skipped when null. primitive may be z itself.
template <Surrogate G, typename real>
SPIKEGRAD_PASS void surrogate_row(int64_t n, const real* z, real p, real* primitive, real* derivative,
                                  real* param_derivative) {
  if (derivative != nullptr) {
    SPIKEGRAD_IVDEP
    for (int64_t i = 0; i < n; ++i) derivative[i] = surrogate_derivative<G>(z[i], p);
  }
  if (param_derivative != nullptr) {
    SPIKEGRAD_IVDEP
    for (int64_t i = 0; i < n; ++i) param_derivative[i] = surrogate_param_derivative<G>(z[i], p);
  }
  if (primitive != nullptr) {  // last: it may overwrite z
    SPIKEGRAD_IVDEP
    for (int64_t i = 0; i < n; ++i) primitive[i] = surrogate_primitive<G>(z[i], p);
  }
}

// surrogate_row of the run-time surrogate g: the one switch of a row.
template <typename real>
inline void surrogate_rows(Surrogate g, int64_t n, const real* z, real p, real* primitive, real* derivative,
                           real* param_derivative) {
  dispatch_surrogate(g, [&](auto surrogate_c) {
    surrogate_row<decltype(surrogate_c)::value>(n, z, p, primitive, derivative, param_derivative);
  });
}

// Smooth mode's spikes s = F(z; p) of n neurons of one step, into s.
template <typename real, Charge C, Scale S>
inline void smooth_spike_row(int64_t n, const real* x, const real* v_prev, real lam, real v_reset, real theta,
                             Surrogate g, real p, real* s) {
  spike_argument_row<real, C, S>(n, x, v_prev, lam, v_reset, theta, s);
  surrogate_rows<real>(g, n, s, p, s, nullptr, nullptr);
}

// What forward_element calls for F(z) outside smooth mode: never.
template <typename real>
struct NoSmoothSpike {
  real operator()(real z) const { return z; }
};

// forward_element's F(z) in smooth mode: element i of a row made beforehand.
template <typename real>
struct SmoothSpikeOf {
  real value;
  real operator()(real) const { return value; }
};

// ---------------------------------------------------------------------------------------------
// The passes: a block of neurons through U consecutive steps
// ---------------------------------------------------------------------------------------------

// forward over n neurons and U steps: v in v[t-1], out v[t+U-1]; o gets the outputs of steps
// t..t+U-1, x and o rows `stride` apart. A single-step pass (U = 1) also writes the membrane h
// (to a scratch row when the caller does not want it); unrolled passes run only without it.
// theta, p: the U steps' thresholds and surrogate parameters; g the surrogate (smooth mode
// only: smooth passes run one step, n <= kForwardBlock).
template <int U, typename real, Charge C, Reset R, Scale S, bool Smooth>
SPIKEGRAD_PASS void forward_steps(int64_t n, int64_t stride, const real* x, real* v, real* o, real* h, real lam,
                                  real v_reset, const real* theta, [[maybe_unused]] const real* p,
                                  [[maybe_unused]] Surrogate g) {
  real theta_u[U];
  for (int u = 0; u < U; ++u) theta_u[u] = theta[u];
  if constexpr (Smooth) {
    static_assert(U == 1, "smooth passes run one step");
    real s[kForwardBlock];
    smooth_spike_row<real, C, S>(n, x, v, lam, v_reset, theta_u[0], g, p[0], s);
    SPIKEGRAD_IVDEP
    for (int64_t i = 0; i < n; ++i) {
      const ForwardElement<real> e =
          forward_element<real, C, R, S, true>(x[i], v[i], lam, v_reset, theta_u[0], SmoothSpikeOf<real>{s[i]});
      o[i] = e.output;
      h[i] = e.membrane;
      v[i] = e.v;
    }
  } else {
    SPIKEGRAD_IVDEP
    for (int64_t i = 0; i < n; ++i) {
      real membrane = v[i];
      SPIKEGRAD_UNROLL_STEPS
      for (int u = 0; u < U; ++u) {
        const ForwardElement<real> e = forward_element<real, C, R, S, false>(x[u * stride + i], membrane, lam,
                                                                             v_reset, theta_u[u], NoSmoothSpike<real>{});
        o[u * stride + i] = e.output;
        if constexpr (U == 1) h[i] = e.membrane;
        membrane = e.v;
      }
      v[i] = membrane;
    }
  }
}

// The backward's forward again: as forward_steps, keeping v[t-1], v[t], ... (rows v_prev_stride
// apart) instead of the outputs, and each step's z (rows z_stride apart; a stride of 0 for a
// scratch row when the caller keeps none), which the reverse pass evaluates the surrogate at
// (n <= kNeuronBlock).
template <int U, typename real, Charge C, Reset R, Scale S, bool Smooth>
SPIKEGRAD_PASS void recompute_steps(int64_t n, int64_t stride, const real* x, real* v, real* v_prev,
                                    int64_t v_prev_stride, real* z, int64_t z_stride, real lam, real v_reset,
                                    const real* theta, [[maybe_unused]] const real* p,
                                    [[maybe_unused]] Surrogate g) {
  real theta_u[U];
  for (int u = 0; u < U; ++u) theta_u[u] = theta[u];
  if constexpr (Smooth) {
    static_assert(U == 1, "smooth passes run one step");
    // only a reset makes v from s: without one, v = h and F(z) (an atan, say) is not made here
    constexpr bool kResetReadsSpike = R != Reset::None;
    real s[kNeuronBlock];
    spike_argument_row<real, C, S>(n, x, v, lam, v_reset, theta_u[0], z);
    if constexpr (kResetReadsSpike) surrogate_rows<real>(g, n, z, p[0], s, nullptr, nullptr);
    SPIKEGRAD_IVDEP
    for (int64_t i = 0; i < n; ++i) {
      v_prev[i] = v[i];
      const real spike = kResetReadsSpike ? s[i] : static_cast<real>(0);
      v[i] = forward_element<real, C, R, S, true>(x[i], v[i], lam, v_reset, theta_u[0], SmoothSpikeOf<real>{spike}).v;
    }
  } else {
    SPIKEGRAD_IVDEP
    for (int64_t i = 0; i < n; ++i) {
      real membrane = v[i];
      SPIKEGRAD_UNROLL_STEPS
      for (int u = 0; u < U; ++u) {
        v_prev[u * v_prev_stride + i] = membrane;
        const ForwardElement<real> e = forward_element<real, C, R, S, false>(x[u * stride + i], membrane, lam,
                                                                             v_reset, theta_u[u], NoSmoothSpike<real>{});
        z[u * z_stride + i] = spike_argument<S>(e.membrane, theta_u[u]);  // forward_element's own z
        membrane = e.v;
      }
      v[i] = membrane;
    }
  }
}

// One row of a [steps, n] array per step of a reverse pass: the row of step t - u.
template <typename real>
struct StepRows {
  real* latest;    // the row of the pass's latest step t
  int64_t stride;  // distance to the previous step's row (0: one row for all)
  real& operator()(int u, int64_t i) const { return latest[i - u * stride]; }
  real* row(int u) const { return latest - u * stride; }
};

// Whether backward_element reads the spike s: through the hard reset's dv/dh = 1 - s, the soft
// reset's dv/dtheta and TrSG's do/dtheta (docs/spec.md §8). In smooth mode s = F(z) costs a
// transcendental per element for some surrogates (atan), so a pass without these makes no F(z).
template <Reset R, Scale S>
inline constexpr bool kBackwardReadsSpike = R != Reset::None || S == Scale::ThresholdRobust;

// backward_element's surrogate values: element i of rows made beforehand (the primitive's row
// only when the backward reads the smooth spike, the parameter derivative's only with
// parameter gradients; 0 in their place otherwise, never read).
template <typename real, bool Primitive, bool ParamGrads>
struct SurrogateRowsAt {
  const real* primitive;
  const real* derivative;
  const real* param_derivative;
  int64_t i;
  SurrogateValues<real> operator()(real) const {
    return {Primitive ? primitive[i] : static_cast<real>(0), derivative[i],
            ParamGrads ? param_derivative[i] : static_cast<real>(0)};
  }
};

// Reverse pass over n <= kNeuronBlock neurons and U steps t, t-1, ..., t-U+1 (u = 0 is step t).
// g_v: in dL/dv[t], out dL/dv[t-U]. g_x may be the very rows v_prev is read from (long
// windows park v[t-1] in dL/dx[t]'s row): each neuron reads its v[t-1] before it writes there.
// With ParamGrads (single-step passes only) it also gives c_theta/c_p/c_lam[i], the per-neuron
// contributions to dL/dtheta[t], dL/dp[t], dL/dlam; passes without skip the stores.
// First the surrogate's rows of the U steps (f'(z), dF/dp and in smooth mode F(z), in local
// arrays) at the z the recompute pass kept (z_rows; latest null: made here from x and v_prev),
// then the one loop over the neurons that streams the gradients.
template <int U, typename real, Charge C, Reset R, Scale S, bool Smooth, bool Detach, bool ParamGrads>
SPIKEGRAD_PASS void backward_steps(int64_t n, StepRows<const real> x, StepRows<const real> v_prev,
                                   StepRows<const real> z_rows, StepRows<const real> g_out,
                                   StepRows<const real> g_mem, StepRows<real> g_x, real* g_v, real* c_theta,
                                   real* c_p, real* c_lam, real lam, real v_reset, const real* theta, const real* p,
                                   Surrogate g) {
  static_assert(!ParamGrads || U == 1, "passes that sum parameter gradients run one step");
  static_assert(!Smooth || U == 1, "smooth passes run one step");
  constexpr bool kPrimitive = Smooth && kBackwardReadsSpike<R, S>;
  real theta_u[U];
  for (int u = 0; u < U; ++u) theta_u[u] = theta[-u];  // theta[-u], p[-u]: the steps t - u
  real derivative[U][kNeuronBlock];
  real param_derivative[kNeuronBlock];  // ParamGrads only
  real primitive[kNeuronBlock];         // kPrimitive only
  for (int u = 0; u < U; ++u) {
    real z_made[kNeuronBlock];
    const real* z = z_rows.latest != nullptr ? z_rows.row(u) : z_made;
    if (z_rows.latest == nullptr) {
      spike_argument_row<real, C, S>(n, x.row(u), v_prev.row(u), lam, v_reset, theta_u[u], z_made);
    }
    surrogate_rows<real>(g, n, z, p[-u], kPrimitive ? primitive : nullptr, derivative[u],
                         ParamGrads ? param_derivative : nullptr);
  }
  SPIKEGRAD_IVDEP
  for (int64_t i = 0; i < n; ++i) {
    real grad_v = g_v[i];
    SPIKEGRAD_UNROLL_STEPS
    for (int u = 0; u < U; ++u) {
      const BackwardElement<real> e = backward_element<real, C, R, S, Smooth, Detach>(
          x(u, i), v_prev(u, i), g_out(u, i), g_mem(u, i), grad_v, lam, v_reset, theta_u[u],
          SurrogateRowsAt<real, kPrimitive, ParamGrads>{primitive, derivative[u], param_derivative, i});
      g_x(u, i) = e.grad_x;
      grad_v = e.grad_v_prev;
      if constexpr (ParamGrads) {
        c_theta[i] = e.grad_threshold;
        c_p[i] = e.grad_sg_param;
        c_lam[i] = e.grad_decay;
      }
    }
    g_v[i] = grad_v;
  }
}

// ---------------------------------------------------------------------------------------------
// Kernels: one compiled variant per (charge, reset, scale, smooth), the surrogate a run-time value
// ---------------------------------------------------------------------------------------------

// v[-1] of neurons [n0, n0 + n): v_init, or zeros when the caller passed none.
template <typename real>
inline void load_initial_membrane(const real* v_init, int64_t n0, int64_t n, real* v) {
  if (v_init != nullptr) {
    std::copy(v_init + n0, v_init + n0 + n, v);
  } else {
    std::fill(v, v + n, static_cast<real>(0));
  }
}

template <typename real, Charge C, Reset R, Scale S, bool Smooth>
void neuron_forward_kernel(const NeuronParams<real>& P, Surrogate g, const real* x, real* output, real* membrane,
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
        forward_steps<1, real, C, R, S, Smooth>(nb, N, x + row, v, output + row, membrane + row, P.decay,
                                                P.v_reset, P.threshold + t, P.sg_param + t, g);
      });
    } else {
      real h_scratch[kForwardBlock];  // where a single-step pass puts h
      for_each_step_group<false, kStepsPerPass<Smooth>>(T, [&](int64_t t, auto steps) {
        const int64_t row = t * N + n0;
        forward_steps<decltype(steps)::value, real, C, R, S, Smooth>(
            nb, N, x + row, v, output + row, h_scratch, P.decay, P.v_reset, P.threshold + t, P.sg_param + t, g);
      });
    }
    std::copy(v, v + nb, v_last + n0);
  });
}

// One reverse pass of U steps from step t, its parameter-gradient sums (when wanted) into ws.
// Detach and ParamGrads select the instantiation of backward_steps, once per pass: a run-time
// branch inside its loop would keep it from vectorizing.
template <int U, typename real, Charge C, Reset R, Scale S, bool Smooth, bool Detach, bool ParamGrads>
inline void reverse_pass(const NeuronParams<real>& P, Surrogate g, int64_t t, int64_t nb, StepRows<const real> x,
                         StepRows<const real> v_prev, StepRows<const real> z_rows, StepRows<const real> g_out, StepRows<const real> g_mem,
                         StepRows<real> g_x, real* g_v, real* c_theta, real* c_p, real* c_lam, double* ws,
                         double& decay_sum) {
  backward_steps<U, real, C, R, S, Smooth, Detach, ParamGrads>(nb, x, v_prev, z_rows, g_out, g_mem, g_x, g_v,
                                                               c_theta, c_p, c_lam, P.decay, P.v_reset,
                                                               P.threshold + t, P.sg_param + t, g);
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
template <typename real, Charge C, Reset R, Scale S, bool Smooth>
void neuron_backward_kernel(const NeuronParams<real>& P, Surrogate g, bool detach_reset, const real* x,
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
    // z of step t, kept by the recompute pass for the surrogate's rows: a local row, or (long
    // windows) none, the reverse pass then making it again from x and v[t-1]
    real z_rows[kLocalScratchRows<real> * kNeuronBlock];
    std::fill(zeros, zeros + nb, static_cast<real>(0));
    // v[t-1] of step t: a local row, or grad_x's row t for long windows
    real* const v_prev_base = local_rows ? v_prev_rows : grad_x + n0;
    const int64_t v_prev_stride = local_rows ? kNeuronBlock : N;
    const int64_t z_stride = local_rows ? kNeuronBlock : 0;  // 0: one scratch row, written over

    // the forward again, keeping v[t-1] (not h: h, z and s are rebuilt from v[t-1] and x[t]
    // with the same formulas, so the same bits)
    load_initial_membrane(P.v_init, n0, nb, v);
    const int64_t next_nb = std::min(kNeuronBlock, N - n0 - nb);  // the next block's size (<= 0: none)
    for_each_step_group<false, kStepsPerPass<Smooth>>(T, [&](int64_t t, auto steps) {
      constexpr int U = decltype(steps)::value;
      recompute_steps<U, real, C, R, S, Smooth>(nb, N, x + t * N + n0, v, v_prev_base + t * v_prev_stride,
                                                v_prev_stride, z_rows + t * z_stride, z_stride, P.decay, P.v_reset,
                                                P.threshold + t, P.sg_param + t, g);
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
      reverse_pass<decltype(steps)::value, real, C, R, S, Smooth, decltype(detach_c)::value,
                   decltype(param_grads_c)::value>(P, g, t, nb, {x + row, N},
                                                   {v_prev_base + t * v_prev_stride, v_prev_stride},
                                                   local_rows ? StepRows<const real>{z_rows + t * kNeuronBlock,
                                                                                     kNeuronBlock}
                                                              : StepRows<const real>{nullptr, 0},
                                                   g_out, g_mem,
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

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Launchers. Their CUDA siblings (spikegrad/cuda.hpp: neuron_forward_cuda, neuron_backward_cuda)
// take the same arguments in the same order, device pointers instead of host pointers and a
// stream instead of a thread count.
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
  dispatch_neuron_but_surrogate(options, [&](auto charge_c, auto reset_c, auto scale_c, auto smooth_c) {
    detail::neuron_forward_kernel<real, decltype(charge_c)::value, decltype(reset_c)::value,
                                  decltype(scale_c)::value, decltype(smooth_c)::value>(
        params, options.surrogate, x, output, membrane, v_last, num_threads);
  });
}

// grad_output, grad_membrane: [T, N] or nullptr (zero). grad_v_last: [N] or nullptr (zero).
// grad_x: [T, N]. grad_v_init: [N].
// grad_decay: 1 double; grad_threshold, grad_sg_param: [T] doubles; workspace:
// neuron_backward_workspace_bytes_cpu<real>(T, N) bytes, 8-byte aligned (as many doubles as
// neuron_backward_workspace_size(T, N)). Pass nullptr for the three gradients (and the
// workspace) when no parameter gradient is wanted: the kernel then skips their sums (fixed
// parameters, the common case, cost nothing). Given one of the three, give all three.
template <typename real>
void neuron_backward_cpu(const NeuronOptions& options, const NeuronParams<real>& params, const same_t<real>* x,
                         const same_t<real>* grad_output, const same_t<real>* grad_membrane,
                         const same_t<real>* grad_v_last, same_t<real>* grad_x, same_t<real>* grad_v_init,
                         double* grad_decay, double* grad_threshold, double* grad_sg_param, void* workspace,
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
  auto* const block_sums_ws = param_grads ? static_cast<double*>(workspace) : nullptr;
  dispatch_neuron_but_surrogate(options, [&](auto charge_c, auto reset_c, auto scale_c, auto smooth_c) {
    detail::neuron_backward_kernel<real, decltype(charge_c)::value, decltype(reset_c)::value,
                                   decltype(scale_c)::value, decltype(smooth_c)::value>(
        params, options.surrogate, options.detach_reset, x, grad_output, grad_membrane, grad_v_last, grad_x,
        grad_v_init, block_sums_ws, num_threads);
  });
  if (!param_grads) return;
  // the per-block partial sums, added in block order
  const int64_t stride = 2 * T + 1;
  for (int64_t b = 0; b < neuron_num_blocks(N); ++b) {
    const double* ws = block_sums_ws + b * stride;
    *grad_decay += ws[0];
    for (int64_t t = 0; t < T; ++t) {
      grad_threshold[t] += ws[1 + t];
      grad_sg_param[t] += ws[1 + T + t];
    }
  }
}

// A program that compiles the kernels in their own translation units (the Python module and
// this repository's C++ tests do, to build in parallel) defines SPIKEGRAD_NEURON_CPU_EXTERN
// before including this header, and instantiates each launcher once per state dtype:
// `template SPIKEGRAD_NEURON_FORWARD_CPU(float);` and the same with BACKWARD and with double.
// spikegrad_instance_sources() of cmake/SpikegradInstances.cmake writes those translation units.
#define SPIKEGRAD_NEURON_FORWARD_CPU(real)                                                                  \
  void neuron_forward_cpu<real>(const NeuronOptions&, const NeuronParams<real>&, const real*, real*, real*, \
                                real*, int)
#define SPIKEGRAD_NEURON_BACKWARD_CPU(real)                                                                   \
  void neuron_backward_cpu<real>(const NeuronOptions&, const NeuronParams<real>&, const real*, const real*,   \
                                 const real*, const real*, real*, real*, double*, double*, double*, void*, int)

#ifdef SPIKEGRAD_NEURON_CPU_EXTERN
extern template SPIKEGRAD_NEURON_FORWARD_CPU(float);
extern template SPIKEGRAD_NEURON_FORWARD_CPU(double);
extern template SPIKEGRAD_NEURON_BACKWARD_CPU(float);
extern template SPIKEGRAD_NEURON_BACKWARD_CPU(double);
#endif

}  // namespace spikegrad
