// rate_training.cpp — the forward and backward kernels in a training loop: 1000 LIF neurons
// under Poisson input for 200 steps, fused in one call each way, learn the input weight w
// that makes them fire at a target rate. The gradient of the mean rate with respect to w comes
// from the backward (surrogate gradients, BPTT over the 200 steps):
//   d rate / d w = sum_{t,n} (d rate / d x[t,n]) * count[t,n],   x[t,n] = w * count[t,n].
// Checks that the surrogate slope is positive and that the rate reaches the target within
// 2 Hz in a few damped Newton steps. Run: ./rate_training
#include <spikegrad/spikegrad.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

int main() {
  const int64_t T = 200, N = 1000;  // steps of 1 ms, neurons
  const double target_hz = 40.0;
  const double target = target_hz * 1e-3;  // spikes per step

  // Poisson input: 50 synapses per neuron at 20 Hz, a count per step and neuron
  std::mt19937 rng(11);
  std::binomial_distribution<int> inputs(50, 0.02);
  std::vector<float> count(T * N);
  for (float& c : count) c = static_cast<float>(inputs(rng));

  spikegrad::NeuronOptions options;  // mul charge, hard reset, rect surrogate of width 1
  const std::vector<float> threshold(T, 1.0f), width(T, 1.0f), v_init(N, 0.0f);
  spikegrad::NeuronParams<float> params;
  params.T = T;
  params.N = N;
  params.decay = 0.9f;
  params.threshold = threshold.data();
  params.sg_param = width.data();
  params.v_init = v_init.data();

  // every buffer, allocated once
  std::vector<float> x(T * N), spikes(T * N), v_last(N), grad_x(T * N), grad_v_init(N);
  const std::vector<float> grad_rate(T * N, 1.0f / static_cast<float>(T * N));  // rate = mean(s)
  std::vector<double> grad_threshold(T), grad_width(T), workspace(spikegrad::neuron_backward_workspace_size(T, N));
  double grad_decay = 0;

  float w = 0.05f;
  double rate = 0;
  int failures = 0;
  std::printf("step  input weight  rate (Hz)  d rate/d w (Hz)\n");
  for (int step = 0; step < 12; ++step) {
    for (int64_t i = 0; i < T * N; ++i) x[i] = w * count[i];
    spikegrad::neuron_forward_cpu(options, params, x.data(), spikes.data(), nullptr, v_last.data());
    double total = 0;
    for (float s : spikes) total += static_cast<double>(s);
    rate = total / static_cast<double>(T * N);

    spikegrad::neuron_backward_cpu(options, params, x.data(), grad_rate.data(), nullptr, nullptr, grad_x.data(),
                                   grad_v_init.data(), &grad_decay, grad_threshold.data(), grad_width.data(),
                                   workspace.data());
    double slope = 0;  // d rate / d w, by the chain rule through x = w * count
    for (int64_t i = 0; i < T * N; ++i) slope += static_cast<double>(grad_x[i]) * static_cast<double>(count[i]);
    std::printf("%4d  %12.5f  %9.2f  %15.1f\n", step, static_cast<double>(w), rate * 1e3, slope * 1e3);
    if (std::fabs(rate - target) < 0.5e-3) break;
    if (!(slope > 0)) {
      std::fprintf(stderr, "FAIL: the surrogate slope d rate / d w = %g is not positive\n", slope);
      return 1;
    }
    w -= static_cast<float>(0.5 * (rate - target) / slope);  // a damped Newton step on the rate
  }
  if (std::fabs(rate - target) >= 2e-3) {
    std::fprintf(stderr, "FAIL: the rate %.2f Hz did not reach %.1f Hz within 2 Hz\n", rate * 1e3, target_hz);
    ++failures;
  } else {
    std::printf("trained: %.2f Hz for a target of %.1f Hz\n", rate * 1e3, target_hz);
  }
  return failures == 0 ? 0 : 1;
}
