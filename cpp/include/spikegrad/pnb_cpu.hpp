// spikegrad/pnb_cpu.hpp — the partial sums of the PNB loss (docs/spec.md §6, the CF paper's Eqs. 18-21) on the
// CPU: per (level, sign), S_w = sum w and S_hw = sum h w over one layer's membranes, in float64 and
// in the fixed order pyref/pnb.py mirrors. Test: tests/test_multilevel.py.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "formulas.hpp"
#include "detail/parallel.hpp"
#include "options.hpp"

namespace spikegrad {

// Elements are cut into blocks of kPnbBlock (a multiple of 8): within a block, block_sum's 8 lanes;
// the blocks are added in order. A constant, so the bits do not depend on the thread count.
inline constexpr int64_t kPnbBlock = 4096;

inline int64_t pnb_num_blocks(int64_t count) { return count <= 0 ? 0 : (count + kPnbBlock - 1) / kPnbBlock; }

// Per block: [K][2 signs][S_w, S_hw] doubles.
inline std::size_t pnb_workspace_size(int64_t count, int K) {
  return static_cast<std::size_t>(pnb_num_blocks(count)) * static_cast<std::size_t>(4 * (K < 0 ? 0 : K));
}

namespace detail {

// One block's contributions of level k: w = exp(-|level - h|) in float64 inside the region, else 0.
// Eq. 18: (k-1) theta_P < h <= k theta_P, level k theta_P; Eq. 19: -k theta_N <= h < -(k-1) theta_N,
// level -k theta_N. The bounds are computed in the working precision, like the neuron's levels.
template <typename real>
inline void pnb_block_sums(int64_t n, const real* SPIKEGRAD_RESTRICT h, real theta_p, real theta_n, int k,
                           double* SPIKEGRAD_RESTRICT c_w, double* SPIKEGRAD_RESTRICT c_hw, double* out /*[2][2]*/) {
  const real top_p = level(k, theta_p), bottom_p = level(k - 1, theta_p);
  const real top_n = -level(k, theta_n), bottom_n = -level(k - 1, theta_n);
  const double lvl_p = static_cast<double>(top_p), lvl_n = static_cast<double>(top_n);
  for (int64_t i = 0; i < n; ++i) {
    const double h64 = static_cast<double>(h[i]);
    const bool in = bottom_p < h[i] && h[i] <= top_p;  // Eq. 18
    const double w = in ? std::exp(-std::fabs(lvl_p - h64)) : 0.0;
    c_w[i] = w;
    c_hw[i] = in ? h64 * w : 0.0;
  }
  out[0] = block_sum(c_w, n);
  out[1] = block_sum(c_hw, n);
  for (int64_t i = 0; i < n; ++i) {
    const double h64 = static_cast<double>(h[i]);
    const bool in = top_n <= h[i] && h[i] < bottom_n;  // Eq. 19
    const double w = in ? std::exp(-std::fabs(lvl_n - h64)) : 0.0;
    c_w[i] = w;
    c_hw[i] = in ? h64 * w : 0.0;
  }
  out[2] = block_sum(c_w, n);
  out[3] = block_sum(c_hw, n);
}

// The checks both PNB entry points make, in this order, with the Python argument names.
template <typename real>
inline void check_pnb_arguments(int64_t count, real theta_p, real theta_n, int K) {
  if (K < 1) throw std::invalid_argument("k must be >= 1, got " + std::to_string(K));
  if (!(std::isfinite(theta_p) && theta_p > 0)) {
    throw std::invalid_argument("theta_p must be a finite magnitude > 0, got " +
                                number_string(static_cast<double>(theta_p)));
  }
  if (!(std::isfinite(theta_n) && theta_n > 0)) {
    throw std::invalid_argument("theta_n must be a finite magnitude > 0, got " +
                                number_string(static_cast<double>(theta_n)));
  }
  if (count < 0) throw std::invalid_argument("count must be >= 0");
}

}  // namespace detail

// h: [count] membranes of one layer (any layout, flattened). sums: [K][2][2] doubles, written:
// sums[k-1][sign][0] = S_w, [1] = S_hw, sign 0 = R+_k, 1 = R-_k. workspace: pnb_workspace_size.
template <typename real>
void pnb_partial_sums_cpu(const same_t<real>* h, int64_t count, real theta_p, real theta_n, int K, double* sums,
                          double* workspace, int num_threads = 0) {
  detail::check_pnb_arguments(count, theta_p, theta_n, K);
  if (sums == nullptr) throw std::invalid_argument("sums must not be null");
  std::fill(sums, sums + 4 * K, 0.0);
  if (count == 0) return;
  if (h == nullptr) throw std::invalid_argument("h must not be null");
  if (workspace == nullptr) throw std::invalid_argument("workspace must not be null");
  const int64_t blocks = pnb_num_blocks(count);
  detail::parallel_for_blocks(blocks, num_threads, [&](int64_t b) {
    const int64_t i0 = b * kPnbBlock;
    const int64_t nb = std::min(kPnbBlock, count - i0);
    double c_w[kPnbBlock], c_hw[kPnbBlock];
    for (int k = 1; k <= K; ++k) {
      detail::pnb_block_sums(nb, h + i0, theta_p, theta_n, k, c_w, c_hw, workspace + (b * K + (k - 1)) * 4);
    }
  });
  for (int64_t b = 0; b < blocks; ++b) {
    for (int j = 0; j < 4 * K; ++j) sums[j] += workspace[b * 4 * K + j];
  }
}

// The partial sums' backward, dL/dh from dL/d(sums) (pyref/pnb.py sums_backward): for h in the
// region of level value c (k theta_P or -k theta_N), w = exp(-|c - h|), dw/dh = w sign(c - h),
// d(h w)/dh = w + h dw/dh; the regions' terms are added from 0 in the order k = 1..K, R+ before
// R-, in float64, and the result is rounded once to h's dtype. Region membership carries no
// gradient. One pass over h, one exp per element at most (the regions are disjoint).
// h, grad_h: [count]. grad_sums: [K][2][2] doubles, as pnb_partial_sums_cpu's sums.
template <typename real>
void pnb_partial_sums_backward_cpu(const same_t<real>* h, int64_t count, real theta_p, real theta_n, int K,
                                   const double* grad_sums, same_t<real>* grad_h, int num_threads = 0) {
  detail::check_pnb_arguments(count, theta_p, theta_n, K);
  if (count == 0) return;
  if (h == nullptr || grad_sums == nullptr || grad_h == nullptr) {
    throw std::invalid_argument("pnb_partial_sums_backward_cpu: a required buffer is null");
  }
  // dL/dh of one region's element: g_w dw/dh + g_hw d(h w)/dh
  const auto region_gradient = [](double h64, double level_value, const double* g) {
    const double d = level_value - h64;
    const double w = std::exp(-std::fabs(d));
    const double dw = w * static_cast<double>((d > 0) - (d < 0));  // sign(0) = 0
    return g[0] * dw + g[1] * (w + h64 * dw);
  };
  detail::parallel_for_blocks(pnb_num_blocks(count), num_threads, [&](int64_t b) {
    const int64_t i0 = b * kPnbBlock;
    const int64_t nb = std::min(kPnbBlock, count - i0);
    for (int64_t i = i0; i < i0 + nb; ++i) {
      const real hi = h[i];
      const double h64 = static_cast<double>(hi);
      double grad = 0.0;
      for (int k = 1; k <= K; ++k) {
        // the bounds in the working precision, as pnb_block_sums
        const real top_p = level(k, theta_p), bottom_p = level(k - 1, theta_p);
        const real top_n = -level(k, theta_n), bottom_n = -level(k - 1, theta_n);
        const double* g = grad_sums + (k - 1) * 4;
        if (bottom_p < hi && hi <= top_p) grad = grad + region_gradient(h64, static_cast<double>(top_p), g);
        if (top_n <= hi && hi < bottom_n) grad = grad + region_gradient(h64, static_cast<double>(top_n), g + 2);
      }
      grad_h[i] = static_cast<real>(grad);
    }
  });
}

}  // namespace spikegrad
