// test_family_siblings.cpp — the multi-level (CF), PNB and DS-ATGO entry points against each other:
// the forms with one workspace in bytes equal the forms with a double workspace (or the scalars
// as arguments) bit for bit, the CPU block loops equal a plain loop over multilevel_element.hpp's
// steps with run-time level counts (what the CUDA kernels run), and the workspace byte counts
// agree with the element counts. Built a second time with SPIKEGRAD_TEST_CUDA (CUDA builds): the
// CUDA siblings' byte counts and host-side checks.
// Run: cmake -S . -B build-cpp -DSPIKEGRAD_WERROR=ON && cmake --build build-cpp -j2
//      && ctest --test-dir build-cpp --output-on-failure
#include <spikegrad/spikegrad.hpp>
#ifdef SPIKEGRAD_TEST_CUDA
#include <spikegrad/cuda.hpp>
#endif

#include <cstdint>
#include <cstdio>
#include <cstring>
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

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  // (memcmp must not see the null data() of an empty vector)
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), sizeof(T) * a.size()) == 0);
}

template <typename real>
std::vector<real> random_values(std::size_t n, double low, double high, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(low, high);
  std::vector<real> values(n);
  for (auto& value : values) value = static_cast<real>(dist(rng));
  return values;
}

template <typename real>
const char* dtype_name() {
  return sizeof(real) == 8 ? "float64" : "float32";
}

void workspace_bytes() {
  for (int64_t T : {1, 7, 40}) {
    for (int64_t N : {0, 1, 511, 512, 1537}) {
      check(multilevel_backward_workspace_bytes_cpu<float>(T, N) ==
                sizeof(double) * multilevel_backward_workspace_size(T, N),
            "multilevel workspace bytes");
      check(multilevel_backward_workspace_bytes_cpu<double>(T, N) ==
                multilevel_backward_workspace_bytes_cpu<float>(T, N),
            "multilevel workspace bytes: float64 sums for both dtypes");
    }
  }
  for (int64_t count : {0, 1, 4096, 4097, 100000}) {
    for (int K : {1, 3}) {
      check(pnb_workspace_bytes_cpu<float>(count, K) == sizeof(double) * pnb_workspace_size(count, K),
            "pnb workspace bytes");
    }
  }
  check(adaptive_forward_workspace_bytes_cpu<float>(0) == 0, "adaptive workspace bytes, N = 0");
  for (int64_t N : {2, 512, 1537}) {
    const std::size_t sums = sizeof(double) * static_cast<std::size_t>(adaptive_workspace_size(N));
    check(adaptive_forward_workspace_bytes_cpu<float>(N) == sums + sizeof(float) * static_cast<std::size_t>(N),
          "adaptive workspace bytes (float32)");
    check(adaptive_forward_workspace_bytes_cpu<double>(N) == sums + sizeof(double) * static_cast<std::size_t>(N),
          "adaptive workspace bytes (float64)");
  }
}

