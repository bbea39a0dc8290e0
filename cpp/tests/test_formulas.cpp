// test_formulas.cpp — the C++ layer checked against itself: surrogate derivatives against finite
// differences of their primitives, a hand-computed trajectory, the smooth-mode backward against
// finite differences of the forward, thread-count independence, and the argument checks.
// Run: cmake -S . -B build-cpp -DSPIKEGRAD_WERROR=ON && cmake --build build-cpp -j2
//      && ctest --test-dir build-cpp --output-on-failure
#include <spikegrad/spikegrad.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
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

std::string str(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  return buffer;
}

std::string variant(const NeuronOptions& o) {
  return std::string(to_string(o.charge)) + "/" + to_string(o.reset) + "/" + to_string(o.scale) + "/" +
         to_string(o.surrogate) + (o.smooth ? "/smooth" : "") + (o.detach_reset ? "/detach" : "");
}

// ---------------------------------------------------------------------------------------------
// docs/spec.md §5: f' = dF/dz and dF/dp, by central differences in double, away from the kinks.
// ---------------------------------------------------------------------------------------------

template <Surrogate G>
void test_surrogate_finite_differences() {
  const double eps = 1e-6;
  const double ps[] = {0.5, 1.0, 3.0};
  const double zs[] = {-1.3, -0.37, -0.1, 0.05, 0.2, 0.61, 1.7};
  for (double p : ps) {
    for (double z : zs) {
      const std::string where = std::string(to_string(G)) + " at z = " + str(z) + ", p = " + str(p);
      const double d = surrogate_derivative<G>(z, p);
      const double fd = (surrogate_primitive<G>(z + eps, p) - surrogate_primitive<G>(z - eps, p)) / (2 * eps);
      check(std::fabs(d - fd) <= 1e-6 * (1 + std::fabs(d)),
            "f' vs finite difference of F: " + where + ": " + str(d) + " vs " + str(fd));
      const double dp = surrogate_param_derivative<G>(z, p);
      const double fdp = (surrogate_primitive<G>(z, p + eps) - surrogate_primitive<G>(z, p - eps)) / (2 * eps);
      check(std::fabs(dp - fdp) <= 1e-6 * (1 + std::fabs(dp)),
            "dF/dp vs finite difference: " + where + ": " + str(dp) + " vs " + str(fdp));
    }
    // F(-inf) = 0, F(+inf) = 1
    check(surrogate_primitive<G>(-1e300, p) == 0.0, std::string(to_string(G)) + ": F(-inf) != 0");
    check(surrogate_primitive<G>(1e300, p) == 1.0, std::string(to_string(G)) + ": F(+inf) != 1");
  }
}

// ---------------------------------------------------------------------------------------------
// docs/spec.md §0: H(z) = (z >= 0), H(NaN) = 0.
// ---------------------------------------------------------------------------------------------

template <typename real>
void test_heaviside() {
  check(heaviside(std::numeric_limits<real>::quiet_NaN()) == real(0), "H(NaN) != 0");
  check(heaviside(real(0)) == real(1), "H(0) != 1");
  check(heaviside(-real(0)) == real(1), "H(-0) != 1");
  check(heaviside(-std::numeric_limits<real>::denorm_min()) == real(0), "H(-tiny) != 0");
  check(heaviside(std::numeric_limits<real>::infinity()) == real(1), "H(inf) != 1");
}

// ---------------------------------------------------------------------------------------------
// A hand-computed trajectory: mul charge, hard reset, lam = 0.5, theta = 1, dyadic inputs
// (every value exact). h = {0.75, 1.125, 0.5, 1.0}: fires at t = 1 and exactly at threshold at 3.
// ---------------------------------------------------------------------------------------------

