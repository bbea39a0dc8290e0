// spikegrad/cuda.hpp — the CUDA kernels' host launchers (CMake target spikegrad::cuda). A plain
// C++ header: including it needs no CUDA headers; pointers are device pointers, the stream is a
// cudaStream_t passed as void*. Implemented in cpp/cuda/*.cu; design in docs/cuda.md.
// Test: tests/cuda/test_cuda.py (needs a GPU; tools/gpu_check.sh runs it), cpp/tests/test_cuda_api.cpp.
//
// The multi-level, PNB and DS-ATGO families also have typed siblings of their CPU entry points
// (end of this file, namespace spikegrad): X_cuda<real> takes the CPU's X_cpu<real> parameter
// struct (with device pointers) and arguments in the same order, then an optional device decay
// and the stream; workspaces are X_workspace_bytes_cuda<real>(...) bytes, as on the CPU.
#pragma once

#include <cstddef>
#include <cstdint>

#include "adaptive_element.hpp"    // AdaptiveParams
#include "detail/parallel.hpp"     // same_t
#include "multilevel_element.hpp"  // MultilevelParams
#include "neuron_params.hpp"       // NeuronParams
#include "options.hpp"             // NeuronOptions, MultilevelOptions
#include "pnb_element.hpp"         // PnbParams

namespace spikegrad::cuda {

using Stream = void*;  // a cudaStream_t; nullptr is the legacy default stream

// The dtype of x and of everything shaped like it (output, membrane, v_last, their gradients,
// grad_x). The state (membrane arithmetic, thresholds, decay, v_init, grad_v_init) is float64
// for Float64 and float32 otherwise: float16 and bfloat16 are storage formats only.
enum class DType { Float32, Float64, Float16, BFloat16 };

// The state dtype's size in bytes: 8 for Float64, 4 otherwise.
std::size_t state_size(DType dtype);

// Neurons per CUDA block and timesteps per register chunk: constants, not launch-time choices,
// so that the float64 parameter-gradient sums have one order on every GPU (docs/cuda.md).
inline constexpr int kBlockThreads = 256;
inline constexpr int kChunkSteps = 8;

// T = timesteps, N = neurons; [T, N] arrays are time-major: element (t, n) at t * N + n.
// threshold, sg_param: [T] and v_init: [N], device arrays in the state dtype.
struct NeuronDeviceParams {
  int64_t T = 0, N = 0;
  double decay = 0;    // lam, rounded to the state dtype
  double v_reset = 0;  // rounded to the state dtype
  const void* threshold = nullptr;
  const void* sg_param = nullptr;
  const void* v_init = nullptr;
  // lam as a device scalar in the state dtype (a learnable decay computed on the device); when
  // given, `decay` is ignored, and the kernels read it: no copy to the host.
  const void* decay_device = nullptr;
};

// Every launcher checks its host arguments like its CPU twin and throws std::invalid_argument
// naming the argument. The values of device arrays (threshold, sg_param, a: NaN, <= 0) are
// checked by the kernels on the device: a bad value prints a line starting with "spikegrad:"
// and fails a device-side assertion, which the next synchronizing call reports
// (cudaErrorAssert; the CUDA context is then unusable, as after any device assert). So no
// launcher synchronizes or copies from the device: every launch is asynchronous on `stream`,
// and a sequence of them can be captured in a CUDA graph. CUDA errors throw std::runtime_error.

// x, output: [T, N]; membrane: [T, N] (receives h) or nullptr; v_last: [N].
void neuron_forward(const NeuronOptions& options, DType dtype, const NeuronDeviceParams& params, const void* x,
                    void* output, void* membrane, void* v_last, Stream stream);

// Bytes of device scratch the backward needs (float64 per-block partial sums, and the
// membranes at the starts of the chunks of kChunkSteps steps when T > kChunkSteps).
std::size_t neuron_backward_workspace_bytes(DType dtype, int64_t T, int64_t N);

// grad_output, grad_membrane: [T, N] or nullptr (zero); grad_v_last: [N] or nullptr (zero).
// grad_x: [T, N]; grad_v_init: [N] in the state dtype. grad_decay: 1, grad_threshold,
// grad_sg_param: [T] device doubles, or all three nullptr when no parameter gradient is wanted
// (the kernel then makes no float64 sums). workspace: neuron_backward_workspace_bytes, 8-byte
// aligned.
void neuron_backward(const NeuronOptions& options, DType dtype, const NeuronDeviceParams& params, const void* x,
                     const void* grad_output, const void* grad_membrane, const void* grad_v_last, void* grad_x,
                     void* grad_v_init, double* grad_decay, double* grad_threshold, double* grad_sg_param,
                     void* workspace, Stream stream);

}  // namespace spikegrad::cuda

