// spikegrad/multilevel_cpu.hpp — the multi-level circulate-firing (CF) neuron of SPEC 6 (seed 002)
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
#include "neuron_cpu.hpp"  // parallel_for_blocks, block_sum, kNeuronBlock, same_t

namespace spikegrad {

// The level surrogate (SPEC 6): Eq. 14's rectangle union ("span") or the TSG triangles ("tsg").
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

// T = timesteps, N = neurons; [T, N] arrays are time-major, element (t, n) at t * N + n.
template <typename real>
struct MultilevelParams {
  int64_t T = 0, N = 0;
  real decay = 0;               // lam (SPEC 1, `mul` charge)
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

// The checks of pyref/multilevel.py, with the Python argument names.
template <typename real>
void validate_multilevel_params(const MultilevelParams<real>& P) {
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

// One forward step of a block: charge -> counts -> output -> reset (pyref/multilevel.py's order).
// v: in v[t-1], out v[t]. o: o[t] or nullptr; h_out: h[t] or nullptr; v_prev_out: v[t-1] or nullptr.
template <typename real, LevelSurrogate G, bool Smooth>
inline void multilevel_step(int64_t n, const real* SPIKEGRAD_RESTRICT x, real* SPIKEGRAD_RESTRICT v,
                            real* SPIKEGRAD_RESTRICT o, real* SPIKEGRAD_RESTRICT h_out,
                            real* SPIKEGRAD_RESTRICT v_prev_out, const MultilevelParams<real>& P, real a,
                            const SpanBounds<real>& span) {
  real h[kNeuronBlock], n_p[kNeuronBlock], n_n[kNeuronBlock];
  if (v_prev_out != nullptr) std::copy(v, v + n, v_prev_out);
  for (int64_t i = 0; i < n; ++i) h[i] = charge<Charge::Mul>(v[i], x[i], P.decay, static_cast<real>(0));  // SPEC 1
  level_counts<real, G, Smooth>(n, h, n_p, n_n, P, a, span);                      // Eqs. 12-13
  for (int64_t i = 0; i < n; ++i) v[i] = (h[i] - n_p[i] * P.theta_p) + n_n[i] * P.theta_n;  // Eq. 10
  if (o != nullptr) {
    for (int64_t i = 0; i < n; ++i) o[i] = n_p[i] - n_n[i];                          // Eq. 11
  }
  if (h_out != nullptr) std::copy(h, h + n, h_out);
}

// One backward step (SPEC 6 and 8), pyref.multilevel.backward's expressions.
// scratch: in v[t-1], out dL/dx[t]. g_v: in dL/dv[t], out dL/dv[t-1]. c_a, c_lam: per-neuron
// contributions to dL/da[t] and dL/dlam.
template <typename real, LevelSurrogate G, bool Detach>
inline void multilevel_backward_step(int64_t n, const real* SPIKEGRAD_RESTRICT x, real* SPIKEGRAD_RESTRICT scratch,
                                     const real* SPIKEGRAD_RESTRICT g_out, const real* SPIKEGRAD_RESTRICT g_mem,
                                     real* SPIKEGRAD_RESTRICT g_v, real* SPIKEGRAD_RESTRICT c_a,
                                     real* SPIKEGRAD_RESTRICT c_lam, const MultilevelParams<real>& P, real a,
                                     const SpanBounds<real>& span) {
  const real one = static_cast<real>(1);
  real h[kNeuronBlock], sp[kNeuronBlock], sn[kNeuronBlock], a_p[kNeuronBlock], a_n[kNeuronBlock];
  for (int64_t i = 0; i < n; ++i) h[i] = charge<Charge::Mul>(scratch[i], x[i], P.decay, static_cast<real>(0));
  level_surrogates<real, G>(n, h, sp, sn, a_p, a_n, P, a, span);
  for (int64_t i = 0; i < n; ++i) {
    const real v_prev = scratch[i];
    const real gv = g_v[i];
    const real do_dh = sp[i] + sn[i];
    real dv_dh = one;
    if constexpr (Detach) {
      c_a[i] = g_out[i] * (a_p[i] + a_n[i]);
    } else {
      dv_dh = (one - P.theta_p * sp[i]) - P.theta_n * sn[i];
      c_a[i] = (g_out[i] - P.theta_p * gv) * a_p[i] + (g_out[i] - P.theta_n * gv) * a_n[i];
    }
    const real g_h = (g_mem[i] + gv * dv_dh) + g_out[i] * do_dh;
    scratch[i] = g_h;         // dh/dx = 1
    c_lam[i] = g_h * v_prev;  // dh/dlam = v_prev
    g_v[i] = g_h * P.decay;   // dh/dv_prev = lam
  }
}

template <typename real, LevelSurrogate G, bool Smooth>
void multilevel_forward_kernel(const MultilevelParams<real>& P, const real* x, real* output, real* membrane,
                               real* v_last, int num_threads) {
  const int64_t T = P.T, N = P.N;
  const SpanBounds<real> span = span_bounds(P.theta_p, P.theta_n, P.k_p, P.k_n);
  parallel_for_blocks(neuron_num_blocks(N), num_threads, [&](int64_t b) {
    const int64_t n0 = b * kNeuronBlock;
    const int64_t nb = std::min(kNeuronBlock, N - n0);
    real v[kNeuronBlock];
    std::copy(P.v_init + n0, P.v_init + n0 + nb, v);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = t * N + n0;
      multilevel_step<real, G, Smooth>(nb, x + row, v, output + row, membrane != nullptr ? membrane + row : nullptr,
                                       nullptr, P, P.a[t], span);
    }
    std::copy(v, v + nb, v_last + n0);
  });
}

template <typename real, LevelSurrogate G, bool Smooth>
void multilevel_backward_kernel(const MultilevelParams<real>& P, bool detach_reset, const real* x,
                                const real* grad_output, const real* grad_membrane, const real* grad_v_last,
                                real* grad_x, real* grad_v_init, double* workspace, int num_threads) {
  const int64_t T = P.T, N = P.N;
  const int64_t stride = T + 1;
  const SpanBounds<real> span = span_bounds(P.theta_p, P.theta_n, P.k_p, P.k_n);
  parallel_for_blocks(neuron_num_blocks(N), num_threads, [&](int64_t b) {
    const int64_t n0 = b * kNeuronBlock;
    const int64_t nb = std::min(kNeuronBlock, N - n0);
    real v[kNeuronBlock], g_v[kNeuronBlock], zeros[kNeuronBlock], c_a[kNeuronBlock], c_lam[kNeuronBlock];
    std::fill(zeros, zeros + nb, static_cast<real>(0));

    // forward again, keeping v[t-1] in grad_x[t]
    std::copy(P.v_init + n0, P.v_init + n0 + nb, v);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = t * N + n0;
      multilevel_step<real, G, Smooth>(nb, x + row, v, nullptr, nullptr, grad_x + row, P, P.a[t], span);
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
      if (detach_reset) {
        multilevel_backward_step<real, G, true>(nb, x + row, grad_x + row, g_out, g_mem, g_v, c_a, c_lam, P, P.a[t],
                                                span);
      } else {
        multilevel_backward_step<real, G, false>(nb, x + row, grad_x + row, g_out, g_mem, g_v, c_a, c_lam, P, P.a[t],
                                                 span);
      }
      ws[1 + t] = block_sum(c_a, nb);
      decay_sum += block_sum(c_lam, nb);
    }
    ws[0] = decay_sum;
    std::copy(g_v, g_v + nb, grad_v_init + n0);
  });
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
    detail::multilevel_forward_kernel<real, shape, smooth>(params, x, output, membrane, v_last, num_threads);
  });
}