void test_trajectory() {
  const double x[4] = {0.75, 0.75, 0.5, 0.75};
  const double theta[4] = {1, 1, 1, 1};
  const double p[4] = {1, 1, 1, 1};
  const double v_init[1] = {0};
  NeuronParams<double> params;
  params.T = 4;
  params.N = 1;
  params.decay = 0.5;
  params.v_reset = 0;
  params.threshold = theta;
  params.sg_param = p;
  params.v_init = v_init;
  double o[4], h[4], v_last[1];
  NeuronOptions options;  // mul, hard, absolute, rect
  neuron_forward_cpu(options, params, x, o, h, v_last, 1);
  const double h_expected[4] = {0.75, 1.125, 0.5, 1.0};
  const double o_expected[4] = {0, 1, 0, 1};
  for (int t = 0; t < 4; ++t) {
    check(h[t] == h_expected[t], "trajectory: h[" + std::to_string(t) + "] = " + str(h[t]));
    check(o[t] == o_expected[t], "trajectory: o[" + std::to_string(t) + "] = " + str(o[t]));
  }
  check(v_last[0] == 0.0, "trajectory: v_last = " + str(v_last[0]));

  // the same with a soft reset and the threshold-robust scale with theta = 0.5: o = theta * s
  const double half[4] = {0.5, 0.5, 0.5, 0.5};
  params.threshold = half;
  options.reset = Reset::Soft;
  options.scale = Scale::ThresholdRobust;
  neuron_forward_cpu(options, params, x, o, h, v_last, 1);
  // h0 = 0.75 fires, v = 0.25; h1 = 0.875 fires, v = 0.375; h2 = 0.6875 fires, v = 0.1875;
  // h3 = 0.84375 fires, v = 0.34375
  const double h_soft[4] = {0.75, 0.875, 0.6875, 0.84375};
  for (int t = 0; t < 4; ++t) {
    check(h[t] == h_soft[t], "soft trajectory: h[" + std::to_string(t) + "] = " + str(h[t]));
    check(o[t] == 0.5, "soft trajectory: o[" + std::to_string(t) + "] = " + str(o[t]));
  }
  check(v_last[0] == 0.34375, "soft trajectory: v_last = " + str(v_last[0]));

  // NaN input: no spike (H(NaN) = 0) in the kernel too
  const double x_nan[1] = {std::numeric_limits<double>::quiet_NaN()};
  params.T = 1;
  options = NeuronOptions{};
  params.threshold = theta;
  neuron_forward_cpu(options, params, x_nan, o, h, v_last, 1);
  check(o[0] == 0.0, "NaN input fired");
}

// ---------------------------------------------------------------------------------------------
// docs/spec.md §8 in smooth mode: the hand-written backward equals finite differences of the forward,
// for L = sum(w_o * o) + sum(w_h * h) + sum(w_v * v_last).
// ---------------------------------------------------------------------------------------------

struct Problem {
  int64_t T, N;
  double decay, v_reset;
  std::vector<double> threshold, sg_param, v_init, x;
};

double loss(const NeuronOptions& options, const Problem& pr, const std::vector<double>& w_o,
            const std::vector<double>& w_h, const std::vector<double>& w_v) {
  NeuronParams<double> params;
  params.T = pr.T;
  params.N = pr.N;
  params.decay = pr.decay;
  params.v_reset = pr.v_reset;
  params.threshold = pr.threshold.data();
  params.sg_param = pr.sg_param.data();
  params.v_init = pr.v_init.data();
  std::vector<double> o(pr.x.size()), h(pr.x.size()), v_last(static_cast<std::size_t>(pr.N));
  neuron_forward_cpu(options, params, pr.x.data(), o.data(), h.data(), v_last.data(), 1);
  double total = 0;
  for (std::size_t i = 0; i < o.size(); ++i) total += w_o[i] * o[i] + w_h[i] * h[i];
  for (std::size_t i = 0; i < v_last.size(); ++i) total += w_v[i] * v_last[i];
  return total;
}

