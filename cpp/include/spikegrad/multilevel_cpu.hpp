// spikegrad/multilevel_cpu.hpp — the multi-level circulate-firing (CF) neuron of docs/spec.md §6 (the CF paper)
// and its BPTT backward on the CPU: fused over T, OpenMP over fixed-size blocks of neurons.
// The C++ twin of pyref/multilevel.py. Test: tests/test_multilevel.py compares it with spikegrad.ref.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "formulas.hpp"
#include "detail/parallel.hpp"
#include "options.hpp"

namespace spikegrad {

// The level surrogate (docs/spec.md §6): Eq. 14's rectangle union ("span") or the TSG triangles ("tsg").
enum class LevelSurrogate { Span, Tsg };

inline LevelSurrogate parse_level_surrogate(std::string_view s) {
  if (s == "span") return LevelSurrogate::Span;
  if (s == "tsg") return LevelSurrogate::Tsg;
  throw std::invalid_argument("surrogate must be one of 'span', 'tsg'; got '" + std::string(s) + "'");
}

struct MultilevelOptions {
  LevelSurrogate surrogate = LevelSurrogate::Tsg;
  bool smooth = false;        // counts are the primitives of the level surrogates (pyref/multilevel.py)
  bool detach_reset = false;  // backward only: the counts inside the reset are constants
};

inline MultilevelOptions parse_multilevel_options(std::string_view surrogate, bool smooth, bool detach_reset) {
  MultilevelOptions options;
  options.surrogate = parse_level_surrogate(surrogate);
  options.smooth = smooth;
  options.detach_reset = detach_reset;
  return options;
}

// T = timesteps, N = neurons; [T, N] arrays are time-major, element (t, n) at t * N + n.
template <typename real>
struct MultilevelParams {
  int64_t T = 0, N = 0;
  real decay = 0;               // lam (docs/spec.md §1, `mul` charge)
  real theta_p = 1, theta_n = 1;  // level magnitudes, > 0
  int k_p = 2, k_n = 2;         // numbers of positive and negative levels, >= 1
  const real* a = nullptr;      // a[t], [T]: the surrogate height (span) or TSG parameter
  const real* v_init = nullptr; // v[-1], [N]
};

// Per block: [decay, a[0..T)] partial sums.
inline std::size_t multilevel_backward_workspace_size(int64_t T, int64_t N) {
  if (T <= 0 || N <= 0) return 0;
  return static_cast<std::size_t>(neuron_num_blocks(N)) * static_cast<std::size_t>(T + 1);
}

// The checks of pyref/multilevel.py that read no parameter array (all a CUDA launcher can make
// without a copy from the device; its kernels check a[t]), with the Python argument names.
template <typename real>
void validate_multilevel_shape(const MultilevelParams<real>& P) {
  if (P.T < 1) throw std::invalid_argument("x must have a time axis with T >= 1, got T = " + std::to_string(P.T));
  if (P.N < 0) throw std::invalid_argument("x must have N >= 0 neurons, got N = " + std::to_string(P.N));
  if (P.a == nullptr) throw std::invalid_argument("a must not be null");
  if (P.N > 0 && P.v_init == nullptr) throw std::invalid_argument("v_init must not be null");
  if (std::isnan(P.decay)) throw std::invalid_argument("decay is NaN");
  if (P.k_p < 1) throw std::invalid_argument("k_p must be >= 1, got " + std::to_string(P.k_p));
  if (P.k_n < 1) throw std::invalid_argument("k_n must be >= 1, got " + std::to_string(P.k_n));
  if (!(std::isfinite(P.theta_p) && P.theta_p > 0)) {
    throw std::invalid_argument("theta_p must be a finite magnitude > 0, got " +
                                detail::number_string(static_cast<double>(P.theta_p)));
  }
  if (!(std::isfinite(P.theta_n) && P.theta_n > 0)) {
    throw std::invalid_argument("theta_n must be a finite magnitude > 0, got " +
                                detail::number_string(static_cast<double>(P.theta_n)));
  }
}

// The checks of pyref/multilevel.py, with the Python argument names: validate_multilevel_shape,
// then the values of a[t].
template <typename real>
void validate_multilevel_params(const MultilevelParams<real>& P) {
  validate_multilevel_shape(P);
  for (int64_t t = 0; t < P.T; ++t) {
    if (!(std::isfinite(P.a[t]) && P.a[t] > 0)) {
      throw std::invalid_argument("a must be finite and > 0, got " + detail::number_string(static_cast<double>(P.a[t])) +
                                  " at t = " + std::to_string(t));
    }
  }
}

namespace detail {

// Eq. 14's windows in the working precision, as pyref.multilevel.span_bounds.
template <typename real>
struct SpanBounds {
  real lower_p, upper_p, lower_n, upper_n;
};

template <typename real>
inline SpanBounds<real> span_bounds(real theta_p, real theta_n, int k_p, int k_n) {
  const real half = static_cast<real>(0.5);
  return {theta_p * half, (static_cast<real>(k_p) + half) * theta_p, -((static_cast<real>(k_n) + half) * theta_n),
          -(theta_n * half)};
}

// The per-level sums run level by level over the whole block (k outer, neurons inner): each
// neuron still adds its levels in the order k = 1, 2, ... of pyref/multilevel.py, so the bits
// are the reference's, and the inner loops over neurons vectorize.

// n_p, n_n: out the counts of Eqs. 12-13 for h[0..n), or in smooth mode the primitives of the
// level surrogates (pyref.multilevel.level_counts).
template <typename real, LevelSurrogate G, bool Smooth>
inline void level_counts(int64_t n, const real* SPIKEGRAD_RESTRICT h, real* SPIKEGRAD_RESTRICT n_p,
                         real* SPIKEGRAD_RESTRICT n_n, const MultilevelParams<real>& P, real a,
                         [[maybe_unused]] const SpanBounds<real>& span) {
  const real one = static_cast<real>(1);
  if constexpr (Smooth && G == LevelSurrogate::Span) {
    for (int64_t i = 0; i < n; ++i) {
      n_p[i] = a * span_ramp(h[i], span.lower_p, span.upper_p);
      n_n[i] = a * ((span.upper_n - span.lower_n) - span_ramp(h[i], span.lower_n, span.upper_n));
    }
    return;
  }
  std::fill(n_p, n_p + n, static_cast<real>(0));
  std::fill(n_n, n_n + n, static_cast<real>(0));
  for (int k = 1; k <= P.k_p; ++k) {
    const real lvl = level(k, P.theta_p);
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (Smooth) {
        n_p[i] = n_p[i] + tsg_primitive(h[i] - lvl, a);
      } else {
        n_p[i] = n_p[i] + above_level(h[i], lvl);  // Eq. 12
      }
    }
  }
  for (int k = 1; k <= P.k_n; ++k) {
    const real lvl = level(k, P.theta_n);
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (Smooth) {
        n_n[i] = n_n[i] + (one - tsg_primitive(h[i] + lvl, a));
      } else {
        n_n[i] = n_n[i] + below_level(h[i], -lvl);  // Eq. 13
      }
    }
  }
}

