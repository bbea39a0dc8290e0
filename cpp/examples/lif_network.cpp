// lif_network.cpp — a small spiking-network simulator built on spikegrad's neuron kernel: a
// recurrent network of 300 leaky integrate-and-fire neurons (240 excitatory, 60 inhibitory,
// sparse random connections) driven by Poisson input, simulated for 300 steps of 1 ms, four
// independent trials side by side. Prints firing rates, and checks what can be derived:
//   1. the run is bit-identical for 1 and 3 OpenMP threads;
//   2. no neuron emits more charge than it received: theta * spikes <= max(v_init, 0) + sum x+;
//   3. each neuron's first spike comes exactly when its input, leaky-integrated without reset,
//      first reaches the threshold (before its first spike the LIF neuron is that integral).
// Run: ./lif_network [steps]  (CTest runs it with the default 300 steps)
#include <spikegrad/spikegrad.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

namespace {

// B = trials, M = neurons per network; the kernel sees N = B * M neurons (trial-major).
constexpr int64_t kTrials = 4;
constexpr int64_t kExcitatory = 240, kInhibitory = 60;
constexpr int64_t kNeurons = kExcitatory + kInhibitory;
constexpr int kInputs = 50;               // Poisson input synapses per neuron
constexpr double kInputRate = 0.02;       // spikes per input per step (20 Hz at 1 ms steps)
constexpr float kInputWeight = 0.12f;
constexpr double kConnectivity = 0.1;     // probability of each recurrent connection
constexpr float kExcitatoryWeight = 0.05f, kInhibitoryWeight = -0.2f;
constexpr float kDecay = 0.9f;            // lam: tau = 10 steps
constexpr float kThreshold = 1.0f;

// Recurrent connections by source: the targets of neuron j are target[first[j] .. first[j+1]).
struct Synapses {
  std::vector<int64_t> first;
  std::vector<int64_t> target;
  std::vector<float> weight;
};

Synapses random_synapses(uint32_t seed) {
  std::mt19937 rng(seed);
  std::bernoulli_distribution connected(kConnectivity);
  Synapses syn;
  syn.first.push_back(0);
  for (int64_t j = 0; j < kNeurons; ++j) {
    for (int64_t i = 0; i < kNeurons; ++i) {
      if (i != j && connected(rng)) {
        syn.target.push_back(i);
        syn.weight.push_back(j < kExcitatory ? kExcitatoryWeight : kInhibitoryWeight);
      }
    }
    syn.first.push_back(static_cast<int64_t>(syn.target.size()));
  }
  return syn;
}

struct Run {
  std::vector<float> spikes;       // [T, N], the raster
  std::vector<float> v_last;       // [N]
  std::vector<double> input_plus;  // [N], sum over t of max(x[t], 0)
  std::vector<int64_t> crossing;   // [N], first t where the reset-free integral >= theta; -1: never
  std::vector<char> ambiguous;     // [N], the integral came within kMargin of theta before then
};

constexpr double kMargin = 1e-4;   // far above float rounding, so "reached theta" is unambiguous

Run simulate(const Synapses& syn, int64_t steps, int num_threads) {
  const int64_t N = kTrials * kNeurons;
  spikegrad::NeuronOptions options;  // defaults: charge "mul" (h = lam v + x), hard reset, H(z)
  const float threshold = kThreshold, sg_param = 1.0f;
  std::vector<float> v(N, 0.0f), v_next(N), x(N), rec(N);
  Run run;
  run.spikes.assign(static_cast<std::size_t>(steps * N), 0.0f);
  run.input_plus.assign(N, 0.0);
  run.crossing.assign(N, -1);
  run.ambiguous.assign(N, 0);
  std::vector<double> integral(N, 0.0);
  std::vector<std::mt19937> input_rng;
  for (int64_t b = 0; b < kTrials; ++b) input_rng.emplace_back(static_cast<uint32_t>(1000 + b));
  std::binomial_distribution<int> poisson_inputs(kInputs, kInputRate);  // Bernoulli per synapse

  // The step loop allocates nothing: every buffer above is reused.
  for (int64_t t = 0; t < steps; ++t) {
    // recurrent input from the spikes of step t - 1, in a fixed order (deterministic sums)
    std::fill(rec.begin(), rec.end(), 0.0f);
    if (t > 0) {
      const float* s_prev = &run.spikes[static_cast<std::size_t>((t - 1) * N)];
      for (int64_t b = 0; b < kTrials; ++b) {
        for (int64_t j = 0; j < kNeurons; ++j) {
          if (s_prev[b * kNeurons + j] == 0.0f) continue;
          for (int64_t k = syn.first[j]; k < syn.first[j + 1]; ++k) {
            rec[b * kNeurons + syn.target[k]] += syn.weight[k];
          }
        }
      }
    }
    for (int64_t b = 0; b < kTrials; ++b) {
      for (int64_t i = 0; i < kNeurons; ++i) {
        const int64_t n = b * kNeurons + i;
        x[n] = kInputWeight * static_cast<float>(poisson_inputs(input_rng[b])) + rec[n];
        run.input_plus[n] += std::max(static_cast<double>(x[n]), 0.0);
        integral[n] = static_cast<double>(kDecay) * integral[n] + static_cast<double>(x[n]);
        if (run.crossing[n] < 0) {
          if (std::fabs(integral[n] - kThreshold) < kMargin) run.ambiguous[n] = 1;
          if (integral[n] >= kThreshold) run.crossing[n] = t;
        }
      }
    }

    // one step of the kernel: T = 1, v_init = the state, v_last = the next state
    spikegrad::NeuronParams<float> params;
    params.T = 1;
    params.N = N;
    params.decay = kDecay;
    params.v_reset = 0.0f;
    params.threshold = &threshold;
    params.sg_param = &sg_param;
    params.v_init = v.data();
    spikegrad::neuron_forward_cpu(options, params, x.data(), &run.spikes[static_cast<std::size_t>(t * N)],
                                  nullptr, v_next.data(), num_threads);
    std::swap(v, v_next);
  }
  run.v_last = v;
  return run;
}

int failures = 0;

void check(bool ok, const char* what, int64_t n) {
  if (!ok && failures++ < 10) std::fprintf(stderr, "FAIL: %s (neuron %lld)\n", what, static_cast<long long>(n));
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t steps = argc > 1 ? std::atoll(argv[1]) : 300;
  if (steps < 1) {
    std::fprintf(stderr, "usage: %s [steps >= 1]\n", argv[0]);
    return 2;
  }
  const int64_t N = kTrials * kNeurons;
  const Synapses syn = random_synapses(7);
  const Run run = simulate(syn, steps, 1);
  const Run again = simulate(syn, steps, 3);

  // 1. determinism across thread counts, bit for bit
  check(run.spikes == again.spikes, "spike rasters differ between 1 and 3 threads", -1);
  check(run.v_last == again.v_last, "final membranes differ between 1 and 3 threads", -1);

  std::vector<int64_t> count(N, 0), first(N, -1);
  for (int64_t t = 0; t < steps; ++t) {
    for (int64_t n = 0; n < N; ++n) {
      if (run.spikes[t * N + n] != 0.0f) {
        check(run.spikes[t * N + n] == 1.0f, "a spike is neither 0 nor 1", n);
        if (count[n]++ == 0) first[n] = t;
      }
    }
  }
  int64_t checked_first = 0;
  for (int64_t n = 0; n < N; ++n) {
    // 2. charge accounting (v_init = 0, v_reset = 0, 0 <= lam <= 1): each spike removes
    //    h >= theta from the membrane, and only positive input can put charge in
    check(kThreshold * static_cast<double>(count[n]) <= run.input_plus[n], "more spikes than input charge", n);
    // 3. the first spike is the first threshold crossing of the reset-free leaky integral
    if (!run.ambiguous[n]) {
      check(first[n] == run.crossing[n], "first spike is not at the first threshold crossing", n);
      ++checked_first;
    }
  }
  check(checked_first >= N / 2, "too few neurons with an unambiguous first crossing", -1);

  std::printf("LIF network: %lld trials x %lld neurons (%lld exc, %lld inh), %lld steps of 1 ms\n",
              static_cast<long long>(kTrials), static_cast<long long>(kNeurons),
              static_cast<long long>(kExcitatory), static_cast<long long>(kInhibitory),
              static_cast<long long>(steps));
  std::printf("trial  exc rate (Hz)  inh rate (Hz)  max rate (Hz)\n");
  const double seconds = static_cast<double>(steps) * 1e-3;
  double total = 0;
  for (int64_t b = 0; b < kTrials; ++b) {
    double exc = 0, inh = 0, max_rate = 0;
    for (int64_t i = 0; i < kNeurons; ++i) {
      const double rate = static_cast<double>(count[b * kNeurons + i]) / seconds;
      (i < kExcitatory ? exc : inh) += rate;
      max_rate = std::max(max_rate, rate);
      total += rate;
    }
    std::printf("%5lld  %13.1f  %13.1f  %13.1f\n", static_cast<long long>(b), exc / kExcitatory,
                inh / kInhibitory, max_rate);
  }
  std::printf("mean rate %.1f Hz; checked: 1 vs 3 threads identical, charge bound on all %lld neurons, "
              "first spike of %lld\n",
              total / static_cast<double>(N), static_cast<long long>(N), static_cast<long long>(checked_first));
  check(total > 0, "the network is silent", -1);
  if (failures > 0) std::fprintf(stderr, "%d check(s) failed\n", failures);
  return failures == 0 ? 0 : 1;
}
