// tools/cuda_kernel_designs.cu — a stand-alone timing of the neuron kernels' designs on a GPU, for
// docs/performance.md: the production forward (16-byte vectors, and 4-byte accesses), the
// production backward (its chunk in registers, four neurons per thread, at two register bounds;
// with and without the parameter sums), a minimal variant of that design (one and four neurons
// per thread, the sums batched per chunk, no checkpoints), and a copy,
// at T = 8 and N = 2^24, float32, charge mul, hard reset, absolute scale, rect surrogate. Each
// design's grad_x is compared bit for bit with the first one's.
//
// Built by CMake with the CUDA kernels (target spikegrad_kernel_designs, not installed);
// tools/gpu_check.sh runs it when present. Usage: spikegrad_kernel_designs [T] [N]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "neuron_cuda.cuh"

namespace sd = spikegrad::detail;
using namespace spikegrad::cuda::detail;
using spikegrad::NeuronParams;
using spikegrad::cuda::kBlockThreads;
using spikegrad::cuda::kChunkSteps;
using spikegrad::Charge;
using spikegrad::Reset;
using spikegrad::Scale;
using spikegrad::Surrogate;

namespace {

constexpr Charge kC = Charge::Mul;
constexpr Reset kR = Reset::Hard;
constexpr Scale kS = Scale::Absolute;
constexpr Surrogate kG = Surrogate::Rect;

#define CHECK(call) check_cuda((call), #call)

__global__ void copy_kernel(const float4* __restrict__ src, float4* __restrict__ dst, int64_t count) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = __ldg(src + i);
  }
}

// The backward with a chunk of kSteps steps in registers (loops unrolled), V neurons per thread,
// the per-step parameter sums of a chunk made in one block_sum (2 * kSteps values). Features adds
// the production kernel's generality one piece at a time, to find what costs it registers and
// time: kRuntimeDetach (detach_reset chosen per element at run time, both instantiations in the
// loop), kFallback (the loads and stores through load_neurons/store_neurons with a run-time
// vector flag), kGradMembrane (a grad_membrane row read per step when its pointer is not null),
// kGuardedSums (the parameter sums behind `param_grads && the neuron exists`).
enum Feature : int { kRuntimeDetach = 1, kFallback = 2, kGradMembrane = 4, kGuardedSums = 8 };

template <int V, int Features, int MinBlocks = 1>
__global__ void __launch_bounds__(kBlockThreads, MinBlocks)
    backward_registers(NeuronParams<float> P, bool param_grads, bool detach, bool vector,
                       const float* __restrict__ x, const float* __restrict__ grad_output,
                       const float* __restrict__ grad_membrane, float* __restrict__ grad_x,
                       float* __restrict__ grad_v_init, double* __restrict__ partials) {
  constexpr int kSteps = kChunkSteps;
  __shared__ double shared[2 * kSteps * kWarps];
  const int64_t N = P.N, T = P.T;
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x) * V;
  const bool active = first < N;  // N % V == 0 here
  const int64_t num_blocks = gridDim.x;
  // T == kSteps: one chunk, no checkpoints (the design question is the reverse pass)
  float xs[kSteps][V], g_out[kSteps][V], v_prev[kSteps][V], v[V], g_v[V];
#pragma unroll
  for (int k = 0; k < kSteps; ++k) {
#pragma unroll
    for (int j = 0; j < V; ++j) {
      xs[k][j] = 0.0f;
      g_out[k][j] = 0.0f;
    }
    if (active) {
      if constexpr ((Features & kFallback) != 0) {
        load_neurons<float>(x, k * N, first, N, vector, Storage::Native, xs[k]);
        load_neurons<float>(grad_output, k * N, first, N, vector, Storage::Native, g_out[k]);
      } else if constexpr (V == 4) {
        const float4 a = __ldg(reinterpret_cast<const float4*>(x + k * N + first));
        const float4 b = __ldg(reinterpret_cast<const float4*>(grad_output + k * N + first));
        xs[k][0] = a.x, xs[k][1] = a.y, xs[k][2] = a.z, xs[k][3] = a.w;
        g_out[k][0] = b.x, g_out[k][1] = b.y, g_out[k][2] = b.z, g_out[k][3] = b.w;
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) {
          xs[k][j] = __ldg(x + k * N + first + j);
          g_out[k][j] = __ldg(grad_output + k * N + first + j);
        }
      }
    }
  }
#pragma unroll
  for (int j = 0; j < V; ++j) {
    v[j] = 0.0f;
    g_v[j] = 0.0f;
  }