// The CPU forward and backward against plain loops over the element steps with K = 0 (run-time
// level counts, the CUDA kernels' instantiation), and the backward's two workspace forms.
template <typename real, LevelSurrogate G, bool Smooth>
void multilevel_case(int k_p, int k_n, bool detach_reset) {
  const int64_t T = 6, N = 1300;  // three blocks, the last one partial
  const std::string name = std::string("multilevel ") + dtype_name<real>() + " " + to_string(G) +
                           (Smooth ? " smooth" : "") + " k_p=" + std::to_string(k_p) + " k_n=" + std::to_string(k_n) +
                           (detach_reset ? " detach" : "");
  const auto x = random_values<real>(static_cast<std::size_t>(T * N), -1.0, 3.5, 1);
  const auto v_init = random_values<real>(static_cast<std::size_t>(N), -1.0, 1.0, 2);
  const auto a = random_values<real>(static_cast<std::size_t>(T), 0.5, 2.0, 3);
  const auto grad_output = random_values<real>(static_cast<std::size_t>(T * N), -1.0, 1.0, 4);
  const auto grad_membrane = random_values<real>(static_cast<std::size_t>(T * N), -1.0, 1.0, 5);
  const auto grad_v_last = random_values<real>(static_cast<std::size_t>(N), -1.0, 1.0, 6);
  MultilevelParams<real> P;
  P.T = T;
  P.N = N;
  P.decay = static_cast<real>(0.75);
  P.theta_p = static_cast<real>(1.0);
  P.theta_n = static_cast<real>(0.8);
  P.k_p = k_p;
  P.k_n = k_n;
  P.a = a.data();
  P.v_init = v_init.data();
  MultilevelOptions options;
  options.surrogate = G;
  options.smooth = Smooth;
  options.detach_reset = detach_reset;

  // forward: the library against the element step
  std::vector<real> output(x.size()), membrane(x.size()), v_last(static_cast<std::size_t>(N));
  multilevel_forward_cpu(options, P, x.data(), output.data(), membrane.data(), v_last.data());
  const detail::LevelParams<real> L = detail::level_params(P);
  std::vector<real> output_ref(x.size()), membrane_ref(x.size()), v = v_init;
  std::vector<real> v_prev(x.size());  // v[t-1], for the backward below
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t n = 0; n < N; ++n) {
      const std::size_t i = static_cast<std::size_t>(t * N + n);
      v_prev[i] = v[static_cast<std::size_t>(n)];
      // outside smooth mode the forward never looks at the surrogate
      membrane_ref[i] = detail::multilevel_element_step<real, Smooth ? G : LevelSurrogate::Span, Smooth>(
          x[i], v[static_cast<std::size_t>(n)], output_ref[i], L, a[static_cast<std::size_t>(t)]);
    }
  }
  check(same_bits(output, output_ref), name + ": forward output equals the element steps'");
  check(same_bits(membrane, membrane_ref), name + ": forward membrane equals the element steps'");
  check(same_bits(v_last, v), name + ": forward v_last equals the element steps'");

  // backward: the two workspace forms, and grad_x, grad_v_init against the element steps
  std::vector<real> grad_x(x.size()), grad_v_init(static_cast<std::size_t>(N));
  std::vector<real> grad_x2(x.size()), grad_v_init2(static_cast<std::size_t>(N));
  std::vector<double> grad_a(static_cast<std::size_t>(T)), grad_a2(static_cast<std::size_t>(T));
  double grad_decay = 0, grad_decay2 = 0;
  std::vector<double> workspace_doubles(multilevel_backward_workspace_size(T, N));
  std::vector<unsigned char> workspace_bytes(multilevel_backward_workspace_bytes_cpu<real>(T, N) + sizeof(double));
  // any double-aligned address of that many bytes
  void* workspace = workspace_bytes.data() + (sizeof(double) - reinterpret_cast<std::uintptr_t>(workspace_bytes.data()) %
                                                                  sizeof(double)) % sizeof(double);
  multilevel_backward_cpu(options, P, x.data(), grad_output.data(), grad_membrane.data(), grad_v_last.data(),
                          grad_x.data(), grad_v_init.data(), &grad_decay, grad_a.data(), workspace_doubles.data());
  multilevel_backward_cpu(options, P, x.data(), grad_output.data(), grad_membrane.data(), grad_v_last.data(),
                          grad_x2.data(), grad_v_init2.data(), &grad_decay2, grad_a2.data(), workspace);
  check(same_bits(grad_x, grad_x2) && same_bits(grad_v_init, grad_v_init2) && same_bits(grad_a, grad_a2) &&
            std::memcmp(&grad_decay, &grad_decay2, sizeof(double)) == 0,
        name + ": backward with a byte workspace equals the double workspace's");

  std::vector<real> grad_x_ref(x.size()), g_v = grad_v_last;
  for (int64_t t = T - 1; t >= 0; --t) {
    for (int64_t n = 0; n < N; ++n) {
      const std::size_t i = static_cast<std::size_t>(t * N + n);
      real scratch = v_prev[i], c_a, c_lam;
      detail::multilevel_element_backward<real, G>(detach_reset, x[i], scratch, grad_output[i], grad_membrane[i],
                                                   g_v[static_cast<std::size_t>(n)], c_a, c_lam, L,
                                                   a[static_cast<std::size_t>(t)]);
      grad_x_ref[i] = scratch;
    }
  }
  check(same_bits(grad_x, grad_x_ref), name + ": backward grad_x equals the element steps'");
  check(same_bits(grad_v_init, g_v), name + ": backward grad_v_init equals the element steps'");
}