// sp, sn: out the summed positive- and negative-level surrogates (Eq. 14 or Eqs. 15-16) at
// h[0..n); a_p, a_n: the summed dF_a/da of each sign (tsg; zero for span).
template <typename real, LevelSurrogate G>
inline void level_surrogates(int64_t n, const real* SPIKEGRAD_RESTRICT h, real* SPIKEGRAD_RESTRICT sp,
                             real* SPIKEGRAD_RESTRICT sn, real* SPIKEGRAD_RESTRICT a_p,
                             real* SPIKEGRAD_RESTRICT a_n, const MultilevelParams<real>& P, real a,
                             const SpanBounds<real>& span) {
  const real zero = static_cast<real>(0);
  if constexpr (G == LevelSurrogate::Span) {
    for (int64_t i = 0; i < n; ++i) {
      sp[i] = span_window(h[i], span.lower_p, span.upper_p, a);
      sn[i] = span_window(h[i], span.lower_n, span.upper_n, a);
      a_p[i] = zero;
      a_n[i] = zero;
    }
  } else {
    std::fill(sp, sp + n, zero);
    std::fill(sn, sn + n, zero);
    std::fill(a_p, a_p + n, zero);
    std::fill(a_n, a_n + n, zero);
    for (int k = 1; k <= P.k_p; ++k) {
      const real lvl = level(k, P.theta_p);
      for (int64_t i = 0; i < n; ++i) {
        const real d = h[i] - lvl;
        sp[i] = sp[i] + tsg_derivative(d, a);  // Eq. 15
        a_p[i] = a_p[i] + tsg_a_derivative(d, a);
      }
    }
    for (int k = 1; k <= P.k_n; ++k) {
      const real lvl = level(k, P.theta_n);
      for (int64_t i = 0; i < n; ++i) {
        const real d = h[i] + lvl;
        sn[i] = sn[i] + tsg_derivative(d, a);  // Eq. 16
        a_n[i] = a_n[i] + tsg_a_derivative(d, a);
      }
    }
  }
}

