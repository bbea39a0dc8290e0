// test_golden.cpp — every kernel of <spikegrad/spikegrad.hpp> (neuron, adaptive, multilevel, pnb) against
// golden vectors of the NumPy reference, without Python: forward bit for bit (within the stated bound
// where a transcendental enters), backward within the bound recorded next to each value; also from
// several threads at once. Run: ctest --test-dir build -R test_golden. Regenerate the vectors:
// python tools/make_golden.py (the file format is the docstring of that script).
#include <spikegrad/spikegrad.hpp>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace spikegrad;

namespace {

std::atomic<int> failures{0};  // checks also run on several threads at once (thread safety)
std::mutex report_mutex;

void check(bool ok, const std::string& what) {
  if (!ok) {
    const std::lock_guard<std::mutex> lock(report_mutex);
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    ++failures;
  }
}

std::string str(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  return buffer;
}

// One case of the file: its header line as key=value pairs, and its records.
struct GoldenCase {
  std::string kernel, dtype, title;
  std::map<std::string, std::string> header;
  std::map<std::string, std::vector<double>> inputs;
  std::map<std::string, std::vector<double>> expected;
  std::map<std::string, std::vector<double>> bounds;  // present for `close` records only
};

double parse_number(const std::string& token) {
  char* end = nullptr;
  const double value = std::strtod(token.c_str(), &end);  // hex floats, inf and nan included
  if (end == token.c_str() || *end != '\0') throw std::runtime_error("bad number '" + token + "'");
  return value;
}

std::vector<double> read_numbers(std::istringstream& line, std::size_t count) {
  std::vector<double> values(count);
  std::string token;
  for (std::size_t i = 0; i < count; ++i) {
    if (!(line >> token)) throw std::runtime_error("record too short");
    values[i] = parse_number(token);
  }
  return values;
}

std::vector<GoldenCase> read_golden(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw std::runtime_error("cannot open " + path);
  std::vector<GoldenCase> cases;
  std::string text;
  while (std::getline(file, text)) {
    if (text.empty() || text[0] == '#') continue;
    std::istringstream line(text);
    std::string kind;
    line >> kind;
    if (kind == "case") {
      GoldenCase c;
      std::string index;
      line >> c.kernel >> index >> c.dtype;
      c.title = c.kernel + " case " + index + " (" + c.dtype + ")";
      std::string pair;
      while (line >> pair) {
        const auto eq = pair.find('=');
        c.header[pair.substr(0, eq)] = pair.substr(eq + 1);
        c.title += " " + pair;
      }
      cases.push_back(std::move(c));
      continue;
    }
    if (kind == "end") continue;
    if (cases.empty()) throw std::runtime_error("record before the first case: " + text);
    GoldenCase& c = cases.back();
    std::string name;
    std::size_t count = 0;
    line >> name >> count;
    if (kind == "in") {
      c.inputs[name] = read_numbers(line, count);
    } else if (kind == "exact") {
      c.expected[name] = read_numbers(line, count);
    } else if (kind == "close") {
      c.expected[name] = read_numbers(line, count);
      c.bounds[name] = read_numbers(line, count);
    } else {
      throw std::runtime_error("unknown record '" + kind + "'");
    }
  }
  return cases;
}

// `actual` against the case's expected values: bit for bit for `exact` records (as
// spikegrad.testing.compare.assert_bitwise_equal: -0 == 0, NaN == NaN), within the recorded
// bound for `close` ones (as assert_close: non-finite values must match exactly).
template <typename real>
void compare(const GoldenCase& c, const std::string& name, const std::vector<real>& actual) {
  const std::vector<double>& expected = c.expected.at(name);
  const std::string where = c.title + ": " + name;
  if (actual.size() != expected.size()) {
    check(false, where + ": size " + std::to_string(actual.size()) + " != " + std::to_string(expected.size()));
    return;
  }
  const auto bound = c.bounds.find(name);
  int bad = 0;
  std::string first;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const double a = static_cast<double>(actual[i]);
    const double e = expected[i];
    bool ok;
    if (bound == c.bounds.end() || !std::isfinite(e)) {
      ok = (a == e) || (std::isnan(a) && std::isnan(e));
    } else {
      ok = std::fabs(a - e) <= bound->second[i];
    }
    if (!ok && bad++ == 0) {
      first = "[" + std::to_string(i) + "] got " + str(a) + ", expected " + str(e) +
              (bound != c.bounds.end() ? ", bound " + str(bound->second[i]) : std::string(", exact"));
    }
  }
  check(bad == 0, where + ": " + std::to_string(bad) + " of " + std::to_string(expected.size()) +
                      " differ; first " + first);
}