// grad_output, grad_membrane: [T, N] or nullptr (zero). grad_v_last: [N] or nullptr (zero).
// grad_x: [T, N], also the scratch of the recomputed forward. grad_v_init: [N].
// grad_decay: 1 double; grad_a: [T] doubles; workspace: multilevel_backward_workspace_size(T, N).
template <typename real>
void multilevel_backward_cpu(const MultilevelOptions& options, const MultilevelParams<real>& params,
                             const same_t<real>* x, const same_t<real>* grad_output,
                             const same_t<real>* grad_membrane, const same_t<real>* grad_v_last,
                             same_t<real>* grad_x, same_t<real>* grad_v_init, double* grad_decay, double* grad_a,
                             double* workspace, int num_threads = 0) {
  validate_multilevel_params(params);
  if (grad_decay == nullptr) throw std::invalid_argument("grad_decay must not be null");
  if (grad_a == nullptr) throw std::invalid_argument("grad_a must not be null");
  const int64_t T = params.T, N = params.N;
  *grad_decay = 0;
  std::fill(grad_a, grad_a + T, 0.0);
  if (N == 0) return;
  if (x == nullptr) throw std::invalid_argument("x must not be null");
  if (grad_x == nullptr) throw std::invalid_argument("grad_x must not be null");
  if (grad_v_init == nullptr) throw std::invalid_argument("grad_v_init must not be null");
  if (workspace == nullptr) throw std::invalid_argument("workspace must not be null");
  detail::dispatch_multilevel(options, [&](auto surrogate_c, auto smooth_c) {
    detail::multilevel_backward_kernel<real, decltype(surrogate_c)::value, decltype(smooth_c)::value>(
        params, options.detach_reset, x, grad_output, grad_membrane, grad_v_last, grad_x, grad_v_init, workspace,
        num_threads);
  });
  // the per-block partial sums, added in block order
  for (int64_t b = 0; b < neuron_num_blocks(N); ++b) {
    const double* ws = workspace + b * (T + 1);
    *grad_decay += ws[0];
    for (int64_t t = 0; t < T; ++t) grad_a[t] += ws[1 + t];
  }
}

}  // namespace spikegrad
