// test_adaptive.cpp — DS-ATGO's adaptive-threshold kernel (adaptive_cpu.hpp) checked against
// SPEC 2 and 5 worked by hand, against its own step functions, across thread counts, and its
// argument checks. Run: cmake -S . -B build-cpp -DSPIKEGRAD_WERROR=ON && cmake --build build-cpp -j2
//      && ctest --test-dir build-cpp --output-on-failure
#include <spikegrad/spikegrad.hpp>

#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using namespace spikegrad;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    ++failures;
  }
}

struct Run {
  std::vector<double> output, membrane, v_last, threshold, sg_param, mean, std_dev;
};

Run run(const std::vector<double>& x, int64_t T, int64_t N, double decay, int threads,
        ThresholdMode mode = ThresholdMode::True) {
  AdaptiveParams<double> P;
  P.T = T;
  P.N = N;
  P.decay = decay;
  std::vector<double> v_init(static_cast<std::size_t>(N), 0.0);
  P.v_init = v_init.data();
  P.threshold_mode = mode;
  const auto TN = static_cast<std::size_t>(T * N);
  Run r{std::vector<double>(TN), std::vector<double>(TN), std::vector<double>(static_cast<std::size_t>(N)),
        std::vector<double>(static_cast<std::size_t>(T)), std::vector<double>(static_cast<std::size_t>(T)),
        std::vector<double>(static_cast<std::size_t>(T)), std::vector<double>(static_cast<std::size_t>(T))};
  std::vector<double> workspace(static_cast<std::size_t>(adaptive_workspace_size(N)));
  adaptive_forward_cpu(NeuronOptions{}, P, x.data(), r.output.data(), r.membrane.data(), r.v_last.data(),
                       r.threshold.data(), r.sg_param.data(), r.mean.data(), r.std_dev.data(), nullptr,
                       workspace.data(), threads);
  return r;
}

void test_hand_case() {
  // T = 1, N = 4: h = x; mean 2.5; std = sqrt(((1.5^2 + 0.5^2) * 2) / 3) = sqrt(5/3) (Bessel)
  const Run r = run({1, 2, 3, 4}, 1, 4, 0.2, 1);
  const double std_dev = std::sqrt(5.0 / 3.0);
  check(r.mean[0] == 2.5, "mean of 1..4");
  check(std::fabs(r.std_dev[0] - std_dev) <= 1e-15 * std_dev, "Bessel std of 1..4");
  check(std::fabs(r.threshold[0] - (2.5 + std_dev)) <= 1e-15 * 4, "theta = mean + std");
  check(r.output[0] == 0 && r.output[1] == 0 && r.output[2] == 0 && r.output[3] == 1, "only 4 fires");
  check(r.v_last[3] == 0 && r.v_last[2] == 3, "hard reset to 0");
  check(std::fabs(r.sg_param[0] - (1 + std::tanh(std_dev - 1))) <= 1e-15 * 2, "TGO width from std");
  // estimated (Eq. 5, first line): sqrt(1 + 0.5^2) for every step
  const Run e = run({1, 2, 3, 4, 0, 0, 0, 0}, 2, 4, 0.5, 1, ThresholdMode::Estimated);
  check(e.threshold[0] == std::sqrt(1.25) && e.threshold[1] == std::sqrt(1.25), "estimated threshold");
}

void test_threads_and_steps() {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal(0.5, 1.0);
  const int64_t T = 3, N = 2000;
  std::vector<double> x(static_cast<std::size_t>(T * N));
  for (double& value : x) value = normal(rng);
  const Run one = run(x, T, N, 0.3, 1), three = run(x, T, N, 0.3, 3);
  check(one.output == three.output && one.threshold == three.threshold && one.mean == three.mean &&
            one.std_dev == three.std_dev && one.v_last == three.v_last,
        "1 and 3 threads give the same bits");

  // the step functions, composed by hand, give the fused kernel's bits
  AdaptiveParams<double> P;
  P.T = T;
  P.N = N;
  P.decay = 0.3;
  std::vector<double> v(static_cast<std::size_t>(N), 0.0), h(v.size()), o(v.size());
  std::vector<double> sums(static_cast<std::size_t>(adaptive_workspace_size(N)));
  for (int64_t t = 0; t < T; ++t) {
    adaptive_charge_step<double>(Charge::Mul, N, x.data() + t * N, v.data(), h.data(), 0.3, 0.0, sums.data(), 2);
    const double mean = layer_mean(combine_block_sums(sums.data(), static_cast<int64_t>(sums.size())), N);
    adaptive_deviation_step<double>(N, h.data(), mean, sums.data(), 2);
    const double std_dev = layer_std(combine_block_sums(sums.data(), static_cast<int64_t>(sums.size())), N);
    const AdaptiveStepValues<double> step = adaptive_step_values(P, mean, std_dev);
    adaptive_fire_step<double>(Reset::Hard, N, h.data(), v.data(), o.data(), step.threshold, 0.0, 2);
    check(step.threshold == one.threshold[static_cast<std::size_t>(t)], "step threshold == fused");
  }
  check(v == one.v_last, "step v_last == fused");
}

void test_errors() {
  bool threw = false;
  try {
    run({1, 2}, 2, 1, 0.2, 1);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  check(threw, "N = 1 throws");
  threw = false;
  try {
    (void)parse_tgo_driver("theta");
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  check(threw, "unknown tgo_driver throws");
}

}  // namespace

int main() {
  test_hand_case();
  test_threads_and_steps();
  test_errors();
  if (failures == 0) std::printf("test_adaptive: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