template <typename real>
std::vector<real> as(const std::vector<double>& values) {
  return std::vector<real>(values.begin(), values.end());  // exact: the file holds `real` values
}

// An optional upstream gradient: nullptr (zero) when the file has none, as the reference got None.
template <typename real>
const real* optional_input(const GoldenCase& c, const char* name, std::vector<real>& storage) {
  const auto found = c.inputs.find(name);
  if (found == c.inputs.end()) return nullptr;
  storage = as<real>(found->second);
  return storage.data();
}

template <typename real>
void run_neuron_case(const GoldenCase& c, int num_threads) {
  NeuronOptions options;
  options.charge = parse_charge(c.header.at("charge"));
  options.reset = parse_reset(c.header.at("reset"));
  options.scale = parse_scale(c.header.at("scale"));
  options.surrogate = parse_surrogate(c.header.at("surrogate"));
  options.smooth = c.header.at("smooth") == "1";
  options.detach_reset = c.header.at("detach_reset") == "1";
  const int64_t T = std::stoll(c.header.at("T"));
  const int64_t N = std::stoll(c.header.at("N"));

  const std::vector<real> threshold = as<real>(c.inputs.at("threshold"));
  const std::vector<real> sg_param = as<real>(c.inputs.at("sg_param"));
  const std::vector<real> v_init = as<real>(c.inputs.at("v_init"));
  const std::vector<real> x = as<real>(c.inputs.at("x"));
  NeuronParams<real> params;
  params.T = T;
  params.N = N;
  params.decay = static_cast<real>(c.inputs.at("decay").at(0));
  params.v_reset = static_cast<real>(c.inputs.at("v_reset").at(0));
  params.threshold = threshold.data();
  params.sg_param = sg_param.data();
  params.v_init = v_init.data();

  const std::size_t TN = static_cast<std::size_t>(T * N);
  std::vector<real> output(TN), membrane(TN), v_last(static_cast<std::size_t>(N));
  neuron_forward_cpu(options, params, x.data(), output.data(), membrane.data(), v_last.data(), num_threads);
  compare(c, "output", output);
  compare(c, "membrane", membrane);
  compare(c, "v_last", v_last);

  std::vector<real> g_out_storage, g_mem_storage, g_v_storage;
  const real* grad_output = optional_input(c, "grad_output", g_out_storage);
  const real* grad_membrane = optional_input(c, "grad_membrane", g_mem_storage);
  const real* grad_v_last = optional_input(c, "grad_v_last", g_v_storage);

  std::vector<real> grad_x(TN), grad_v_init(static_cast<std::size_t>(N));
  std::vector<double> grad_decay(1), grad_threshold(static_cast<std::size_t>(T)),
      grad_sg_param(static_cast<std::size_t>(T));
  std::vector<double> workspace(neuron_backward_workspace_size(T, N));
  neuron_backward_cpu(options, params, x.data(), grad_output, grad_membrane, grad_v_last, grad_x.data(),
                      grad_v_init.data(), grad_decay.data(), grad_threshold.data(), grad_sg_param.data(),
                      workspace.data(), num_threads);
  compare(c, "grad_x", grad_x);
  compare(c, "grad_v_init", grad_v_init);
  compare(c, "grad_decay", grad_decay);
  compare(c, "grad_threshold", grad_threshold);
  compare(c, "grad_sg_param", grad_sg_param);
}

