// spikegrad/portable.hpp — float64 functions whose bits are the same on every backend: the
// canonical order of a float64 sum of partial sums (ordered_sum) and tanh computed by spikegrad's
// own fixed algorithm (detail::portable_tanh). Each is written once, SPIKEGRAD_HD, so that the CPU
// library and the CUDA kernels run the same source; pyref/adaptive.py spells both with the same
// operations in the same order (combine_partial_sums, portable_tanh). Only IEEE +, -, *, / and
// exact operations (comparisons, negation, scaling by a power of two) are used, and the library
// compiles without FMA contraction (-ffp-contract=off, nvcc -fmad=false), so every backend
// evaluates them exactly as written. Used by DS-ATGO (adaptive_cpu.hpp, cpp/cuda/adaptive_cuda.cu;
// docs/atgo.md). Test: tests/nn/test_atgo.py (against the reference, bit for bit), cpp/tests/test_adaptive.cpp.
#pragma once

#include <cstdint>
#include <cstring>

#include "formulas.hpp"  // SPIKEGRAD_HD

namespace spikegrad {

// ---------------------------------------------------------------------------------------------
// The canonical order of a float64 sum of M partial sums (the CUDA second stage's order, which the
// GPU runs with one block of 256 threads): lane k of kOrderedSumLanes adds values k, k + 256,
// k + 512, ... in order starting from 0.0; then each warp of 32 lanes goes through the shuffle tree
// (offsets 16, 8, 4, 2, 1: lane l gets lane[l] + lane[l + offset]; lane 0 keeps the total); then the
// 8 warps' totals go through the same tree (lanes 8..31 zero). The order depends on M only.
// ---------------------------------------------------------------------------------------------

inline constexpr int kOrderedSumLanes = 256;  // = cuda::kBlockThreads (cuda.hpp)
inline constexpr int kOrderedSumWarp = 32;

// Lane k's chain: values[k] + values[k + 256] + ... in order, from 0.0 (so never -0.0). The values
// are loaded kOrderedSumBatch at a time before they are added (in order), so that a GPU thread
// waits for one batch of loads, not for each load in turn.
inline constexpr int kOrderedSumBatch = 32;
SPIKEGRAD_HD inline double ordered_sum_lane(const double* values, int64_t M, int k) {
  double acc = 0.0;
  for (int64_t b0 = k; b0 < M; b0 += static_cast<int64_t>(kOrderedSumBatch) * kOrderedSumLanes) {
    double batch[kOrderedSumBatch];
    for (int j = 0; j < kOrderedSumBatch; ++j) {
      const int64_t b = b0 + static_cast<int64_t>(j) * kOrderedSumLanes;
      batch[j] = b < M ? values[b] : 0.0;
    }
    for (int j = 0; j < kOrderedSumBatch; ++j) {
      if (b0 + static_cast<int64_t>(j) * kOrderedSumLanes < M) acc += batch[j];
    }
  }
  return acc;
}

// The shuffle tree of one warp over lane[0..31] (overwritten): for offset = 16, 8, 4, 2, 1, lane l
// gets lane[l] + lane[l + offset]. Only lanes l < offset feed lane 0's total, so only they are
// updated (the device's shfl_down updates the others too, with values lane 0 never reads).
SPIKEGRAD_HD inline double warp_tree_sum(double* lane) {
  for (int offset = kOrderedSumWarp / 2; offset > 0; offset /= 2) {
    for (int l = 0; l < offset; ++l) lane[l] = lane[l] + lane[l + offset];
  }
  return lane[0];
}

// The two trees over the 256 lanes' chains (lanes is overwritten): per warp, then over the warps.
SPIKEGRAD_HD inline double ordered_sum_trees(double* lanes) {
  double warp_totals[kOrderedSumWarp] = {};  // zeros past the last warp
  for (int w = 0; w < kOrderedSumLanes / kOrderedSumWarp; ++w) warp_totals[w] = warp_tree_sum(lanes + kOrderedSumWarp * w);
  return warp_tree_sum(warp_totals);
}

// sum(values[0..M)) in float64, in the canonical order. 0.0 for M <= 0.
SPIKEGRAD_HD inline double ordered_sum(const double* values, int64_t M) {
  double lanes[kOrderedSumLanes];
  for (int k = 0; k < kOrderedSumLanes; ++k) lanes[k] = ordered_sum_lane(values, M, k);
  return ordered_sum_trees(lanes);
}

namespace detail {

// ---------------------------------------------------------------------------------------------
// tanh by a fixed algorithm: fdlibm's s_tanh.c on fdlibm's s_expm1.c (FreeBSD msun; the algorithm
// of glibc's generic double tanh), with the high-word tests written as comparisons of |x| with the
// doubles whose high words they test and the bit insertions as exact powers of two. Within 2 ulp of
// the correctly rounded tanh (tests/nn/test_atgo.py checks it against np.tanh on a dense sweep).
// ---------------------------------------------------------------------------------------------

// 2^k, exactly, for -1022 <= k <= 1023 (the bits of the double).
SPIKEGRAD_HD inline double power_of_two(int k) {
  const uint64_t bits = static_cast<uint64_t>(1023 + k) << 52;
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// exp(x) - 1 (fdlibm's expm1).
SPIKEGRAD_HD inline double portable_expm1(double x) {
  constexpr double o_threshold = 0x1.62e42fefa39efp+9;  // 709.78...: exp overflows above
  constexpr double ln2_hi = 0x1.62e42feep-1, ln2_lo = 0x1.a39ef35793c76p-33;
  constexpr double invln2 = 0x1.71547652b82fep+0;
  constexpr double huge = 1.0e+300;
  constexpr double Q1 = -0x1.11111111110f4p-5, Q2 = 0x1.a01a019fe5585p-10, Q3 = -0x1.4ce199eaadbb7p-14,
                   Q4 = 0x1.0cfca86e65239p-18, Q5 = -0x1.afdb76e09c32dp-23;
  if (x != x) return x + x;  // NaN
  const bool negative = x < 0;
  const double ax = negative ? -x : x;
  // huge and non-finite arguments
  if (ax >= 0x1.3687ap+5) {                             // |x| >= 56 ln2
    if (ax >= 0x1.62e42p+9) {                           // |x| >= 709.78
      if (ax > 0x1.fffffffffffffp+1023) return negative ? -1.0 : x;  // exp(+-inf) - 1 = inf, -1
      if (x > o_threshold) return huge * huge;          // overflow: inf
    }
    if (negative) return -1.0;                          // x < -56 ln2: -1 (rounded)
  }
  // argument reduction: x = k ln2 + r, |r| <= 0.5 ln2, r = hi - lo, c its rounding error
  double hi, lo, c = 0.0;
  int k;
  if (ax >= 0x1.62e43p-2) {                             // |x| > 0.5 ln2
    if (ax < 0x1.0a2b2p+0) {                            // and |x| < 1.5 ln2
      if (!negative) {
        hi = x - ln2_hi;
        lo = ln2_lo;
        k = 1;
      } else {
        hi = x + ln2_hi;
        lo = -ln2_lo;
        k = -1;
      }
    } else {
      k = static_cast<int>(invln2 * x + (negative ? -0.5 : 0.5));  // truncated toward 0
      const double t = static_cast<double>(k);
      hi = x - t * ln2_hi;  // exact
      lo = t * ln2_lo;
    }
    x = hi - lo;
    c = (hi - x) - lo;
  } else if (ax < 0x1p-54) {                            // |x| < 2^-54: x itself (and -0 stays -0)
    return x;
  } else {
    k = 0;
  }
  // x is now in the primary range
  const double hfx = 0.5 * x;
  const double hxs = x * hfx;
  const double r1 = 1.0 + hxs * (Q1 + hxs * (Q2 + hxs * (Q3 + hxs * (Q4 + hxs * Q5))));
  const double t = 3.0 - r1 * hfx;
  double e = hxs * ((r1 - t) / (6.0 - x * t));
  if (k == 0) return x - (x * e - hxs);  // c is 0
  e = (x * (e - c) - c);
  e -= hxs;
  if (k == -1) return 0.5 * (x - e) - 0.5;
  if (k == 1) {
    if (x < -0.25) return -2.0 * (e - (x + 0.5));
    return 1.0 + 2.0 * (x - e);
  }
  if (k <= -2 || k > 56) {  // exp(x) - 1 = 2^k exp(r) - 1 suffices
    double y = 1.0 - (e - x);
    if (k == 1024) {
      y = y * 2.0 * 0x1p1023;
    } else {
      y = y * power_of_two(k);
    }
    return y - 1.0;
  }
  double y;
  if (k < 20) {
    y = (1.0 - power_of_two(-k)) - (e - x);  // 1 - 2^-k is exact
    y = y * power_of_two(k);
  } else {
    y = x - (e + power_of_two(-k));
    y += 1.0;
    y = y * power_of_two(k);
  }
  return y;
}

// tanh(x) (fdlibm's tanh): x (1 + x) below 2^-55, from expm1(2|x|) or expm1(-2|x|) below 22,
// +-1 from 22 on; NaN stays NaN, +-0 stays +-0.
SPIKEGRAD_HD inline double portable_tanh(double x) {
  if (x != x) return x + x;  // NaN
  const double ax = x < 0 ? -x : x;
  double z;
  if (ax < 22.0) {
    if (ax < 0x1p-55) return x * (1.0 + x);  // tanh(tiny) = tiny; +-0 stay
    if (ax >= 1.0) {
      const double t = portable_expm1(2.0 * ax);
      z = 1.0 - 2.0 / (t + 2.0);
    } else {
      const double t = portable_expm1(-2.0 * ax);
      z = -t / (t + 2.0);
    }
  } else {
    z = 1.0;  // |x| >= 22 (and +-inf): tanh rounds to +-1
  }
  return x < 0 ? -z : z;
}

}  // namespace detail
}  // namespace spikegrad