void test_smooth_backward(const NeuronOptions& options, std::mt19937& rng) {
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  Problem pr{3, 2, 0.3, -0.2, {}, {}, {}, {}};
  const double p0 = options.surrogate == Surrogate::Sigmoid ? 2.0 : (options.surrogate == Surrogate::Atan ? 1.5 : 1.3);
  for (int64_t t = 0; t < pr.T; ++t) {
    pr.threshold.push_back(1.0 + 0.4 * uniform(rng));
    pr.sg_param.push_back(p0 * (1.0 + 0.2 * uniform(rng)));
  }
  for (int64_t n = 0; n < pr.N; ++n) pr.v_init.push_back(0.5 * uniform(rng));
  for (int64_t i = 0; i < pr.T * pr.N; ++i) pr.x.push_back(0.5 + 1.2 * uniform(rng));
  std::vector<double> w_o, w_h, w_v;
  for (int64_t i = 0; i < pr.T * pr.N; ++i) {
    w_o.push_back(uniform(rng));
    w_h.push_back(uniform(rng));
  }
  for (int64_t n = 0; n < pr.N; ++n) w_v.push_back(uniform(rng));

  NeuronParams<double> params;
  params.T = pr.T;
  params.N = pr.N;
  params.decay = pr.decay;
  params.v_reset = pr.v_reset;
  params.threshold = pr.threshold.data();
  params.sg_param = pr.sg_param.data();
  params.v_init = pr.v_init.data();
  std::vector<double> grad_x(pr.x.size()), grad_v_init(static_cast<std::size_t>(pr.N));
  std::vector<double> grad_threshold(static_cast<std::size_t>(pr.T)), grad_sg_param(static_cast<std::size_t>(pr.T));
  std::vector<double> workspace(neuron_backward_workspace_size(pr.T, pr.N));
  double grad_decay = 0;
  neuron_backward_cpu(options, params, pr.x.data(), w_o.data(), w_h.data(), w_v.data(), grad_x.data(),
                      grad_v_init.data(), &grad_decay, grad_threshold.data(), grad_sg_param.data(),
                      workspace.data(), 1);

  const double eps = 1e-6;
  auto compare = [&](double& value, double grad, const std::string& name) {
    const double saved = value;
    value = saved + eps;
    const double up = loss(options, pr, w_o, w_h, w_v);
    value = saved - eps;
    const double down = loss(options, pr, w_o, w_h, w_v);
    value = saved;
    const double fd = (up - down) / (2 * eps);
    check(std::fabs(grad - fd) <= 1e-5 * (1 + std::fabs(fd)),
          "smooth backward vs finite differences, " + variant(options) + ", d/d" + name + ": " + str(grad) +
              " vs " + str(fd));
  };
  for (std::size_t i = 0; i < pr.x.size(); ++i) compare(pr.x[i], grad_x[i], "x[" + std::to_string(i) + "]");
  for (std::size_t n = 0; n < pr.v_init.size(); ++n) {
    compare(pr.v_init[n], grad_v_init[n], "v_init[" + std::to_string(n) + "]");
  }
  compare(pr.decay, grad_decay, "decay");
  for (std::size_t t = 0; t < pr.threshold.size(); ++t) {
    compare(pr.threshold[t], grad_threshold[t], "threshold[" + std::to_string(t) + "]");
    compare(pr.sg_param[t], grad_sg_param[t], "sg_param[" + std::to_string(t) + "]");
  }
}

// ---------------------------------------------------------------------------------------------
// Determinism: 1, 2 and 3 threads give the same bits (the block partial sums do not depend on
// the thread count).
// ---------------------------------------------------------------------------------------------