// Eq. 10: v = h - n_p theta_P + n_n theta_N, in pyref/multilevel.py's order.
template <typename real>
inline real multilevel_reset(real h, real n_p, real n_n, const MultilevelParams<real>& P) {
  return (h - n_p * P.theta_p) + n_n * P.theta_n;
}

// What one neuron's reverse step gives (pyref.multilevel.backward's expressions): dL/dh (which
// is dL/dx, dh/dx = 1), and the contributions to dL/da[t], dL/dlam, and dL/dv[t-1].
template <typename real>
struct MultilevelGradients {
  real g_h, c_a, c_lam, g_v;
};

// sp, sn: the summed level surrogates of each sign at h; a_p, a_n: their summed dF_a/da.
template <typename real, bool Detach>
inline MultilevelGradients<real> multilevel_gradients(real v_prev, real g_out, real g_mem, real gv, real sp, real sn,
                                                      real a_p, real a_n, const MultilevelParams<real>& P) {
  const real one = static_cast<real>(1);
  const real do_dh = sp + sn;
  real dv_dh = one;
  real c_a;
  if constexpr (Detach) {
    c_a = g_out * (a_p + a_n);
  } else {
    dv_dh = (one - P.theta_p * sp) - P.theta_n * sn;
    c_a = (g_out - P.theta_p * gv) * a_p + (g_out - P.theta_n * gv) * a_n;
  }
  const real g_h = (g_mem + gv * dv_dh) + g_out * do_dh;
  return {g_h, c_a, g_h * v_prev /* dh/dlam = v_prev */, g_h * P.decay /* dh/dv_prev = lam */};
}

// ---------------------------------------------------------------------------------------------
// The seed's K = 2 levels per sign, known at compile time: one loop over the block per step,
// the levels unrolled inside it, every per-level sum in registers. The runtime-K loops above
// keep each sum in a block array and pass over it once per level (and the fills): for K = 2
// the recomputed forward and the reverse step made about 15 passes over L1 arrays per step.
// Each neuron adds the same terms in the same order k = 1, 2, ... from 0, so the bits are the
// same as theirs and the reference's.
// ---------------------------------------------------------------------------------------------

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

// The levels' values k theta in the working precision (formulas.hpp level()), k = 1..K.
template <typename real, int K>
struct FixedLevels {
  real p[K], n[K];
};

template <typename real, int K>
inline FixedLevels<real, K> fixed_levels(const MultilevelParams<real>& P) {
  FixedLevels<real, K> L{};
  for (int k = 1; k <= K; ++k) {
    L.p[k - 1] = level(k, P.theta_p);
    L.n[k - 1] = level(k, P.theta_n);
  }
  return L;
}

// One neuron's counts of Eqs. 12-13 (or in smooth mode the primitives), as level_counts.
template <typename real, LevelSurrogate G, bool Smooth, int K>
inline void counts_at(real h, const FixedLevels<real, K>& L, real a, [[maybe_unused]] const SpanBounds<real>& span,
                      real& n_p, real& n_n) {
  const real one = static_cast<real>(1);
  if constexpr (Smooth && G == LevelSurrogate::Span) {
    n_p = a * span_ramp(h, span.lower_p, span.upper_p);
    n_n = a * ((span.upper_n - span.lower_n) - span_ramp(h, span.lower_n, span.upper_n));
    return;
  }
  real count_p = static_cast<real>(0), count_n = static_cast<real>(0);
  for (int k = 0; k < K; ++k) {
    if constexpr (Smooth) {
      count_p = count_p + tsg_primitive(h - L.p[k], a);
    } else {
      count_p = count_p + above_level(h, L.p[k]);  // Eq. 12
    }
  }
  for (int k = 0; k < K; ++k) {
    if constexpr (Smooth) {
      count_n = count_n + (one - tsg_primitive(h + L.n[k], a));
    } else {
      count_n = count_n + below_level(h, -L.n[k]);  // Eq. 13
    }
  }
  n_p = count_p;
  n_n = count_n;
}

