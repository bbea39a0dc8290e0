// test_neuron_api.cpp — the single-level neuron's CPU launchers against the per-element form the
// CUDA kernels run (forward_element / backward_element with the surrogate switched per element,
// neuron_element.hpp), for every option, both state dtypes and a window that is not a multiple
// of the unrolled passes; the workspace in bytes against the one in doubles; the CPU and CUDA
// siblings' workspace conventions. Run: ctest --test-dir build-cpp -R test_neuron_api.
#include <spikegrad/neuron_cpu.hpp>
#ifdef SPIKEGRAD_TEST_CUDA_API
#include <spikegrad/cuda.hpp>
#endif

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace spikegrad;

#define CHECK(condition)                                                                  \
  do {                                                                                    \
    if (!(condition)) {                                                                   \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
      std::exit(1);                                                                       \
    }                                                                                     \
  } while (0)

namespace {

template <typename real>
bool same_bits(const std::vector<real>& a, const std::vector<real>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(real)) == 0;
}

template <typename real>
bool close(const std::vector<real>& a, const std::vector<real>& b, double tolerance) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    if (!(d <= tolerance * (1.0 + std::fabs(static_cast<double>(b[i]))))) return false;
  }
  return true;
}

template <typename real>
struct Problem {
  int64_t T, N;
  std::vector<real> x, threshold, sg_param, v_init, grad_output, grad_membrane, grad_v_last;
  Problem(int64_t T_, int64_t N_) : T(T_), N(N_) {
    std::mt19937 rng(7);
    std::normal_distribution<double> normal(0.6, 0.8);
    auto fill = [&](std::vector<real>& a, std::size_t n) {
      a.resize(n);
      for (real& value : a) value = static_cast<real>(normal(rng));
    };
    const auto TN = static_cast<std::size_t>(T * N);
    fill(x, TN);
    fill(v_init, static_cast<std::size_t>(N));
    fill(grad_output, TN);
    fill(grad_membrane, TN);
    fill(grad_v_last, static_cast<std::size_t>(N));
    for (int64_t t = 0; t < T; ++t) {
      threshold.push_back(static_cast<real>(0.8 + 0.05 * static_cast<double>(t)));
      sg_param.push_back(static_cast<real>(0.7 + 0.1 * static_cast<double>(t)));
    }
  }
  NeuronParams<real> params() const {
    NeuronParams<real> P;
    P.T = T;
    P.N = N;
    P.decay = static_cast<real>(0.75);
    P.v_reset = static_cast<real>(-0.125);
    P.threshold = threshold.data();
    P.sg_param = sg_param.data();
    P.v_init = v_init.data();
    return P;
  }
};

// The forward and backward one element at a time, the surrogate switched per element: the
// CUDA kernels' form of the same formulas.
template <typename real, Charge C, Reset R, Scale S, bool Smooth, bool Detach>
void element_reference(const NeuronOptions& options, const Problem<real>& pr, std::vector<real>& output,
                       std::vector<real>& membrane, std::vector<real>& v_last, std::vector<real>& grad_x,
                       std::vector<real>& grad_v_init, std::vector<double>& grad_threshold) {
  const NeuronParams<real> P = pr.params();
  const int64_t T = P.T, N = P.N;
  std::vector<real> v_prev(static_cast<std::size_t>(T * N));
  for (int64_t n = 0; n < N; ++n) {
    real v = P.v_init[n];
    for (int64_t t = 0; t < T; ++t) {
      const auto i = static_cast<std::size_t>(t * N + n);
      v_prev[i] = v;
      const detail::ForwardElement<real> e = detail::forward_element<real, C, R, S, Smooth>(
          pr.x[i], v, P.decay, P.v_reset, P.threshold[t], options.surrogate, P.sg_param[t]);
      output[i] = e.output;
      membrane[i] = e.membrane;
      v = e.v;
    }
    v_last[static_cast<std::size_t>(n)] = v;
  }
  std::fill(grad_threshold.begin(), grad_threshold.end(), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    real g_v = pr.grad_v_last[static_cast<std::size_t>(n)];
    for (int64_t t = T - 1; t >= 0; --t) {
      const auto i = static_cast<std::size_t>(t * N + n);
      const detail::BackwardElement<real> e = detail::backward_element<real, C, R, S, Smooth, Detach>(
          pr.x[i], v_prev[i], pr.grad_output[i], pr.grad_membrane[i], g_v, P.decay, P.v_reset, P.threshold[t],
          options.surrogate, P.sg_param[t]);
      grad_x[i] = e.grad_x;
      g_v = e.grad_v_prev;
      grad_threshold[static_cast<std::size_t>(t)] += static_cast<double>(e.grad_threshold);
    }
    grad_v_init[static_cast<std::size_t>(n)] = g_v;
  }
}