// DS-ATGO: the adaptive forward, then its backward, neuron_backward_cpu with the per-step thresholds
// and widths this forward recorded (they are detached statistics: no gradient of their own).
template <typename real>
void run_adaptive_case(const GoldenCase& c, int num_threads) {
  NeuronOptions options;  // scale absolute, surrogate rect, no smooth mode: the DS-ATGO preset
  options.charge = parse_charge(c.header.at("charge"));
  options.reset = parse_reset(c.header.at("reset"));
  options.detach_reset = c.header.at("detach_reset") == "1";
  const int64_t T = std::stoll(c.header.at("T"));
  const int64_t N = std::stoll(c.header.at("N"));

  const std::vector<real> v_init = as<real>(c.inputs.at("v_init"));
  const std::vector<real> x = as<real>(c.inputs.at("x"));
  AdaptiveParams<real> adaptive;
  adaptive.T = T;
  adaptive.N = N;
  adaptive.decay = static_cast<real>(c.inputs.at("decay").at(0));
  adaptive.v_reset = static_cast<real>(c.inputs.at("v_reset").at(0));
  adaptive.v_init = v_init.data();
  adaptive.threshold_mode = parse_threshold_mode(c.header.at("threshold_mode"));
  adaptive.f_c = c.inputs.at("f_c").at(0);
  adaptive.v_th = c.inputs.at("v_th").at(0);
  adaptive.tgo = c.header.at("tgo") == "1";
  adaptive.tgo_driver = parse_tgo_driver(c.header.at("tgo_driver"));
  adaptive.width = c.inputs.at("width").at(0);

  const std::size_t TN = static_cast<std::size_t>(T * N);
  const std::size_t steps = static_cast<std::size_t>(T);
  std::vector<real> output(TN), membrane(TN), v_last(static_cast<std::size_t>(N)), threshold(steps),
      width(steps);
  std::vector<double> mean(steps), std_dev(steps), statistics_workspace(adaptive_workspace_size(N));
  adaptive_forward_cpu(options, adaptive, x.data(), output.data(), membrane.data(), v_last.data(),
                       threshold.data(), width.data(), mean.data(), std_dev.data(), nullptr,
                       statistics_workspace.data(), num_threads);
  compare(c, "output", output);
  compare(c, "membrane", membrane);
  compare(c, "v_last", v_last);
  compare(c, "threshold", threshold);
  compare(c, "sg_param", width);
  compare(c, "mean", mean);
  compare(c, "std", std_dev);

  NeuronParams<real> params;
  params.T = T;
  params.N = N;
  params.decay = adaptive.decay;
  params.v_reset = adaptive.v_reset;
  params.threshold = threshold.data();
  params.sg_param = width.data();
  params.v_init = v_init.data();
  std::vector<real> g_out_storage, g_mem_storage, g_v_storage;
  std::vector<real> grad_x(TN), grad_v_init(static_cast<std::size_t>(N));
  std::vector<double> grad_decay(1), grad_threshold(steps), grad_width(steps);
  std::vector<double> workspace(neuron_backward_workspace_size(T, N));
  neuron_backward_cpu(options, params, x.data(), optional_input(c, "grad_output", g_out_storage),
                      optional_input(c, "grad_membrane", g_mem_storage),
                      optional_input(c, "grad_v_last", g_v_storage), grad_x.data(), grad_v_init.data(),
                      grad_decay.data(), grad_threshold.data(), grad_width.data(), workspace.data(), num_threads);
  compare(c, "grad_x", grad_x);
  compare(c, "grad_v_init", grad_v_init);
  compare(c, "grad_decay", grad_decay);
}

// The circulate-firing multi-level neuron, forward and backward.
template <typename real>
void run_multilevel_case(const GoldenCase& c, int num_threads) {
  MultilevelOptions options;
  options.surrogate = parse_level_surrogate(c.header.at("surrogate"));
  options.smooth = c.header.at("smooth") == "1";
  options.detach_reset = c.header.at("detach_reset") == "1";
  const int64_t T = std::stoll(c.header.at("T"));
  const int64_t N = std::stoll(c.header.at("N"));

  const std::vector<real> a = as<real>(c.inputs.at("a"));
  const std::vector<real> v_init = as<real>(c.inputs.at("v_init"));
  const std::vector<real> x = as<real>(c.inputs.at("x"));
  MultilevelParams<real> params;
  params.T = T;
  params.N = N;
  params.decay = static_cast<real>(c.inputs.at("decay").at(0));
  params.theta_p = static_cast<real>(c.inputs.at("theta_p").at(0));
  params.theta_n = static_cast<real>(c.inputs.at("theta_n").at(0));
  params.k_p = std::stoi(c.header.at("k_p"));
  params.k_n = std::stoi(c.header.at("k_n"));
  params.a = a.data();
  params.v_init = v_init.data();

  const std::size_t TN = static_cast<std::size_t>(T * N);
  std::vector<real> output(TN), membrane(TN), v_last(static_cast<std::size_t>(N));
  multilevel_forward_cpu(options, params, x.data(), output.data(), membrane.data(), v_last.data(), num_threads);
  compare(c, "output", output);
  compare(c, "membrane", membrane);
  compare(c, "v_last", v_last);

  std::vector<real> g_out_storage, g_mem_storage, g_v_storage;
  std::vector<real> grad_x(TN), grad_v_init(static_cast<std::size_t>(N));
  std::vector<double> grad_decay(1), grad_a(static_cast<std::size_t>(T));
  std::vector<double> workspace(multilevel_backward_workspace_size(T, N));
  multilevel_backward_cpu(options, params, x.data(), optional_input(c, "grad_output", g_out_storage),
                          optional_input(c, "grad_membrane", g_mem_storage),
                          optional_input(c, "grad_v_last", g_v_storage), grad_x.data(), grad_v_init.data(),
                          grad_decay.data(), grad_a.data(), workspace.data(), num_threads);
  compare(c, "grad_x", grad_x);
  compare(c, "grad_v_init", grad_v_init);
  compare(c, "grad_decay", grad_decay);
  // the span surrogate's height is a constant: the reference has no dL/da, the file no record
  if (options.surrogate == LevelSurrogate::Tsg) {
    compare(c, "grad_a", grad_a);
  } else {
    check(c.expected.count("grad_a") == 0, c.title + ": a span case records grad_a");
  }
}

