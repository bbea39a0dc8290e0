// spikegrad/pnb_cpu.hpp — the partial sums of the PNB loss (docs/spec.md §6, the CF paper's Eqs. 18-21) on the
// CPU: per (level, sign), S_w = sum w and S_hw = sum h w over one layer's membranes, in float64 and
// in the fixed order pyref/pnb.py mirrors; each element's region and weight pnb_element.hpp's.
// Test: tests/kernels/test_multilevel.py, cpp/tests/test_family_siblings.cpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "detail/parallel.hpp"
#include "formulas.hpp"
#include "options.hpp"
#include "pnb_element.hpp"

namespace spikegrad {

// Elements are cut into blocks of kPnbBlock (a multiple of 8): within a block, block_sum's 8 lanes;
// the blocks are added in order. A constant, so the bits do not depend on the thread count.
inline constexpr int64_t kPnbBlock = 4096;

inline int64_t pnb_num_blocks(int64_t count) { return count <= 0 ? 0 : (count + kPnbBlock - 1) / kPnbBlock; }

// Per block: [K][2 signs][S_w, S_hw] doubles.
inline std::size_t pnb_workspace_size(int64_t count, int K) {
  return static_cast<std::size_t>(pnb_num_blocks(count)) * static_cast<std::size_t>(4 * (K < 0 ? 0 : K));
}

// Bytes of the CPU sums' workspace (float64 per-block sums, aligned for double).
template <typename real>
inline std::size_t pnb_workspace_bytes_cpu(int64_t count, int K) {
  return sizeof(double) * pnb_workspace_size(count, K);
}

namespace detail {

// One block's contributions of level k: w = exp(-|level - h|) in float64 inside the region, else 0
// (pnb_element.hpp), then their block sums.
template <typename real>
inline void pnb_block_sums(int64_t n, const real* SPIKEGRAD_RESTRICT h, real theta_p, real theta_n, int k,
                           double* SPIKEGRAD_RESTRICT c_w, double* SPIKEGRAD_RESTRICT c_hw, double* out /*[2][2]*/) {
  const PnbRegions<real> R = pnb_regions(k, theta_p, theta_n);
  const double lvl_p = static_cast<double>(R.top_p), lvl_n = static_cast<double>(R.top_n);
  for (int64_t i = 0; i < n; ++i) {
    const double h64 = static_cast<double>(h[i]);
    const bool in = in_positive_region(h[i], R);  // Eq. 18
    const double w = in ? pnb_weight(h64, lvl_p) : 0.0;
    c_w[i] = w;
    c_hw[i] = in ? h64 * w : 0.0;
  }
  out[0] = block_sum(c_w, n);
  out[1] = block_sum(c_hw, n);
  for (int64_t i = 0; i < n; ++i) {
    const double h64 = static_cast<double>(h[i]);
    const bool in = in_negative_region(h[i], R);  // Eq. 19
    const double w = in ? pnb_weight(h64, lvl_n) : 0.0;
    c_w[i] = w;
    c_hw[i] = in ? h64 * w : 0.0;
  }
  out[2] = block_sum(c_w, n);
  out[3] = block_sum(c_hw, n);
}

}  // namespace detail

// h: [params.count] membranes of one layer (any layout, flattened). sums: [K][2][2] doubles,
// written: sums[k-1][sign][0] = S_w, [1] = S_hw, sign 0 = R+_k, 1 = R-_k. workspace:
// pnb_workspace_bytes_cpu<real>(count, K) bytes, aligned for double. The same bits for any
// num_threads. The CUDA sibling: pnb_partial_sums_cuda (cuda.hpp).
template <typename real>
void pnb_partial_sums_cpu(const PnbParams<real>& params, const same_t<real>* h, double* sums, void* workspace,
                          int num_threads = 0) {
  validate_pnb_params(params);
  const int64_t count = params.count;
  const int K = params.K;
  if (sums == nullptr) throw std::invalid_argument("sums must not be null");
  std::fill(sums, sums + 4 * K, 0.0);
  if (count == 0) return;
  if (h == nullptr) throw std::invalid_argument("h must not be null");
  if (workspace == nullptr) throw std::invalid_argument("workspace must not be null");
  double* partials = static_cast<double*>(workspace);
  const int64_t blocks = pnb_num_blocks(count);
  detail::parallel_for_blocks(blocks, num_threads, [&](int64_t b) {
    const int64_t i0 = b * kPnbBlock;
    const int64_t nb = std::min(kPnbBlock, count - i0);
    double c_w[kPnbBlock], c_hw[kPnbBlock];
    for (int k = 1; k <= K; ++k) {
      detail::pnb_block_sums(nb, h + i0, params.theta_p, params.theta_n, k, c_w, c_hw,
                             partials + (b * K + (k - 1)) * 4);
    }
  });
  for (int64_t b = 0; b < blocks; ++b) {
    for (int j = 0; j < 4 * K; ++j) sums[j] += partials[b * 4 * K + j];
  }
}

// The same with the scalars as arguments and the workspace as pnb_workspace_size(count, K) doubles.
template <typename real>
void pnb_partial_sums_cpu(const same_t<real>* h, int64_t count, real theta_p, real theta_n, int K, double* sums,
                          double* workspace, int num_threads = 0) {
  PnbParams<real> params;
  params.count = count;
  params.theta_p = theta_p;
  params.theta_n = theta_n;
  params.K = K;
  pnb_partial_sums_cpu(params, h, sums, static_cast<void*>(workspace), num_threads);
}

// The partial sums' backward, dL/dh from dL/d(sums) (pyref/pnb.py sums_backward): for h in the
// region of level value c (k theta_P or -k theta_N), w = exp(-|c - h|), dw/dh = w sign(c - h),
// d(h w)/dh = w + h dw/dh; the regions' terms are added from 0 in the order k = 1..K, R+ before
// R-, in float64, and the result is rounded once to h's dtype. Region membership carries no
// gradient. One pass over h, one exp per element at most (the regions are disjoint).
// h, grad_h: [params.count]. grad_sums: [K][2][2] doubles, as pnb_partial_sums_cpu's sums.
template <typename real>
void pnb_partial_sums_backward_cpu(const PnbParams<real>& params, const same_t<real>* h, const double* grad_sums,
                                   same_t<real>* grad_h, int num_threads = 0) {
  validate_pnb_params(params);
  const int64_t count = params.count;
  const int K = params.K;
  if (count == 0) return;
  if (h == nullptr || grad_sums == nullptr || grad_h == nullptr) {
    throw std::invalid_argument("pnb_partial_sums_backward_cpu: a required buffer is null");
  }
  // dL/dh of one region's element: g_w dw/dh + g_hw d(h w)/dh
  const auto region_gradient = [](double h64, double level_value, const double* g) {
    const double d = level_value - h64;
    const double w = detail::pnb_weight(h64, level_value);
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
        const detail::PnbRegions<real> R = detail::pnb_regions(k, params.theta_p, params.theta_n);
        const double* g = grad_sums + (k - 1) * 4;
        if (detail::in_positive_region(hi, R)) grad = grad + region_gradient(h64, static_cast<double>(R.top_p), g);
        if (detail::in_negative_region(hi, R)) grad = grad + region_gradient(h64, static_cast<double>(R.top_n), g + 2);
      }
      grad_h[i] = static_cast<real>(grad);
    }
  });
}

// The same with the scalars as arguments.
template <typename real>
void pnb_partial_sums_backward_cpu(const same_t<real>* h, int64_t count, real theta_p, real theta_n, int K,
                                   const double* grad_sums, same_t<real>* grad_h, int num_threads = 0) {
  PnbParams<real> params;
  params.count = count;
  params.theta_p = theta_p;
  params.theta_n = theta_n;
  params.K = K;
  pnb_partial_sums_backward_cpu(params, h, grad_sums, grad_h, num_threads);
}

}  // namespace spikegrad
