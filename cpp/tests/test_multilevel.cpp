// test_multilevel.cpp — the CF neuron and the PNB partial sums (docs/spec.md §6) checked in C++ alone:
// a hand-checked case, the TSG level formulas against finite differences of their primitive,
// thread-count independence, and the argument checks. tests/kernels/test_multilevel.py ties them to NumPy.
// Run: cmake -S . -B build-cpp -DSPIKEGRAD_WERROR=ON && cmake --build build-cpp -j2
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

template <typename real>
void issue_case() {
  // theta = 1, K = 2, v_prev = 0 (the case the CF paper discusses): strict comparisons, circulate above K theta
  const std::vector<real> h = {-3, -2, real(-1.5), -1, real(-0.5), 0, 1, real(1 + 1e-7), 2, real(2.5), 7};
  const std::vector<real> o_expected = {-2, -1, -1, 0, 0, 0, 0, 1, 1, 2, 2};
  std::vector<real> v_expected = {-1, -1, real(-0.5), -1, real(-0.5), 0, 1, 0, 1, real(0.5), 5};
  v_expected[7] = h[7] - real(1);  // exact (Sterbenz): the dtype's 1 + 1e-7, minus one level
  const int64_t N = static_cast<int64_t>(h.size());
  const real a = 1;
  const std::vector<real> v_init(h.size(), real(0));
  MultilevelParams<real> P;
  P.T = 1;
  P.N = N;
  P.decay = real(0.25);
  P.a = &a;
  P.v_init = v_init.data();
  std::vector<real> o(h.size()), m(h.size()), v(h.size());
  for (LevelSurrogate g : {LevelSurrogate::Span, LevelSurrogate::Tsg}) {
    MultilevelOptions options;
    options.surrogate = g;
    multilevel_forward_cpu(options, P, h.data(), o.data(), m.data(), v.data());
    for (std::size_t i = 0; i < h.size(); ++i) {
      check(o[i] == o_expected[i], "hand-checked case: o[" + std::to_string(i) + "]");
      check(v[i] == v_expected[i], "hand-checked case: v[" + std::to_string(i) + "]");
      check(m[i] == h[i], "hand-checked case: h[" + std::to_string(i) + "]");
    }
  }
}

void tsg_formulas() {
  const double step = 1e-6;
  for (double a : {0.3, 1.0, 2.5}) {
    for (double d = -2.9; d < 3.0; d += 0.173) {
      const double m = 1 - a * std::fabs(d);
      if (std::fabs(m) < 1e-3) continue;  // the kinks of the C1 primitive
      const double fd = (tsg_primitive(d + step, a) - tsg_primitive(d - step, a)) / (2 * step);
      const double fa = (tsg_primitive(d, a + step) - tsg_primitive(d, a - step)) / (2 * step);
      check(std::fabs(tsg_derivative(d, a) - fd) <= 1e-6, "tsg_derivative != FD at d = " + std::to_string(d));
      check(std::fabs(tsg_a_derivative(d, a) - fa) <= 1e-6, "tsg_a_derivative != FD at d = " + std::to_string(d));
    }
    check(tsg_primitive(-1e300, a) == 0.0 && tsg_primitive(1e300, a) == 1.0, "tsg primitive limits");
  }
  check(span_window(0.5, 0.5, 2.5, 1.0) == 0.0 && span_window(2.5, 0.5, 2.5, 1.0) == 0.0, "span window is open");
  check(span_window(0.6, 0.5, 2.5, 0.7) == 0.7, "span window height");
}

void thread_independence() {
  const int64_t T = 5, N = 1500;
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> x(static_cast<std::size_t>(T * N)), v_init(static_cast<std::size_t>(N), 0.0f),
      a = {0.5f, 0.8f, 1.0f, 1.3f, 2.0f}, go(x.size());
  for (auto& e : x) e = normal(rng);
  for (auto& e : go) e = normal(rng);
  MultilevelParams<float> P;
  P.T = T;
  P.N = N;
  P.decay = 0.25f;
  P.a = a.data();
  P.v_init = v_init.data();
  MultilevelOptions options;
  std::vector<double> ws(multilevel_backward_workspace_size(T, N));
  std::vector<float> gx1(x.size()), gv1(static_cast<std::size_t>(N)), gx2(x.size()), gv2(static_cast<std::size_t>(N));
  std::vector<double> ga1(T), ga2(T);
  double gd1 = 0, gd2 = 0;
  multilevel_backward_cpu(options, P, x.data(), go.data(), nullptr, nullptr, gx1.data(), gv1.data(), &gd1, ga1.data(),
                          ws.data(), 1);
  multilevel_backward_cpu(options, P, x.data(), go.data(), nullptr, nullptr, gx2.data(), gv2.data(), &gd2, ga2.data(),
                          ws.data(), 3);
  check(gx1 == gx2 && gv1 == gv2 && gd1 == gd2 && ga1 == ga2, "multilevel backward depends on the thread count");

  std::vector<double> s1(8), s2(8), pws(pnb_workspace_size(T * N, 2));
  pnb_partial_sums_cpu<float>(x.data(), T * N, 1.0f, 1.0f, 2, s1.data(), pws.data(), 1);
  pnb_partial_sums_cpu<float>(x.data(), T * N, 1.0f, 1.0f, 2, s2.data(), pws.data(), 2);
  check(s1 == s2, "pnb partial sums depend on the thread count");
}

void argument_checks() {
  const double a = 1, v0 = 0, x = 0;
  double o = 0, v = 0;
  MultilevelParams<double> P;
  P.T = 1;
  P.N = 1;
  P.a = &a;
  P.v_init = &v0;
  const auto throws = [&](MultilevelParams<double> bad, const std::string& what) {
    bool thrown = false;
    try {
      multilevel_forward_cpu(MultilevelOptions{}, bad, &x, &o, nullptr, &v);
    } catch (const std::invalid_argument& e) {
      thrown = std::string(e.what()).find(what) != std::string::npos;
    }
    check(thrown, "no invalid_argument naming " + what);
  };
  MultilevelParams<double> bad = P;
  bad.theta_p = 0;
  throws(bad, "theta_p");
  bad = P;
  bad.theta_n = -1;
  throws(bad, "theta_n");
  bad = P;
  bad.k_n = 0;
  throws(bad, "k_n");
  const double zero_a = 0;
  bad = P;
  bad.a = &zero_a;
  throws(bad, "a must be");
  bool thrown = false;
  try {
    parse_level_surrogate("rect");
  } catch (const std::invalid_argument&) {
    thrown = true;
  }
  check(thrown, "parse_level_surrogate accepted 'rect'");
}

}  // namespace

int main() {
  issue_case<float>();
  issue_case<double>();
  tsg_formulas();
  thread_independence();
  argument_checks();
  if (failures == 0) std::printf("test_multilevel: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
