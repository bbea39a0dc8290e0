// usage.cpp — the 20-line usage example of docs/cpp.md, verbatim below this header (tests/ref/test_golden.py
// checks that they agree), built and run by CTest so that the documented example keeps compiling.
#include <spikegrad/spikegrad.hpp>
#include <vector>

int main() {
  const int64_t T = 100, N = 1000;                   // steps, neurons; arrays are [T, N]
  std::vector<float> x(T * N, 0.3f), out(T * N), v_last(N), v_init(N, 0.0f);
  std::vector<float> theta(T, 1.0f), width(T, 1.0f); // per-step threshold, surrogate width
  spikegrad::NeuronOptions opt;                      // mul charge, hard reset, rect surrogate
  opt.reset = spikegrad::parse_reset("soft");        // or spikegrad::Reset::Soft
  spikegrad::NeuronParams<float> p;
  p.T = T; p.N = N; p.decay = 0.9f;
  p.threshold = theta.data(); p.sg_param = width.data(); p.v_init = v_init.data();
  spikegrad::neuron_forward_cpu(opt, p, x.data(), out.data(), nullptr, v_last.data());

  std::vector<float> g_out(T * N, 1.0f), g_x(T * N), g_v_init(N);   // dL/do = 1
  std::vector<double> g_theta(T), g_width(T), ws(spikegrad::neuron_backward_workspace_size(T, N));
  double g_decay;
  spikegrad::neuron_backward_cpu(opt, p, x.data(), g_out.data(), nullptr, nullptr, g_x.data(),
                                 g_v_init.data(), &g_decay, g_theta.data(), g_width.data(), ws.data());
}