// One neuron's level surrogates and dF_a/da sums, as level_surrogates.
template <typename real, LevelSurrogate G, int K>
inline void surrogates_at(real h, const FixedLevels<real, K>& L, real a, const SpanBounds<real>& span, real& sp,
                          real& sn, real& a_p, real& a_n) {
  const real zero = static_cast<real>(0);
  if constexpr (G == LevelSurrogate::Span) {
    sp = span_window(h, span.lower_p, span.upper_p, a);
    sn = span_window(h, span.lower_n, span.upper_n, a);
    a_p = zero;
    a_n = zero;
  } else {
    sp = zero, sn = zero, a_p = zero, a_n = zero;
    for (int k = 0; k < K; ++k) {
      const real d = h - L.p[k];
      sp = sp + tsg_derivative(d, a);  // Eq. 15
      a_p = a_p + tsg_a_derivative(d, a);
    }
    for (int k = 0; k < K; ++k) {
      const real d = h + L.n[k];
      sn = sn + tsg_derivative(d, a);  // Eq. 16
      a_n = a_n + tsg_a_derivative(d, a);
    }
  }
}

// Forward step with fixed K. v: in v[t-1], out v[t]; o: o[t]; h_out: h[t] (or a local sink).
template <typename real, LevelSurrogate G, bool Smooth, int K>
SPIKEGRAD_WIDE_VECTORS inline void multilevel_step_fixed(int64_t n, const real* SPIKEGRAD_RESTRICT x, real* SPIKEGRAD_RESTRICT v,
                                  real* SPIKEGRAD_RESTRICT o, real* SPIKEGRAD_RESTRICT h_out,
                                  const MultilevelParams<real>& P, const FixedLevels<real, K>& L, real a,
                                  const SpanBounds<real>& span) {
  const real lam = P.decay;
  for (int64_t i = 0; i < n; ++i) {
    const real h = charge<Charge::Mul>(v[i], x[i], lam, static_cast<real>(0));  // docs/spec.md §1
    real n_p, n_n;
    counts_at<real, G, Smooth, K>(h, L, a, span, n_p, n_n);                      // Eqs. 12-13
    v[i] = multilevel_reset(h, n_p, n_n, P);                                     // Eq. 10
    o[i] = n_p - n_n;                                                            // Eq. 11
    h_out[i] = h;
  }
}

// The backward's recomputation with fixed K: keeps v[t-1] in v_prev_out.
template <typename real, LevelSurrogate G, bool Smooth, int K>
SPIKEGRAD_WIDE_VECTORS inline void multilevel_recompute_fixed(int64_t n, const real* SPIKEGRAD_RESTRICT x, real* SPIKEGRAD_RESTRICT v,
                                       real* SPIKEGRAD_RESTRICT v_prev_out, const MultilevelParams<real>& P,
                                       const FixedLevels<real, K>& L, real a, const SpanBounds<real>& span) {
  const real lam = P.decay;
  for (int64_t i = 0; i < n; ++i) {
    v_prev_out[i] = v[i];
    const real h = charge<Charge::Mul>(v[i], x[i], lam, static_cast<real>(0));
    real n_p, n_n;
    counts_at<real, G, Smooth, K>(h, L, a, span, n_p, n_n);
    v[i] = multilevel_reset(h, n_p, n_n, P);
  }
}

