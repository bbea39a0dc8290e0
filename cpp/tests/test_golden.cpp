// test_golden.cpp — the C++ kernels against golden vectors of the NumPy reference, with no
// Python at test time: the forward bit for bit (within the stated bound in smooth mode), the
// backward within the bound recorded next to each expected value; also from several threads at once.
// Run: ctest --test-dir build -R test_golden. Regenerate the vectors: python tools/make_golden.py
// (the file format is the docstring of that script).
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

  // absent upstream gradients are passed as nullptr (zero), as the reference got None
  auto optional_input = [&](const char* name, std::vector<real>& storage) -> const real* {
    const auto found = c.inputs.find(name);
    if (found == c.inputs.end()) return nullptr;
    storage = as<real>(found->second);
    return storage.data();
  };
  std::vector<real> g_out_storage, g_mem_storage, g_v_storage;
  const real* grad_output = optional_input("grad_output", g_out_storage);
  const real* grad_membrane = optional_input("grad_membrane", g_mem_storage);
  const real* grad_v_last = optional_input("grad_v_last", g_v_storage);

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

// Runs every case with each OpenMP thread count; returns the number of neuron cases.
int run_all(const std::vector<GoldenCase>& cases, std::initializer_list<int> thread_counts) {
  int neuron_cases = 0;
  for (const GoldenCase& c : cases) {
    try {
      if (c.kernel == "neuron") {
        for (int threads : thread_counts) {
          if (c.dtype == "float32") {
            run_neuron_case<float>(c, threads);
          } else if (c.dtype == "float64") {
            run_neuron_case<double>(c, threads);
          } else {
            check(false, c.title + ": unknown dtype");
          }
        }
        ++neuron_cases;
      } else {
        check(false, c.title + ": unknown kernel '" + c.kernel + "'");
      }
    } catch (const std::exception& error) {
      check(false, c.title + ": threw " + error.what());
    }
  }
  return neuron_cases;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s GOLDEN_FILE\n", argv[0]);
    return 2;
  }
  std::vector<GoldenCase> cases;
  try {
    cases = read_golden(argv[1]);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "FAIL: reading %s: %s\n", argv[1], error.what());
    return 1;
  }
  // the file must hold cases, or this test would pass on an empty file
  check(cases.size() >= 30, "expected at least 30 golden cases, found " + std::to_string(cases.size()));
  // every case with 1 and 3 OpenMP threads; then all cases again on 4 threads of our own at
  // once, each with its own buffers, which must give the same answers (the kernels keep no state)
  const int neuron_cases = run_all(cases, {1, 3});
  std::vector<std::thread> callers;
  for (int k = 0; k < 4; ++k) callers.emplace_back([&cases] { run_all(cases, {1, 2}); });
  for (std::thread& caller : callers) caller.join();
  if (failures == 0) {
    std::printf("test_golden: %d neuron cases match the reference (also on 4 threads at once)\n", neuron_cases);
  }
  return failures == 0 ? 0 : 1;
}