template <typename real>
void check_against_elements(int64_t steps, int64_t neurons, int& variants) {
  const Problem<real> pr(steps, neurons);
  const NeuronParams<real> P = pr.params();
  const auto TN = static_cast<std::size_t>(pr.T * pr.N), N = static_cast<std::size_t>(pr.N),
             T = static_cast<std::size_t>(pr.T);
  for (Surrogate g : {Surrogate::Rect, Surrogate::Triangle, Surrogate::Sigmoid, Surrogate::Atan}) {
    for (bool detach : {false, true}) {
      for (bool smooth : {false, true}) {
        for (Charge c : {Charge::Mul, Charge::DecayInput, Charge::NoDecayInput, Charge::IF}) {
          for (Reset r : {Reset::Hard, Reset::Soft, Reset::None}) {
            for (Scale s : {Scale::Absolute, Scale::Relative, Scale::ThresholdRobust}) {
              NeuronOptions options;
              options.charge = c;
              options.reset = r;
              options.scale = s;
              options.surrogate = g;
              options.smooth = smooth;
              options.detach_reset = detach;
              std::vector<real> output(TN), membrane(TN), v_last(N), grad_x(TN), grad_v_init(N);
              std::vector<real> e_output(TN), e_membrane(TN), e_v_last(N), e_grad_x(TN), e_grad_v_init(N);
              std::vector<double> e_grad_threshold(T);
              dispatch_neuron_but_surrogate(options, [&](auto charge_c, auto reset_c, auto scale_c, auto smooth_c) {
                dispatch_bool(detach, [&](auto detach_c) {
                  element_reference<real, decltype(charge_c)::value, decltype(reset_c)::value,
                                    decltype(scale_c)::value, decltype(smooth_c)::value, decltype(detach_c)::value>(
                      options, pr, e_output, e_membrane, e_v_last, e_grad_x, e_grad_v_init, e_grad_threshold);
                });
              });
              // the forward: the same bits, with the membrane and without it (the unrolled passes)
              neuron_forward_cpu(options, P, pr.x.data(), output.data(), membrane.data(), v_last.data(), 1);
              CHECK(same_bits(output, e_output));
              CHECK(same_bits(membrane, e_membrane));
              CHECK(same_bits(v_last, e_v_last));
              std::vector<real> output_2(TN), v_last_2(N);
              neuron_forward_cpu(options, P, pr.x.data(), output_2.data(), nullptr, v_last_2.data(), 2);
              CHECK(same_bits(output_2, e_output));
              CHECK(same_bits(v_last_2, e_v_last));

              // the backward without parameter gradients (unrolled passes), then with them, the
              // workspace once as doubles, once as bytes: the same bits. The sigmoid's exp may be
              // a vector library's in the rows (formulas.hpp, SPIKEGRAD_VECTOR_EXP): close there.
              const bool exact = g != Surrogate::Sigmoid;
              auto agrees = [&](const std::vector<real>& a, const std::vector<real>& b) {
                return exact ? same_bits(a, b) : close(a, b, sizeof(real) == 4 ? 1e-4 : 1e-10);
              };
              neuron_backward_cpu(options, P, pr.x.data(), pr.grad_output.data(), pr.grad_membrane.data(),
                                  pr.grad_v_last.data(), grad_x.data(), grad_v_init.data(), nullptr, nullptr,
                                  nullptr, nullptr, 1);
              CHECK(agrees(grad_x, e_grad_x));
              CHECK(agrees(grad_v_init, e_grad_v_init));

              std::vector<double> workspace_doubles(neuron_backward_workspace_size(pr.T, pr.N));
              std::vector<real> grad_x_d(TN), grad_v_init_d(N);
              double decay_d = 0;
              std::vector<double> threshold_d(T), sg_param_d(T);
              neuron_backward_cpu(options, P, pr.x.data(), pr.grad_output.data(), pr.grad_membrane.data(),
                                  pr.grad_v_last.data(), grad_x_d.data(), grad_v_init_d.data(), &decay_d,
                                  threshold_d.data(), sg_param_d.data(), workspace_doubles.data(), 2);
              CHECK(same_bits(grad_x_d, grad_x));
              CHECK(same_bits(grad_v_init_d, grad_v_init));
              CHECK(close(threshold_d, e_grad_threshold, 1e-3));

              const std::size_t bytes = neuron_backward_workspace_bytes_cpu<real>(pr.T, pr.N);
              std::unique_ptr<double[]> storage(new double[bytes / sizeof(double) + 1]);
              void* workspace_bytes = storage.get();
              std::vector<real> grad_x_b(TN), grad_v_init_b(N);
              double decay_b = 0;
              std::vector<double> threshold_b(T), sg_param_b(T);
              neuron_backward_cpu(options, P, pr.x.data(), pr.grad_output.data(), pr.grad_membrane.data(),
                                  pr.grad_v_last.data(), grad_x_b.data(), grad_v_init_b.data(), &decay_b,
                                  threshold_b.data(), sg_param_b.data(), workspace_bytes, 1);
              CHECK(same_bits(grad_x_b, grad_x));
              CHECK(same_bits(grad_v_init_b, grad_v_init));
              CHECK(std::memcmp(&decay_b, &decay_d, sizeof(double)) == 0);
              CHECK(same_bits(threshold_b, threshold_d));
              CHECK(same_bits(sg_param_b, sg_param_d));
              ++variants;
            }
          }
        }
      }
    }
  }
}

}  // namespace

