// test_adaptive.cpp — DS-ATGO's adaptive-threshold kernel (adaptive_cpu.hpp) checked against
// docs/spec.md §2 and 5 worked by hand, against its own step functions, across thread counts, and its
// argument checks; the canonical combine of the block sums (ordered_sum, portable.hpp) by hand,
// and portable_tanh against values of the reference (spikegrad.ref.adaptive.portable_tanh). Run: cmake -S . -B build-cpp -DSPIKEGRAD_WERROR=ON && cmake --build build-cpp -j2
//      && ctest --test-dir build-cpp --output-on-failure
#include <spikegrad/spikegrad.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
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

// The canonical order: lane k of 256 adds partials k, k + 256, ...; then the warp trees. With three
// partials the lanes hold one each and the trees add (p0 + p2) + p1 (block order: (p0 + p1) + p2).
void test_combine_block_sums_by_hand() {
  const double tiny = std::ldexp(1.0, -53);  // 1 + tiny rounds back to 1 (ties to even)
  const double three[] = {1.0, tiny, -1.0};
  check(combine_block_sums(three, 3) == tiny, "3 partials: (p0 + p2) + p1");
  std::vector<double> wide(257, 0.0);  // lane 0 adds p0 and p256 first
  wide[0] = 1.0;
  wide[1] = tiny;
  wide[256] = -1.0;
  check(combine_block_sums(wide.data(), 257) == tiny, "257 partials: lane 0 holds p0 + p256");
  // lanes 0 and 16 of warp 0 meet first (offset 16), then that with lanes 8 and 24 (offset 8)
  std::vector<double> tree(32, 0.0);
  tree[0] = 1.0;
  tree[1] = -1.0;
  tree[16] = tiny;
  check(combine_block_sums(tree.data(), 32) == 0.0, "(p0 + p16) + ... + p1: 1 + tiny rounds to 1");
  const double negative_zero[] = {-0.0};
  check(combine_block_sums(negative_zero, 1) == 0.0 && !std::signbit(combine_block_sums(negative_zero, 1)),
        "the lanes start from +0.0");
  check(combine_block_sums(nullptr, 0) == 0.0, "no partials: 0");
  std::vector<double> integers(1000);
  double expected = 0;
  for (std::size_t i = 0; i < integers.size(); ++i) expected += (integers[i] = static_cast<double>(i % 97) - 40);
  check(combine_block_sums(integers.data(), 1000) == expected, "integers: every order is exact");
  const double nan[] = {1.0, std::numeric_limits<double>::quiet_NaN()};
  check(std::isnan(combine_block_sums(nan, 2)), "NaN propagates");
}

// portable_tanh: special values, and values of the reference spikegrad.ref.adaptive.portable_tanh
// (printed with float.hex) through every branch of fdlibm's tanh and expm1.
void test_portable_tanh() {
  using detail::portable_tanh;
  const double inf = std::numeric_limits<double>::infinity();
  check(portable_tanh(0.0) == 0.0 && !std::signbit(portable_tanh(0.0)), "tanh(+0) = +0");
  check(portable_tanh(-0.0) == 0.0 && std::signbit(portable_tanh(-0.0)), "tanh(-0) = -0");
  check(std::isnan(portable_tanh(std::numeric_limits<double>::quiet_NaN())), "tanh(NaN) = NaN");
  check(portable_tanh(inf) == 1.0 && portable_tanh(-inf) == -1.0, "tanh(+-inf) = +-1");
  check(portable_tanh(22.0) == 1.0 && portable_tanh(-1e300) == -1.0, "tanh(|x| >= 22) = +-1");
  const double reference[][2] = {
      {0x1.999999999999ap-4, 0x1.983d7795f413ap-4},     // expm1's k = 0
      {-0x1.3333333333333p-3, -0x1.30eaa2f235455p-3},
      {0x1.3333333333333p-2, 0x1.2a4dda7d914fap-2},     // k = -1
      {-0x1.ccccccccccccdp-2, -0x1.b0064af70e0bap-2},
      {0x1.ccccccccccccdp-1, 0x1.6ebe982d6605dp-1},     // k <= -2
      {0x1.0000000000000p+0, 0x1.85efab514f394p-1},     // |x| >= 1: 2 <= k < 20
      {-0x1.8000000000000p+0, -0x1.cf6f9786df577p-1},
      {0x1.8000000000000p+1, 0x1.fd77d111a0b00p-1},
      {0x1.e000000000000p+2, 0x1.ffffeb78a3c73p-1},     // 20 <= k <= 56
      {-0x1.8800000000000p+3, -0x1.ffffffff9b4bep-1},
      {0x1.3800000000000p+4, 0x1.0000000000000p+0},
      {-0x1.4800000000000p+4, -0x1.0000000000000p+0},   // k > 56
      {0x1.5e66666666666p+4, 0x1.0000000000000p+0},
      {0x1.b7cdfd9d7bdbbp-34, 0x1.b7cdfd9d7bdbbp-34},
      {-0x1.14b37f4b51f71p-55, -0x1.14b37f4b51f71p-55},  // |x| < 2^-55: x (1 + x)
  };
  for (const auto& xy : reference) {
    check(portable_tanh(xy[0]) == xy[1], "portable_tanh(" + std::to_string(xy[0]) + ") = the reference's bits");
  }
  // and within 2 ulp of the C library's tanh over a sweep
  for (int i = -4000; i <= 4000; ++i) {
    const double x = i / 173.0;
    const double mine = portable_tanh(x), libm = std::tanh(x);
    check(std::fabs(mine - libm) <= 4 * std::numeric_limits<double>::epsilon() * std::fabs(libm) + 1e-300,
          "portable_tanh near std::tanh at " + std::to_string(x));
  }
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
  test_combine_block_sums_by_hand();
  test_portable_tanh();
  test_errors();
  if (failures == 0) std::printf("test_adaptive: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