template <typename real>
void multilevel_cases() {
  for (bool detach : {false, true}) {
    for (int k : {2, 0}) {  // 2: the compiled K; 0 here: k_p = 3, k_n = 1 (run-time counts)
      const int k_p = k == 2 ? 2 : 3, k_n = k == 2 ? 2 : 1;
      multilevel_case<real, LevelSurrogate::Span, false>(k_p, k_n, detach);
      multilevel_case<real, LevelSurrogate::Span, true>(k_p, k_n, detach);
      multilevel_case<real, LevelSurrogate::Tsg, false>(k_p, k_n, detach);
      multilevel_case<real, LevelSurrogate::Tsg, true>(k_p, k_n, detach);
    }
  }
}

template <typename real>
void pnb_case() {
  const int64_t count = 10000;
  const auto h = random_values<real>(static_cast<std::size_t>(count), -3.0, 3.0, 7);
  PnbParams<real> P;
  P.count = count;
  P.theta_p = static_cast<real>(1.0);
  P.theta_n = static_cast<real>(0.7);
  P.K = 3;
  std::vector<double> sums(12), sums2(12);
  std::vector<double> workspace_doubles(pnb_workspace_size(count, P.K));
  std::vector<double> workspace(pnb_workspace_bytes_cpu<real>(count, P.K) / sizeof(double));
  pnb_partial_sums_cpu<real>(h.data(), count, P.theta_p, P.theta_n, P.K, sums.data(), workspace_doubles.data());
  pnb_partial_sums_cpu(P, h.data(), sums2.data(), static_cast<void*>(workspace.data()));
  check(same_bits(sums, sums2), std::string("pnb sums ") + dtype_name<real>() + ": the two forms agree");
  const auto grad_sums = random_values<double>(12, -1.0, 1.0, 8);
  std::vector<real> grad_h(h.size()), grad_h2(h.size());
  pnb_partial_sums_backward_cpu<real>(h.data(), count, P.theta_p, P.theta_n, P.K, grad_sums.data(), grad_h.data());
  pnb_partial_sums_backward_cpu(P, h.data(), grad_sums.data(), grad_h2.data());
  check(same_bits(grad_h, grad_h2), std::string("pnb backward ") + dtype_name<real>() + ": the two forms agree");
  bool threw = false;
  try {
    P.K = 0;
    pnb_partial_sums_cpu(P, h.data(), sums2.data(), static_cast<void*>(workspace.data()));
  } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()) == "k must be >= 1, got 0";
  }
  check(threw, "pnb: k = 0 throws with the Python argument name");
}

template <typename real>
void adaptive_case(bool keep_membrane) {
  const int64_t T = 5, N = 1300;
  const auto x = random_values<real>(static_cast<std::size_t>(T * N), -0.5, 2.0, 9);
  const auto v_init = random_values<real>(static_cast<std::size_t>(N), -0.5, 0.5, 10);
  AdaptiveParams<real> P;
  P.T = T;
  P.N = N;
  P.decay = static_cast<real>(0.5);
  P.v_init = v_init.data();
  NeuronOptions options;
  options.charge = Charge::DecayInput;
  options.reset = Reset::Soft;
  struct Outputs {
    std::vector<real> output, membrane, v_last, threshold, sg_param;
    std::vector<double> mean, std_dev;
  };
  const auto make = [&] {
    Outputs o;
    o.output.resize(x.size());
    if (keep_membrane) o.membrane.resize(x.size());
    o.v_last.resize(static_cast<std::size_t>(N));
    o.threshold.resize(static_cast<std::size_t>(T));
    o.sg_param.resize(static_cast<std::size_t>(T));
    o.mean.resize(static_cast<std::size_t>(T));
    o.std_dev.resize(static_cast<std::size_t>(T));
    return o;
  };
  Outputs old_form = make(), new_form = make();
  real* membrane_old = keep_membrane ? old_form.membrane.data() : nullptr;
  real* membrane_new = keep_membrane ? new_form.membrane.data() : nullptr;
  std::vector<real> h_scratch(static_cast<std::size_t>(N));
  std::vector<double> block_sums(static_cast<std::size_t>(adaptive_workspace_size(N)));
  adaptive_forward_cpu(options, P, x.data(), old_form.output.data(), membrane_old, old_form.v_last.data(),
                       old_form.threshold.data(), old_form.sg_param.data(), old_form.mean.data(),
                       old_form.std_dev.data(), h_scratch.data(), block_sums.data());
  std::vector<double> workspace(adaptive_forward_workspace_bytes_cpu<real>(N) / sizeof(double) + 1);
  adaptive_forward_cpu(options, P, x.data(), new_form.output.data(), membrane_new, new_form.v_last.data(),
                       new_form.threshold.data(), new_form.sg_param.data(), new_form.mean.data(),
                       new_form.std_dev.data(), static_cast<void*>(workspace.data()));
  const std::string name = std::string("adaptive ") + dtype_name<real>() + (keep_membrane ? " membrane" : "");
  check(same_bits(old_form.output, new_form.output) && same_bits(old_form.membrane, new_form.membrane) &&
            same_bits(old_form.v_last, new_form.v_last) && same_bits(old_form.threshold, new_form.threshold) &&
            same_bits(old_form.sg_param, new_form.sg_param) && same_bits(old_form.mean, new_form.mean) &&
            same_bits(old_form.std_dev, new_form.std_dev),
        name + ": the one-workspace form equals the two-buffer form");
}