// Reverse step with fixed K; the arguments as multilevel_backward_step's.
template <typename real, LevelSurrogate G, bool Detach, int K>
SPIKEGRAD_WIDE_VECTORS inline void multilevel_backward_step_fixed(int64_t n, const real* SPIKEGRAD_RESTRICT x,
                                           real* SPIKEGRAD_RESTRICT scratch, const real* SPIKEGRAD_RESTRICT g_out,
                                           const real* SPIKEGRAD_RESTRICT g_mem, real* SPIKEGRAD_RESTRICT g_v,
                                           real* SPIKEGRAD_RESTRICT c_a, real* SPIKEGRAD_RESTRICT c_lam,
                                           const MultilevelParams<real>& P, const FixedLevels<real, K>& L, real a,
                                           const SpanBounds<real>& span) {
  const real lam = P.decay;
  for (int64_t i = 0; i < n; ++i) {
    const real v_prev = scratch[i];
    const real h = charge<Charge::Mul>(v_prev, x[i], lam, static_cast<real>(0));
    real sp, sn, a_p, a_n;
    surrogates_at<real, G, K>(h, L, a, span, sp, sn, a_p, a_n);
    const MultilevelGradients<real> g =
        multilevel_gradients<real, Detach>(v_prev, g_out[i], g_mem[i], g_v[i], sp, sn, a_p, a_n, P);
    scratch[i] = g.g_h;
    c_a[i] = g.c_a;
    c_lam[i] = g.c_lam;
    g_v[i] = g.g_v;
  }
}

// One forward step of a block: charge -> counts -> output -> reset (pyref/multilevel.py's order).
// v: in v[t-1], out v[t]. o: o[t] or nullptr; h_out: h[t] or nullptr; v_prev_out: v[t-1] or nullptr.
template <typename real, LevelSurrogate G, bool Smooth>
inline void multilevel_step(int64_t n, const real* SPIKEGRAD_RESTRICT x, real* SPIKEGRAD_RESTRICT v,
                            real* SPIKEGRAD_RESTRICT o, real* SPIKEGRAD_RESTRICT h_out,
                            real* SPIKEGRAD_RESTRICT v_prev_out, const MultilevelParams<real>& P, real a,
                            const SpanBounds<real>& span) {
  real h[kNeuronBlock], n_p[kNeuronBlock], n_n[kNeuronBlock];
  if (v_prev_out != nullptr) std::copy(v, v + n, v_prev_out);
  for (int64_t i = 0; i < n; ++i) h[i] = charge<Charge::Mul>(v[i], x[i], P.decay, static_cast<real>(0));  // docs/spec.md §1
  level_counts<real, G, Smooth>(n, h, n_p, n_n, P, a, span);                      // Eqs. 12-13
  for (int64_t i = 0; i < n; ++i) v[i] = multilevel_reset(h[i], n_p[i], n_n[i], P);  // Eq. 10
  if (o != nullptr) {
    for (int64_t i = 0; i < n; ++i) o[i] = n_p[i] - n_n[i];                          // Eq. 11
  }
  if (h_out != nullptr) std::copy(h, h + n, h_out);
}

// One backward step (docs/spec.md §6 and 8), pyref.multilevel.backward's expressions.
// scratch: in v[t-1], out dL/dx[t]. g_v: in dL/dv[t], out dL/dv[t-1]. c_a, c_lam: per-neuron
// contributions to dL/da[t] and dL/dlam.
template <typename real, LevelSurrogate G, bool Detach>
inline void multilevel_backward_step(int64_t n, const real* SPIKEGRAD_RESTRICT x, real* SPIKEGRAD_RESTRICT scratch,
                                     const real* SPIKEGRAD_RESTRICT g_out, const real* SPIKEGRAD_RESTRICT g_mem,
                                     real* SPIKEGRAD_RESTRICT g_v, real* SPIKEGRAD_RESTRICT c_a,
                                     real* SPIKEGRAD_RESTRICT c_lam, const MultilevelParams<real>& P, real a,
                                     const SpanBounds<real>& span) {
  real h[kNeuronBlock], sp[kNeuronBlock], sn[kNeuronBlock], a_p[kNeuronBlock], a_n[kNeuronBlock];
  for (int64_t i = 0; i < n; ++i) h[i] = charge<Charge::Mul>(scratch[i], x[i], P.decay, static_cast<real>(0));
  level_surrogates<real, G>(n, h, sp, sn, a_p, a_n, P, a, span);
  for (int64_t i = 0; i < n; ++i) {
    const real v_prev = scratch[i];
    const MultilevelGradients<real> g =
        multilevel_gradients<real, Detach>(v_prev, g_out[i], g_mem[i], g_v[i], sp[i], sn[i], a_p[i], a_n[i], P);
    scratch[i] = g.g_h;
    c_a[i] = g.c_a;
    c_lam[i] = g.c_lam;
    g_v[i] = g.g_v;
  }
}