#pragma unroll
  for (int k = 0; k < kSteps; ++k) {
#pragma unroll
    for (int j = 0; j < V; ++j) {
      v_prev[k][j] = v[j];
      v[j] = sd::forward_element<float, kC, kR, kS, false>(xs[k][j], v[j], P.decay, P.v_reset, P.threshold[k], kG,
                                                            P.sg_param[k])
                 .v;
    }
  }
  double sums[2 * kSteps];
  double lam_sum = 0.0;
#pragma unroll
  for (int k = kSteps - 1; k >= 0; --k) {
    float gx[V], g_mem[V];
#pragma unroll
    for (int j = 0; j < V; ++j) g_mem[j] = 0.0f;
    if constexpr ((Features & kGradMembrane) != 0) {
      if (active && grad_membrane != nullptr) load_neurons<float>(grad_membrane, k * N, first, N, vector,
                                                                  Storage::Native, g_mem);
    }
    double c_theta = 0.0, c_p = 0.0;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      sd::BackwardElement<float> e;
      if constexpr ((Features & kRuntimeDetach) != 0) {
        e = detach ? sd::backward_element<float, kC, kR, kS, false, true>(
                         xs[k][j], v_prev[k][j], g_out[k][j], g_mem[j], g_v[j], P.decay, P.v_reset, P.threshold[k],
                         kG, P.sg_param[k])
                   : sd::backward_element<float, kC, kR, kS, false, false>(
                         xs[k][j], v_prev[k][j], g_out[k][j], g_mem[j], g_v[j], P.decay, P.v_reset, P.threshold[k],
                         kG, P.sg_param[k]);
      } else {
        e = sd::backward_element<float, kC, kR, kS, false, false>(
            xs[k][j], v_prev[k][j], g_out[k][j], g_mem[j], g_v[j], P.decay, P.v_reset, P.threshold[k], kG, P.sg_param[k]);
      }
      g_v[j] = e.grad_v_prev;
      gx[j] = e.grad_x;
      if constexpr ((Features & kGuardedSums) != 0) {
        if (param_grads && active && first + j < N) {
          c_theta += static_cast<double>(e.grad_threshold);
          c_p += static_cast<double>(e.grad_sg_param);
          lam_sum += static_cast<double>(e.grad_decay);
        }
      } else {
        c_theta += static_cast<double>(e.grad_threshold);
        c_p += static_cast<double>(e.grad_sg_param);
        lam_sum += static_cast<double>(e.grad_decay);
      }
    }
    if (active) {
      if constexpr ((Features & kFallback) != 0) {
        store_neurons<float>(grad_x, k * N, first, N, vector, Storage::Native, gx);
      } else if constexpr (V == 4) {
        *reinterpret_cast<float4*>(grad_x + k * N + first) = make_float4(gx[0], gx[1], gx[2], gx[3]);
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) grad_x[k * N + first + j] = gx[j];
      }
    }
    sums[k] = active ? c_theta : 0.0;
    sums[kSteps + k] = active ? c_p : 0.0;
  }
  if (active) {
#pragma unroll
    for (int j = 0; j < V; ++j) grad_v_init[first + j] = g_v[j];
  }
  if (!param_grads) return;
  block_sum(sums, shared);
  if (threadIdx.x == 0) {
#pragma unroll
    for (int k = 0; k < kSteps; ++k) {
      partials[(1 + k) * num_blocks + blockIdx.x] = sums[k];
      partials[(1 + T + k) * num_blocks + blockIdx.x] = sums[kSteps + k];
    }
  }
  double decay_sum[1] = {active ? lam_sum : 0.0};
  block_sum(decay_sum, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = decay_sum[0];
}

// Registers and local memory of a kernel, as the compiler allotted them.
template <typename Kernel>
void print_resources(const char* name, Kernel kernel) {
  cudaFuncAttributes attributes;
  check_cuda(cudaFuncGetAttributes(&attributes, kernel), "cudaFuncGetAttributes");
  std::printf("  %-52s %3d registers, %4zu bytes local\n", name, attributes.numRegs, attributes.localSizeBytes);
}