#ifdef SPIKEGRAD_TEST_CUDA
template <typename E>
bool throws(const std::string& message, E&& call) {
  try {
    call();
  } catch (const std::invalid_argument& e) {
    return message.empty() || std::string(e.what()) == message;
  }
  return false;
}

// No device is touched: byte counts, and checks that throw before any launch.
template <typename real>
void cuda_siblings() {
  const cuda::DType dtype = sizeof(real) == 8 ? cuda::DType::Float64 : cuda::DType::Float32;
  for (int64_t T : {1, 9, 40}) {
    for (int64_t N : {0, 1, 257, 100000}) {
      check(multilevel_backward_workspace_bytes_cuda<real>(T, N) == cuda::multilevel_backward_workspace_bytes(dtype, T, N),
            "CUDA multilevel workspace bytes");
    }
  }
  check(pnb_workspace_bytes_cuda<real>(100000, 3) == cuda::pnb_workspace_bytes(100000, 3), "CUDA pnb workspace bytes");
  check(adaptive_forward_workspace_bytes_cuda<real>(1537) ==
            cuda::adaptive_workspace_bytes(1537) + sizeof(real) * 1537,
        "CUDA adaptive workspace bytes");
  check(adaptive_forward_workspace_bytes_cuda<real>(0) == 0, "CUDA adaptive workspace bytes, N = 0");

  MultilevelParams<real> P;
  P.T = 0;
  P.N = 4;
  check(throws("x must have a time axis with T >= 1, got T = 0",
               [&] { multilevel_forward_cuda(MultilevelOptions{}, P, nullptr, nullptr, nullptr, nullptr); }),
        "CUDA multilevel forward: T = 0 throws before a launch");
  P.T = 2;
  P.k_p = 0;
  check(throws("a must not be null",
               [&] {
                 multilevel_backward_cuda(MultilevelOptions{}, P, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, nullptr, nullptr);
               }),
        "CUDA multilevel backward: a null a throws before a launch");
  PnbParams<real> Q;
  Q.K = 0;
  check(throws("k must be >= 1, got 0", [&] { pnb_partial_sums_cuda(Q, nullptr, nullptr, nullptr); }),
        "CUDA pnb: k = 0 throws before a launch");
  AdaptiveParams<real> A;
  A.T = 1;
  A.N = 1;
  check(throws("", [&] {
          adaptive_forward_cuda(NeuronOptions{}, A, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                nullptr, nullptr);
        }),
        "CUDA adaptive: N = 1 throws before a launch");
}
#endif

}  // namespace

int main() {
  workspace_bytes();
  multilevel_cases<float>();
  multilevel_cases<double>();
  pnb_case<float>();
  pnb_case<double>();
  for (bool keep : {false, true}) {
    adaptive_case<float>(keep);
    adaptive_case<double>(keep);
  }
#ifdef SPIKEGRAD_TEST_CUDA
  cuda_siblings<float>();
  cuda_siblings<double>();
#endif
  if (failures > 0) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::puts("test_family_siblings: all checks passed");
  return 0;
}