// The PNB loss's per-(level, sign) partial sums S_w, S_hw.
template <typename real>
void run_pnb_case(const GoldenCase& c, int num_threads) {
  const int K = std::stoi(c.header.at("K"));
  const int64_t count = std::stoll(c.header.at("count"));
  const std::vector<real> h = as<real>(c.inputs.at("h"));
  check(h.size() == static_cast<std::size_t>(count), c.title + ": count does not match h");
  std::vector<double> sums(static_cast<std::size_t>(K) * 4), workspace(pnb_workspace_size(count, K));
  pnb_partial_sums_cpu<real>(h.data(), count, static_cast<real>(c.inputs.at("theta_p").at(0)),
                             static_cast<real>(c.inputs.at("theta_n").at(0)), K, sums.data(), workspace.data(),
                             num_threads);
  compare(c, "sums", sums);
}

template <typename real>
void run_case(const GoldenCase& c, int num_threads) {
  if (c.kernel == "neuron") {
    run_neuron_case<real>(c, num_threads);
  } else if (c.kernel == "adaptive") {
    run_adaptive_case<real>(c, num_threads);
  } else if (c.kernel == "multilevel") {
    run_multilevel_case<real>(c, num_threads);
  } else if (c.kernel == "pnb") {
    run_pnb_case<real>(c, num_threads);
  } else {
    throw std::runtime_error("unknown kernel '" + c.kernel + "'");
  }
}

// Runs every case with each OpenMP thread count; returns the number of cases run per kernel.
std::map<std::string, int> run_all(const std::vector<GoldenCase>& cases, std::initializer_list<int> thread_counts) {
  std::map<std::string, int> counts;
  for (const GoldenCase& c : cases) {
    try {
      for (int threads : thread_counts) {
        if (c.dtype == "float32") {
          run_case<float>(c, threads);
        } else if (c.dtype == "float64") {
          run_case<double>(c, threads);
        } else {
          throw std::runtime_error("unknown dtype");
        }
      }
      ++counts[c.kernel];
    } catch (const std::exception& error) {
      check(false, c.title + ": threw " + error.what());
    }
  }
  return counts;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s GOLDEN_FILE...\n", argv[0]);
    return 2;
  }
  std::vector<GoldenCase> cases;
  for (int i = 1; i < argc; ++i) {
    try {
      std::vector<GoldenCase> file_cases = read_golden(argv[i]);
      cases.insert(cases.end(), file_cases.begin(), file_cases.end());
    } catch (const std::exception& error) {
      std::fprintf(stderr, "FAIL: reading %s: %s\n", argv[i], error.what());
      return 1;
    }
  }
  // every kernel of the header must have its cases, or this test would pass on a missing file
  const std::map<std::string, int> minimum_cases{{"neuron", 30}, {"adaptive", 15}, {"multilevel", 15}, {"pnb", 10}};
  // every case with 1 and 3 OpenMP threads; then all cases again on 4 threads of our own at
  // once, each with its own buffers, which must give the same answers (the kernels keep no state)
  const std::map<std::string, int> counts = run_all(cases, {1, 3});
  for (const auto& [kernel, minimum] : minimum_cases) {
    const auto found = counts.find(kernel);
    const int count = found == counts.end() ? 0 : found->second;
    check(count >= minimum, "expected at least " + std::to_string(minimum) + " golden " + kernel +
                                " cases that run, found " + std::to_string(count));
  }
  std::vector<std::thread> callers;
  for (int k = 0; k < 4; ++k) callers.emplace_back([&cases] { run_all(cases, {1, 2}); });
  for (std::thread& caller : callers) caller.join();
  if (failures == 0) {
    std::string summary;
    for (const auto& [kernel, count] : counts) {
      summary += (summary.empty() ? "" : ", ") + std::to_string(count) + " " + kernel;
    }
    std::printf("test_golden: %s cases match the reference (also on 4 threads at once)\n", summary.c_str());
  }
  return failures == 0 ? 0 : 1;
}