namespace spikegrad {

// The single-level neuron's CUDA launchers as siblings of the CPU's (neuron_cpu.hpp): the same
// NeuronParams<real> (its threshold, sg_param and v_init device arrays, decay and v_reset host
// values) and the same arguments in the same order, device pointers in the state dtype for host
// pointers and a stream for the thread count; real is float or double. Checks and asynchrony as
// neuron_forward / neuron_backward above (which also take float16 and bfloat16 storage and a
// device decay).
template <typename real>
void neuron_forward_cuda(const NeuronOptions& options, const NeuronParams<real>& params, const same_t<real>* x,
                         same_t<real>* output, same_t<real>* membrane, same_t<real>* v_last,
                         cuda::Stream stream = nullptr);

// Bytes of device scratch neuron_backward_cuda<real> needs (neuron_backward_workspace_bytes of the
// state dtype); its CPU sibling is neuron_backward_workspace_bytes_cpu<real>.
template <typename real>
std::size_t neuron_backward_workspace_bytes_cuda(int64_t T, int64_t N);

template <typename real>
void neuron_backward_cuda(const NeuronOptions& options, const NeuronParams<real>& params, const same_t<real>* x,
                          const same_t<real>* grad_output, const same_t<real>* grad_membrane,
                          const same_t<real>* grad_v_last, same_t<real>* grad_x, same_t<real>* grad_v_init,
                          double* grad_decay, double* grad_threshold, double* grad_sg_param, void* workspace,
                          cuda::Stream stream = nullptr);

}  // namespace spikegrad