// K: the number of levels of each sign when it is the compile-time K of the fixed path
// (k_p = k_n = K), or 0: the runtime-K loops.
template <typename real, LevelSurrogate G, bool Smooth, int K>
void multilevel_forward_kernel(const MultilevelParams<real>& P, const real* x, real* output, real* membrane,
                               real* v_last, int num_threads) {
  const int64_t T = P.T, N = P.N;
  const SpanBounds<real> span = span_bounds(P.theta_p, P.theta_n, P.k_p, P.k_n);
  const FixedLevels<real, K == 0 ? 1 : K> levels = fixed_levels<real, K == 0 ? 1 : K>(P);
  parallel_for_blocks(neuron_num_blocks(N), num_threads, [&](int64_t b) {
    const int64_t n0 = b * kNeuronBlock;
    const int64_t nb = std::min(kNeuronBlock, N - n0);
    real v[kNeuronBlock];
    real h_sink[kNeuronBlock];  // h[t] of the block when the membrane is not wanted
    std::copy(P.v_init + n0, P.v_init + n0 + nb, v);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = t * N + n0;
      if constexpr (K == 0) {
        multilevel_step<real, G, Smooth>(nb, x + row, v, output + row,
                                         membrane != nullptr ? membrane + row : nullptr, nullptr, P, P.a[t], span);
      } else {
        multilevel_step_fixed<real, G, Smooth, K>(nb, x + row, v, output + row,
                                                  membrane != nullptr ? membrane + row : h_sink, P, levels, P.a[t],
                                                  span);
      }
    }
    std::copy(v, v + nb, v_last + n0);
  });
}