int main() {
  // the workspace: bytes = 8 x doubles, 2T + 1 per block of kNeuronBlock neurons
  CHECK(neuron_backward_workspace_bytes_cpu<float>(8, 512) == 8 * 17);
  CHECK(neuron_backward_workspace_bytes_cpu<double>(8, 513) == 8 * 17 * 2);
  CHECK(neuron_backward_workspace_bytes_cpu<float>(0, 10) == 0);
  for (int64_t T : {1, 5, 24}) {
    for (int64_t N : {1, 512, 1000, 4097}) {
      CHECK(neuron_backward_workspace_bytes_cpu<float>(T, N) == sizeof(double) * neuron_backward_workspace_size(T, N));
      CHECK(neuron_backward_workspace_bytes_cpu<double>(T, N) == neuron_backward_workspace_bytes_cpu<float>(T, N));
#ifdef SPIKEGRAD_TEST_CUDA_API
      CHECK(neuron_backward_workspace_bytes_cuda<float>(T, N) ==
            cuda::neuron_backward_workspace_bytes(cuda::DType::Float32, T, N));
      CHECK(neuron_backward_workspace_bytes_cuda<double>(T, N) ==
            cuda::neuron_backward_workspace_bytes(cuda::DType::Float64, T, N));
#endif
    }
  }
  // every option name parses back to its value (the X-macro lists of options.hpp)
  for (const auto& entry : detail::kSurrogates) CHECK(parse_surrogate(entry.name) == entry.value);
  for (const auto& entry : detail::kCharges) CHECK(std::string(to_string(entry.value)) == entry.name);

  // T = 7: one unrolled pass of 4 steps and 3 single steps, 3 blocks of neurons, the last
  // partial; T = 35: longer than a block's local rows (kLocalScratchRows), either dtype
  int variants = 0;
  for (int64_t T : {7, 35}) {
    const int64_t N = T == 7 ? 1100 : 600;
    check_against_elements<float>(T, N, variants);
    check_against_elements<double>(T, N, variants);
  }
  CHECK(variants == 2 * 2 * 4 * 2 * 2 * 36);
  std::printf("test_neuron_api: ok (%d variants)\n", variants);
  return 0;
}