void test_thread_count_independence(const NeuronOptions& options, std::mt19937& rng) {
  const int64_t T = 5, N = 3 * kNeuronBlock + 17;
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<double> x(static_cast<std::size_t>(T * N)), g_o(x.size()), g_h(x.size());
  std::vector<double> v_init(static_cast<std::size_t>(N)), g_v(v_init.size());
  std::vector<double> threshold(static_cast<std::size_t>(T), 0.9), sg_param(static_cast<std::size_t>(T), 1.0);
  for (auto& value : x) value = 0.6 + uniform(rng);
  for (auto& value : g_o) value = uniform(rng);
  for (auto& value : g_h) value = uniform(rng);
  for (auto& value : v_init) value = 0.3 * uniform(rng);
  for (auto& value : g_v) value = uniform(rng);
  NeuronParams<double> params;
  params.T = T;
  params.N = N;
  params.decay = 0.25;
  params.v_reset = 0;
  params.threshold = threshold.data();
  params.sg_param = sg_param.data();
  params.v_init = v_init.data();

  struct Run {
    std::vector<double> o, h, v_last, grad_x, grad_v_init, grad_threshold, grad_sg_param;
    double grad_decay = 0;
  };
  auto run = [&](int threads) {
    Run r;
    r.o.resize(x.size());
    r.h.resize(x.size());
    r.v_last.resize(v_init.size());
    r.grad_x.resize(x.size());
    r.grad_v_init.resize(v_init.size());
    r.grad_threshold.resize(threshold.size());
    r.grad_sg_param.resize(threshold.size());
    std::vector<double> workspace(neuron_backward_workspace_size(T, N));
    neuron_forward_cpu(options, params, x.data(), r.o.data(), r.h.data(), r.v_last.data(), threads);
    neuron_backward_cpu(options, params, x.data(), g_o.data(), g_h.data(), g_v.data(), r.grad_x.data(),
                        r.grad_v_init.data(), &r.grad_decay, r.grad_threshold.data(), r.grad_sg_param.data(),
                        workspace.data(), threads);
    return r;
  };
  auto same = [](const std::vector<double>& a, const std::vector<double>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
  };
  const Run one = run(1);
  for (int threads : {2, 3}) {
    const Run many = run(threads);
    const std::string where = variant(options) + ", 1 vs " + std::to_string(threads) + " threads: ";
    check(same(one.o, many.o) && same(one.h, many.h) && same(one.v_last, many.v_last), where + "forward differs");
    check(same(one.grad_x, many.grad_x) && same(one.grad_v_init, many.grad_v_init), where + "grad_x differs");
    check(same(one.grad_threshold, many.grad_threshold) && same(one.grad_sg_param, many.grad_sg_param) &&
              std::memcmp(&one.grad_decay, &many.grad_decay, sizeof(double)) == 0,
          where + "parameter gradients differ");
  }
}

// ---------------------------------------------------------------------------------------------
// Invalid options and parameters throw std::invalid_argument naming the argument.
// ---------------------------------------------------------------------------------------------

template <typename F>
void expect_invalid(const F& f, const std::string& name, const std::string& what) {
  try {
    f();
    check(false, what + ": did not throw");
  } catch (const std::invalid_argument& e) {
    check(std::string(e.what()).find(name) != std::string::npos,
          what + ": message does not name '" + name + "': " + e.what());
  }
}