namespace spikegrad::cuda {

// The multi-level CF neuron (docs/spec.md §6). a: [T] and v_init: [N] device arrays in the state dtype.
struct MultilevelDeviceParams {
  int64_t T = 0, N = 0;
  double decay = 0;
  double theta_p = 1, theta_n = 1;
  int k_p = 2, k_n = 2;
  const void* a = nullptr;
  const void* v_init = nullptr;
  const void* decay_device = nullptr;  // as NeuronDeviceParams::decay_device
};

void multilevel_forward(const MultilevelOptions& options, DType dtype, const MultilevelDeviceParams& params,
                        const void* x, void* output, void* membrane, void* v_last, Stream stream);

std::size_t multilevel_backward_workspace_bytes(DType dtype, int64_t T, int64_t N);

// grad_decay: 1, grad_a: [T] device doubles, or both nullptr (no parameter sums); the rest as
// neuron_backward.
void multilevel_backward(const MultilevelOptions& options, DType dtype, const MultilevelDeviceParams& params,
                         const void* x, const void* grad_output, const void* grad_membrane, const void* grad_v_last,
                         void* grad_x, void* grad_v_init, double* grad_decay, double* grad_a, void* workspace,
                         Stream stream);

// PNB partial sums (docs/spec.md §6, Eqs. 18-19) of h: [count], Float32 or Float64. sums: [K][2][2]
// device doubles (as pnb_partial_sums_cpu). workspace: pnb_workspace_bytes.
std::size_t pnb_workspace_bytes(int64_t count, int K);
void pnb_partial_sums(DType dtype, const void* h, int64_t count, double theta_p, double theta_n, int K, double* sums,
                      void* workspace, Stream stream);

// DS-ATGO's fused forward (adaptive_cpu.hpp), Float32 or Float64, without host synchronization
// (it can be captured in a CUDA graph): a host loop over t that only launches, 4 kernels per step
// (fire t-1 + charge t with the block sums of h, their combine into mean[t], the squared
// deviations' block sums, their combine + theta[t] and k_t) and one fire kernel after the last.
// The statistics, theta[t] and k_t are computed on the device by the CPU's own SPIKEGRAD_HD
// functions in the CPU's order, so they are the CPU's bits. A non-finite statistic or a TGO
// width that rounds to 0 is a device-side check (the CPU's message is printed; the stream then
// reports cudaErrorAssert and the context is unusable) instead of the CPU's exception.
// x, output: [T, N]; membrane: [T, N] or nullptr; v_last, h_scratch: [N]; threshold, sg_param:
// [T] device arrays of x's dtype; mean, std_dev: [T] device doubles. v_init in AdaptiveDeviceParams
// is a device pointer. workspace: adaptive_workspace_bytes(N).
struct AdaptiveDeviceParams {
  int64_t T = 0, N = 0;
  double decay = 0, v_reset = 0;
  const void* v_init = nullptr;
  int threshold_mode = 0;  // 0 "true", 1 "estimated" (ThresholdMode)
  double f_c = 1, v_th = 1;
  bool tgo = true;
  int tgo_driver = 0;      // 0 "std", 1 "threshold" (TgoDriver)
  double width = 1;
  const void* decay_device = nullptr;  // as NeuronDeviceParams::decay_device
};
std::size_t adaptive_workspace_bytes(int64_t N);
void adaptive_forward(const NeuronOptions& options, DType dtype, const AdaptiveDeviceParams& params, const void* x,
                      void* output, void* membrane, void* v_last, void* threshold, void* sg_param, double* mean,
                      double* std_dev, void* h_scratch, void* workspace, Stream stream);

// The canonical order of the device's float64 sums of M values (docs/cuda.md), on the host:
// thread k of kBlockThreads adds values k, k + kBlockThreads, ... in order; then the warps'
// shuffle trees (offsets 16, 8, 4, 2, 1); then the same tree over the warps' sums. The
// device's sum_partials kernel uses this order; tests check that the two agree bit for bit.
// It is spikegrad::ordered_sum (portable.hpp), also the CPU library's and the reference's order
// for DS-ATGO's block sums (docs/atgo.md).
double ordered_device_sum(const double* values, int64_t M);
// The same order, on the device: sums M values of `values` (a device array) into *out.
void device_sum(const double* values, int64_t M, double* out, Stream stream);

}  // namespace spikegrad::cuda