template <typename Launch>
double median_ms(Launch&& launch, int repeat = 20) {
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  launch();  // warm-up
  CHECK(cudaDeviceSynchronize());
  std::vector<float> times;
  for (int r = 0; r < repeat; ++r) {
    CHECK(cudaEventRecord(start));
    launch();
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  CHECK(cudaGetLastError());
  std::sort(times.begin(), times.end());
  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
  return times[times.size() / 2];
}

__global__ void fill_random(float* p, int64_t count, unsigned seed, float scale, float offset) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    unsigned h = static_cast<unsigned>(i) * 2654435761u ^ seed;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    p[i] = offset + scale * (static_cast<float>(h & 0xffffff) / 16777216.0f - 0.5f);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t T = argc > 1 ? std::atoll(argv[1]) : 8;
  const int64_t N = argc > 2 ? std::atoll(argv[2]) : (int64_t{1} << 24);
  if (T != kChunkSteps || N % 4 != 0) {
    std::fprintf(stderr, "this timing needs T = %d and N a multiple of 4\n", kChunkSteps);
    return 2;
  }
  const int64_t count = T * N;
  const std::size_t bytes = sizeof(float) * static_cast<std::size_t>(count);
  float *x, *g_out, *out, *membrane_unused = nullptr, *v_last, *grad_x, *grad_x_design, *grad_v_init, *theta, *p;
  double* partials;
  CHECK(cudaMalloc(&x, bytes));
  CHECK(cudaMalloc(&g_out, bytes));
  CHECK(cudaMalloc(&out, bytes));
  CHECK(cudaMalloc(&grad_x, bytes));
  CHECK(cudaMalloc(&grad_x_design, bytes));
  CHECK(cudaMalloc(&v_last, sizeof(float) * N));
  CHECK(cudaMalloc(&grad_v_init, sizeof(float) * N));
  CHECK(cudaMalloc(&theta, sizeof(float) * T));
  CHECK(cudaMalloc(&p, sizeof(float) * T));
  CHECK(cudaMalloc(&partials, sizeof(double) * static_cast<std::size_t>(2 * T + 1) * num_blocks(N)));
  fill_random<<<1024, 256>>>(x, count, 1u, 2.0f, 0.6f);
  fill_random<<<1024, 256>>>(g_out, count, 2u, 2.0f, 0.0f);
  std::vector<float> ones(static_cast<std::size_t>(T), 1.0f);
  CHECK(cudaMemcpy(theta, ones.data(), sizeof(float) * T, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(p, ones.data(), sizeof(float) * T, cudaMemcpyHostToDevice));
  CHECK(cudaDeviceSynchronize());

  NeuronParams<float> P;
  P.T = T;
  P.N = N;
  P.decay = 0.2f;
  P.v_reset = 0.0f;
  P.threshold = theta;
  P.sg_param = p;
  P.v_init = nullptr;

  std::printf("device: ");
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, %d SMs; T = %lld, N = %lld, float32\n", prop.name, prop.multiProcessorCount,
              static_cast<long long>(T), static_cast<long long>(N));

  const double copy_ms = median_ms([&] { CHECK(cudaMemcpyAsync(out, x, bytes, cudaMemcpyDeviceToDevice)); });
  const double copy_bw = 2.0 * static_cast<double>(bytes) / (copy_ms * 1e-3);
  const int64_t vectors = count / 4;
  const double copy_kernel_ms =
      median_ms([&] { copy_kernel<<<prop.multiProcessorCount * 16, 256>>>(reinterpret_cast<const float4*>(x),
                                                                          reinterpret_cast<float4*>(out), vectors); });
  auto row = [&](const char* name, double ms, double bytes_per_element, const char* note) {
    const double floor_ms = bytes_per_element * static_cast<double>(count) / copy_bw * 1e3;
    std::printf("%-44s %8.3f ms %8.1f GB/s %6.2fx floor  %s\n", name, ms,
                bytes_per_element * static_cast<double>(count) / (ms * 1e-3) / 1e9, ms / floor_ms, note);
  };
  std::printf("copy bandwidth (cudaMemcpy D2D, read + write): %.1f GB/s\n", copy_bw / 1e9);
  row("copy kernel (float4, grid-stride)", copy_kernel_ms, 8, "");

  const unsigned grid1 = static_cast<unsigned>(num_blocks(N));
  const unsigned grid4 = static_cast<unsigned>(num_blocks(N / 4));
  row("forward, 16-byte vectors (production)",
      median_ms([&] {
        neuron_forward_kernel<float, kC, kR, kS, false>
            <<<grid4, kBlockThreads>>>(P, nullptr, kG, Storage::Native, true, x, out, membrane_unused, v_last);
      }),
      8, "");
  row("forward, 4-byte accesses",
      median_ms([&] {
        neuron_forward_kernel<float, kC, kR, kS, false>
            <<<grid4, kBlockThreads>>>(P, nullptr, kG, Storage::Native, false, x, out, membrane_unused, v_last);
      }),
      8, "(vector path off)");
  std::vector<float> reference(static_cast<std::size_t>(count)), design(static_cast<std::size_t>(count));
  bool have_reference = false;
  auto same = [&] {
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(design.data(), grad_x_design, bytes, cudaMemcpyDeviceToHost));
    if (!have_reference) {  // the first design's grad_x is the reference of the others
      reference = design;
      have_reference = true;
      return "grad_x: the reference";
    }
    return std::memcmp(reference.data(), design.data(), bytes) == 0 ? "grad_x: same bits" : "grad_x: DIFFERENT";
  };
  // the production kernel: 4 neurons per thread, the chunk in registers, >= 2 blocks per SM
  // (128 registers, a few spills) or >= 1 (no bound)
  for (bool param_grads : {false, true}) {
    const double ms2 = median_ms([&] {
      neuron_backward_kernel<float, kC, kR, kS, false, 2><<<grid4, kBlockThreads>>>(
          P, nullptr, kG, false, param_grads, Storage::Native, true, x, g_out, nullptr, nullptr, grad_x_design,
          grad_v_init, partials, nullptr);
    });
    row(param_grads ? "backward, production (2 blocks/SM), sums" : "backward, production (2 blocks/SM)", ms2, 12,
        same());
    const double ms1 = median_ms([&] {
      neuron_backward_kernel<float, kC, kR, kS, false, 1><<<grid4, kBlockThreads>>>(
          P, nullptr, kG, false, param_grads, Storage::Native, true, x, g_out, nullptr, nullptr, grad_x_design,
          grad_v_init, partials, nullptr);
    });
    row(param_grads ? "backward, production (1 block/SM), sums" : "backward, production (1 block/SM)", ms1, 12,
        same());
  }
  auto time_design = [&](const char* name, auto kernel, unsigned grid, bool param_grads) {
    const double ms = median_ms([&] {
      kernel<<<grid, kBlockThreads>>>(P, param_grads, false, true, x, g_out, nullptr, grad_x_design, grad_v_init,
                                      partials);
    });
    row(name, ms, 12, same());
  };
  for (bool param_grads : {false, true}) {
    const bool s = param_grads;
    time_design(s ? "minimal, 1/thread, sums" : "minimal, 1/thread", backward_registers<1, 0>, grid1, s);
    time_design(s ? "minimal, 4/thread, sums" : "minimal, 4/thread", backward_registers<4, 0>, grid4, s);
    time_design(s ? "  + run-time detach_reset, sums" : "  + run-time detach_reset", backward_registers<4, kRuntimeDetach>,
           grid4, s);
    time_design(s ? "  + scalar fallback path, sums" : "  + scalar fallback path", backward_registers<4, kFallback>, grid4,
           s);
    time_design(s ? "  + grad_membrane rows, sums" : "  + grad_membrane rows", backward_registers<4, kGradMembrane>, grid4,
           s);
    time_design(s ? "  + guarded sums, sums" : "  + guarded sums", backward_registers<4, kGuardedSums>, grid4, s);
    time_design(s ? "  + all four, sums" : "  + all four", backward_registers<4, 15>, grid4, s);
    time_design(s ? "  + all four, >= 2 blocks/SM, sums" : "  + all four, >= 2 blocks/SM", backward_registers<4, 15, 2>,
           grid4, s);
  }
  std::printf("resources (registers a thread; local memory: spills and stack):\n");
  print_resources("production backward, >= 2 blocks/SM",
                  neuron_backward_kernel<float, kC, kR, kS, false, 2>);
  print_resources("production backward, >= 1 block/SM",
                  neuron_backward_kernel<float, kC, kR, kS, false, 1>);
  print_resources("minimal, 4/thread", backward_registers<4, 0>);
  print_resources("  + run-time detach_reset", backward_registers<4, kRuntimeDetach>);
  print_resources("  + scalar fallback path", backward_registers<4, kFallback>);
  print_resources("  + grad_membrane rows", backward_registers<4, kGradMembrane>);
  print_resources("  + guarded sums", backward_registers<4, kGuardedSums>);
  print_resources("  + all four", backward_registers<4, 15>);
  print_resources("  + all four, >= 2 blocks/SM", backward_registers<4, 15, 2>);
  CHECK(cudaDeviceSynchronize());
  return 0;
}