// want_decay, want_a: whether dL/dlam and dL/da[t] are wanted; their float64 block sums (a
// third of the step's work with TSG) are skipped otherwise.
template <typename real, LevelSurrogate G, bool Smooth, int K>
void multilevel_backward_kernel(const MultilevelParams<real>& P, bool detach_reset, const real* x,
                                const real* grad_output, const real* grad_membrane, const real* grad_v_last,
                                real* grad_x, real* grad_v_init, bool want_decay, bool want_a, double* workspace,
                                int num_threads) {
  const int64_t T = P.T, N = P.N;
  const int64_t stride = T + 1;
  const SpanBounds<real> span = span_bounds(P.theta_p, P.theta_n, P.k_p, P.k_n);
  const FixedLevels<real, K == 0 ? 1 : K> levels = fixed_levels<real, K == 0 ? 1 : K>(P);
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
      const int64_t row = t * N + n0;
      if constexpr (K == 0) {
        multilevel_step<real, G, Smooth>(nb, x + row, v, nullptr, nullptr, scratch_row(t), P, P.a[t], span);
      } else {
        multilevel_recompute_fixed<real, G, Smooth, K>(nb, x + row, v, scratch_row(t), P, levels, P.a[t], span);
      }
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
      if constexpr (K == 0) {
        if (detach_reset) {
          multilevel_backward_step<real, G, true>(nb, x + row, scratch, g_out, g_mem, g_v, c_a, c_lam, P, P.a[t],
                                                  span);
        } else {
          multilevel_backward_step<real, G, false>(nb, x + row, scratch, g_out, g_mem, g_v, c_a, c_lam, P, P.a[t],
                                                   span);
        }
      } else if (detach_reset) {
        multilevel_backward_step_fixed<real, G, true, K>(nb, x + row, scratch, g_out, g_mem, g_v, c_a, c_lam, P,
                                                         levels, P.a[t], span);
      } else {
        multilevel_backward_step_fixed<real, G, false, K>(nb, x + row, scratch, g_out, g_mem, g_v, c_a, c_lam, P,
                                                          levels, P.a[t], span);
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
// std::integral_constant<int, 0> (the runtime-K loops).
template <typename real, typename F>
void dispatch_levels(const MultilevelParams<real>& P, F&& f) {
  if (P.k_p == kFixedLevels && P.k_n == kFixedLevels) {
    f(std::integral_constant<int, kFixedLevels>{});
  } else {
    f(std::integral_constant<int, 0>{});
  }
}

template <typename F>
void dispatch_multilevel(const MultilevelOptions& options, F&& f) {
  const auto with_smooth = [&](auto surrogate) {
    dispatch_bool(options.smooth, [&](auto smooth) { f(surrogate, smooth); });
  };
  if (options.surrogate == LevelSurrogate::Span) {
    with_smooth(std::integral_constant<LevelSurrogate, LevelSurrogate::Span>{});
  } else {
    with_smooth(std::integral_constant<LevelSurrogate, LevelSurrogate::Tsg>{});
  }
}

}  // namespace detail

// x, output: [T, N]. membrane: [T, N] (receives h) or nullptr. v_last: [N].
template <typename real>
void multilevel_forward_cpu(const MultilevelOptions& options, const MultilevelParams<real>& params,
                            const same_t<real>* x, same_t<real>* output, same_t<real>* membrane,
                            same_t<real>* v_last, int num_threads = 0) {
  validate_multilevel_params(params);
  if (params.N == 0) return;
  if (x == nullptr) throw std::invalid_argument("x must not be null");
  if (output == nullptr) throw std::invalid_argument("output must not be null");
  if (v_last == nullptr) throw std::invalid_argument("v_last must not be null");
  detail::dispatch_multilevel(options, [&](auto surrogate_c, auto smooth_c) {
    constexpr bool smooth = decltype(smooth_c)::value;
    // outside smooth mode the forward never looks at the surrogate: share one variant
    constexpr LevelSurrogate shape = smooth ? decltype(surrogate_c)::value : LevelSurrogate::Span;
    detail::dispatch_levels(params, [&](auto levels_c) {
      detail::multilevel_forward_kernel<real, shape, smooth, decltype(levels_c)::value>(params, x, output, membrane,
                                                                                        v_last, num_threads);
    });
  });
}

// grad_output, grad_membrane: [T, N] or nullptr (zero). grad_v_last: [N] or nullptr (zero).
// grad_x: [T, N] (for T > 32 in float32, 16 in float64, also the scratch of the recomputed
// forward). grad_v_init: [N]. grad_decay: 1 double, grad_a: [T] doubles, each nullptr when that
// gradient is not wanted (its float64 sums are then skipped). workspace:
// multilevel_backward_workspace_size(T, N) doubles.
template <typename real>
void multilevel_backward_cpu(const MultilevelOptions& options, const MultilevelParams<real>& params,
                             const same_t<real>* x, const same_t<real>* grad_output,
                             const same_t<real>* grad_membrane, const same_t<real>* grad_v_last,
                             same_t<real>* grad_x, same_t<real>* grad_v_init, double* grad_decay, double* grad_a,
                             double* workspace, int num_threads = 0) {
  validate_multilevel_params(params);
  const int64_t T = params.T, N = params.N;
  if (grad_decay != nullptr) *grad_decay = 0;
  if (grad_a != nullptr) std::fill(grad_a, grad_a + T, 0.0);
  if (N == 0) return;
  if (x == nullptr) throw std::invalid_argument("x must not be null");
  if (grad_x == nullptr) throw std::invalid_argument("grad_x must not be null");
  if (grad_v_init == nullptr) throw std::invalid_argument("grad_v_init must not be null");
  if (workspace == nullptr) throw std::invalid_argument("workspace must not be null");
  detail::dispatch_multilevel(options, [&](auto surrogate_c, auto smooth_c) {
    detail::dispatch_levels(params, [&](auto levels_c) {
      detail::multilevel_backward_kernel<real, decltype(surrogate_c)::value, decltype(smooth_c)::value,
                                         decltype(levels_c)::value>(
          params, options.detach_reset, x, grad_output, grad_membrane, grad_v_last, grad_x, grad_v_init,
          grad_decay != nullptr, grad_a != nullptr, workspace, num_threads);
    });
  });
  // the per-block partial sums, added in block order
  for (int64_t b = 0; b < neuron_num_blocks(N); ++b) {
    const double* ws = workspace + b * (T + 1);
    if (grad_decay != nullptr) *grad_decay += ws[0];
    if (grad_a != nullptr) {
      for (int64_t t = 0; t < T; ++t) grad_a[t] += ws[1 + t];
    }
  }
}

}  // namespace spikegrad
