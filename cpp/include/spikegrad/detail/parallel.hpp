// spikegrad/detail/parallel.hpp — what every CPU kernel shares: neurons in blocks of kNeuronBlock,
// the blocks over OpenMP threads, and the float64 block sums in a fixed order (the same bits for
// any thread count, docs/spec.md §0). No kernel and no option lives here.
#pragma once

#include <cstddef>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__) || defined(__clang__) || defined(_MSC_VER) || defined(__CUDACC__)
#define SPIKEGRAD_RESTRICT __restrict
#else
#define SPIKEGRAD_RESTRICT
#endif

namespace spikegrad {

// Neurons are processed in blocks of kNeuronBlock: the unit of parallel work, of the state
// kept in local arrays, and of the partial sums of the parameter gradients. It is a constant
// (not derived from the thread count) so that the float64 sums, made per block and then added
// in block order, give the same bits for any number of threads.
inline constexpr int64_t kNeuronBlock = 512;

inline int64_t neuron_num_blocks(int64_t N) { return N <= 0 ? 0 : (N + kNeuronBlock - 1) / kNeuronBlock; }

// A backward keeps v[t-1] of a block in a local array of this many rows (64 KiB) when T fits;
// longer windows park it in grad_x's row t (whose lines are then also read from memory).
template <typename real>
inline constexpr int64_t kLocalScratchRows = static_cast<int64_t>((std::size_t(64) << 10) / (sizeof(real) * kNeuronBlock));

// In a kernel's signature, same_t<real> keeps `real` deduced from the parameter struct alone, so
// that nullptr can be passed for optional arrays.
template <typename T>
struct same_type {
  using type = T;
};
template <typename T>
using same_t = typename same_type<T>::type;

namespace detail {

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

// Prefetches the cache lines of p[0..n) (for writing: in a state that a store needs).
template <bool ForWrite, typename real>
inline void prefetch_lines(const real* p, int64_t n) {
#if defined(__GNUC__) || defined(__clang__)
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(real));
  for (int64_t i = 0; i < n; i += kLine) __builtin_prefetch(p + i, ForWrite ? 1 : 0, 3);
#else
  (void)p;
  (void)n;
#endif
}

// sum(c[0..n)) in float64, in a fixed order: 8 interleaved lanes (lane = i mod 8, accumulated
// in i order), then the lanes pairwise. block_sums does this for several arrays at once, so
// that their chains of dependent additions overlap; the bits are those of one array at a time.
template <typename real, int K>
inline void block_sums(const real* const (&arrays)[K], int64_t n, double (&sums)[K]) {
  double acc[K][8] = {};
  int64_t i = 0;
#if defined(__GNUC__) || defined(__clang__)
  // lanes 0-3 and 4-7 as two 4-double vectors (GCC leaves the plain loop scalar)
  typedef double lanes4 __attribute__((vector_size(32)));
  lanes4 low[K], high[K];
  for (int k = 0; k < K; ++k) low[k] = high[k] = lanes4{0, 0, 0, 0};
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < K; ++k) {
      const real* c = arrays[k] + i;
      low[k] += lanes4{static_cast<double>(c[0]), static_cast<double>(c[1]), static_cast<double>(c[2]),
                       static_cast<double>(c[3])};
      high[k] += lanes4{static_cast<double>(c[4]), static_cast<double>(c[5]), static_cast<double>(c[6]),
                        static_cast<double>(c[7])};
    }
  }
  for (int k = 0; k < K; ++k) {
    for (int l = 0; l < 4; ++l) {
      acc[k][l] = low[k][l];
      acc[k][4 + l] = high[k][l];
    }
  }
#else
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < K; ++k) {
      for (int l = 0; l < 8; ++l) acc[k][l] += static_cast<double>(arrays[k][i + l]);
    }
  }
#endif
  for (int k = 0; k < K; ++k) {
    for (int l = 0; i + l < n; ++l) acc[k][l] += static_cast<double>(arrays[k][i + l]);
    sums[k] = ((acc[k][0] + acc[k][1]) + (acc[k][2] + acc[k][3])) + ((acc[k][4] + acc[k][5]) + (acc[k][6] + acc[k][7]));
  }
}

template <typename real>
inline double block_sum(const real* c, int64_t n) {
  const real* const arrays[1] = {c};
  double sums[1];
  block_sums(arrays, n, sums);
  return sums[0];
}

}  // namespace detail
}  // namespace spikegrad