namespace spikegrad {

// ---------------------------------------------------------------------------------------------
// The typed siblings of the multi-level, PNB and DS-ATGO CPU entry points, real = float or
// double (x and the state in one dtype; the DType launchers above also take float16/bfloat16
// storage). Same parameter struct, same arguments in the same order as X_cpu<real>, the
// pointers on the device; in place of the CPU's num_threads: decay_device, lam as a device
// scalar of real (a learnable decay; the struct's decay is then ignored) or nullptr, and the
// stream. Every launch is asynchronous, the checks of device values are the kernels'
// (docs/cuda.md). Workspaces: X_workspace_bytes_cuda<real>(...) bytes, 8-byte aligned.
// ---------------------------------------------------------------------------------------------

// multilevel_forward_cpu's sibling (docs/spec.md §6).
template <typename real>
void multilevel_forward_cuda(const MultilevelOptions& options, const MultilevelParams<real>& params,
                             const same_t<real>* x, same_t<real>* output, same_t<real>* membrane,
                             same_t<real>* v_last, const same_t<real>* decay_device = nullptr,
                             cuda::Stream stream = nullptr);

// Bytes of multilevel_backward_cuda's workspace (float64 per-block partial sums and the
// membranes at the starts of the chunks of kChunkSteps steps).
template <typename real>
std::size_t multilevel_backward_workspace_bytes_cuda(int64_t T, int64_t N);

// multilevel_backward_cpu's sibling: grad_decay (1) and grad_a ([T]) device doubles, both or
// neither (no parameter sums).
template <typename real>
void multilevel_backward_cuda(const MultilevelOptions& options, const MultilevelParams<real>& params,
                              const same_t<real>* x, const same_t<real>* grad_output,
                              const same_t<real>* grad_membrane, const same_t<real>* grad_v_last,
                              same_t<real>* grad_x, same_t<real>* grad_v_init, double* grad_decay, double* grad_a,
                              void* workspace, const same_t<real>* decay_device = nullptr,
                              cuda::Stream stream = nullptr);

// Bytes of pnb_partial_sums_cuda's workspace (float64 per-block sums).
template <typename real>
std::size_t pnb_workspace_bytes_cuda(int64_t count, int K);

// pnb_partial_sums_cpu's sibling (docs/spec.md §6, Eqs. 18-19); sums: [K][2][2] device doubles.
template <typename real>
void pnb_partial_sums_cuda(const PnbParams<real>& params, const same_t<real>* h, double* sums, void* workspace,
                           cuda::Stream stream = nullptr);

// Bytes of adaptive_forward_cuda's workspace: the per-block float64 sums, then one step's h
// ([N] of real, used when the membrane is not kept), as adaptive_forward_workspace_bytes_cpu.
template <typename real>
std::size_t adaptive_forward_workspace_bytes_cuda(int64_t N);

// adaptive_forward_cpu's sibling (the one-workspace form); mean, std_dev: [T] device doubles.
template <typename real>
void adaptive_forward_cuda(const NeuronOptions& options, const AdaptiveParams<real>& params, const same_t<real>* x,
                           same_t<real>* output, same_t<real>* membrane, same_t<real>* v_last,
                           same_t<real>* threshold, same_t<real>* sg_param, double* mean, double* std_dev,
                           void* workspace, const same_t<real>* decay_device = nullptr, cuda::Stream stream = nullptr);

// Compiled for float and double in cpp/cuda/ (the spikegrad::cuda library).
#define SPIKEGRAD_FAMILY_CUDA_EXTERN(real)                                                                        \
  extern template void multilevel_forward_cuda<real>(const MultilevelOptions&, const MultilevelParams<real>&,     \
                                                     const real*, real*, real*, real*, const real*, cuda::Stream); \
  extern template std::size_t multilevel_backward_workspace_bytes_cuda<real>(int64_t, int64_t);                  \
  extern template void multilevel_backward_cuda<real>(const MultilevelOptions&, const MultilevelParams<real>&,    \
                                                      const real*, const real*, const real*, const real*, real*,  \
                                                      real*, double*, double*, void*, const real*, cuda::Stream); \
  extern template std::size_t pnb_workspace_bytes_cuda<real>(int64_t, int);                                      \
  extern template void pnb_partial_sums_cuda<real>(const PnbParams<real>&, const real*, double*, void*,           \
                                                   cuda::Stream);                                                 \
  extern template std::size_t adaptive_forward_workspace_bytes_cuda<real>(int64_t);                              \
  extern template void adaptive_forward_cuda<real>(const NeuronOptions&, const AdaptiveParams<real>&, const real*, \
                                                   real*, real*, real*, real*, real*, double*, double*, void*,    \
                                                   const real*, cuda::Stream);
SPIKEGRAD_FAMILY_CUDA_EXTERN(float)
SPIKEGRAD_FAMILY_CUDA_EXTERN(double)
#undef SPIKEGRAD_FAMILY_CUDA_EXTERN

}  // namespace spikegrad