void test_invalid() {
  expect_invalid([] { parse_charge("lif"); }, "charge", "parse_charge('lif')");
  expect_invalid([] { parse_charge("lif"); }, "'no_decay_input'", "parse_charge lists the choices");
  expect_invalid([] { parse_reset("Hard"); }, "reset", "parse_reset('Hard')");
  expect_invalid([] { parse_scale(""); }, "scale", "parse_scale('')");
  expect_invalid([] { parse_surrogate("gauss"); }, "surrogate", "parse_surrogate('gauss')");
  check(parse_charge("no_decay_input") == Charge::NoDecayInput && parse_reset("none") == Reset::None &&
            parse_scale("threshold_robust") == Scale::ThresholdRobust && parse_surrogate("atan") == Surrogate::Atan,
        "parse round trip");
  const NeuronOptions parsed = parse_neuron_options("if", "soft", "relative", "atan", true, true);
  check(parsed.charge == Charge::IF && parsed.reset == Reset::Soft && parsed.scale == Scale::Relative &&
            parsed.surrogate == Surrogate::Atan && parsed.smooth && parsed.detach_reset,
        "parse_neuron_options");
  expect_invalid([] { parse_neuron_options("mul", "hrad", "absolute", "rect", false, false); }, "reset",
                 "parse_neuron_options names the bad option");

  double theta[2] = {1, 1}, p[2] = {1, 1}, v_init[1] = {0}, x[2] = {0, 0}, o[2], v_last[1];
  NeuronParams<double> params;
  params.T = 2;
  params.N = 1;
  params.decay = 0.5;
  params.threshold = theta;
  params.sg_param = p;
  params.v_init = v_init;
  NeuronOptions options;
  auto forward = [&] { neuron_forward_cpu(options, params, x, o, nullptr, v_last, 1); };
  forward();  // valid

  params.T = 0;
  expect_invalid(forward, "T >= 1", "T = 0");
  params.T = 2;
  params.decay = std::numeric_limits<double>::quiet_NaN();
  expect_invalid(forward, "decay", "decay NaN");
  params.decay = 0.5;
  theta[1] = std::numeric_limits<double>::quiet_NaN();
  expect_invalid(forward, "threshold", "threshold NaN");
  theta[1] = 0;
  forward();  // absolute scale accepts theta <= 0
  options.scale = Scale::Relative;
  expect_invalid(forward, "threshold", "threshold 0, relative");
  options.scale = Scale::ThresholdRobust;
  expect_invalid(forward, "threshold", "threshold 0, threshold_robust");
  options.scale = Scale::Absolute;
  theta[1] = 1;
  p[0] = 0;
  expect_invalid(forward, "sg_param", "sg_param 0");
  p[0] = std::numeric_limits<double>::quiet_NaN();
  expect_invalid(forward, "sg_param", "sg_param NaN");
  p[0] = 1;
  // v_init null means zeros: the same result as an explicit zero v_init
  x[0] = 0.75;  // h = 0.75, then 0.5 * 0.75 + 0.75 = 1.125: a spike at t = 1
  x[1] = 0.75;
  forward();
  const double o_zeros[2] = {o[0], o[1]}, v_last_zeros = v_last[0];
  params.v_init = nullptr;
  forward();
  check(o[0] == o_zeros[0] && o[1] == o_zeros[1] && v_last[0] == v_last_zeros && o[1] == 1,
        "v_init null gives the zero-v_init result");
  params.v_init = v_init;
  x[0] = x[1] = 0;

  // N = 0 is a valid no-op; the backward then returns zero parameter gradients
  params.N = 0;
  forward();
  double grad_decay = 1, grad_threshold[2] = {1, 1}, grad_sg_param[2] = {1, 1};
  neuron_backward_cpu(options, params, x, nullptr, nullptr, nullptr, nullptr, nullptr, &grad_decay, grad_threshold,
                      grad_sg_param, nullptr, 1);
  check(grad_decay == 0 && grad_threshold[0] == 0 && grad_threshold[1] == 0 && grad_sg_param[0] == 0 &&
            grad_sg_param[1] == 0,
        "N = 0 backward: parameter gradients not zeroed");
}

}  // namespace

int main() {
  test_surrogate_finite_differences<Surrogate::Rect>();
  test_surrogate_finite_differences<Surrogate::Triangle>();
  test_surrogate_finite_differences<Surrogate::Sigmoid>();
  test_surrogate_finite_differences<Surrogate::Atan>();
  test_heaviside<float>();
  test_heaviside<double>();
  test_trajectory();

  std::mt19937 rng(20240611);
  for (Charge charge : {Charge::Mul, Charge::DecayInput, Charge::NoDecayInput, Charge::IF}) {
    for (Reset reset : {Reset::Hard, Reset::Soft, Reset::None}) {
      for (Scale scale : {Scale::Absolute, Scale::Relative, Scale::ThresholdRobust}) {
        for (Surrogate surrogate : {Surrogate::Rect, Surrogate::Triangle, Surrogate::Sigmoid, Surrogate::Atan}) {
          NeuronOptions options{charge, reset, scale, surrogate, true, false};
          test_smooth_backward(options, rng);
        }
      }
    }
  }
  test_thread_count_independence(NeuronOptions{Charge::Mul, Reset::Soft, Scale::Relative, Surrogate::Rect, false, false},
                                 rng);
  test_thread_count_independence(
      NeuronOptions{Charge::DecayInput, Reset::Hard, Scale::ThresholdRobust, Surrogate::Sigmoid, true, true}, rng);
  test_invalid();

  if (failures > 0) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("test_formulas: all checks passed\n");
  return 0;
}
