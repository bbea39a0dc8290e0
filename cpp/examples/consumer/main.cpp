// main.cpp — the smallest program on an installed spikegrad: two LIF neurons over three steps,
// checked against the trajectory worked by hand, and the error for an invalid shape.
#include <spikegrad/spikegrad.hpp>

#include <cstdio>
#include <stdexcept>

int main() {
  // T = 3 steps, N = 2 neurons, time-major: x[t * N + n]
  const float x[3 * 2] = {1.0f, 0.5f,   // t = 0: h = 1 (fires, reset to 0), 0.5
                          0.5f, 0.5f,   // t = 1: h = 0.5, 0.5 * 0.5 + 0.5 = 0.75
                          0.0f, 0.75f}; // t = 2: h = 0.25, 0.5 * 0.75 + 0.75 = 1.125 (fires)
  const float threshold[3] = {1.0f, 1.0f, 1.0f}, sg_param[3] = {1.0f, 1.0f, 1.0f};
  const float v_init[2] = {0.0f, 0.0f};
  float output[3 * 2], v_last[2];

  spikegrad::NeuronOptions options;  // charge "mul": h = lam * v + x; hard reset; H(h - theta)
  spikegrad::NeuronParams<float> params;
  params.T = 3;
  params.N = 2;
  params.decay = 0.5f;
  params.threshold = threshold;
  params.sg_param = sg_param;
  params.v_init = v_init;
  spikegrad::neuron_forward_cpu(options, params, x, output, nullptr, v_last);

  const float expected[3 * 2] = {1, 0, 0, 0, 0, 1};
  for (int i = 0; i < 6; ++i) {
    if (output[i] != expected[i]) {
      std::fprintf(stderr, "output[%d] = %g, expected %g\n", i, output[i], expected[i]);
      return 1;
    }
  }
  if (v_last[0] != 0.25f || v_last[1] != 0.0f) {
    std::fprintf(stderr, "v_last = %g %g, expected 0.25 0\n", v_last[0], v_last[1]);
    return 1;
  }

  params.T = 0;  // invalid: the library throws std::invalid_argument naming the argument
  try {
    spikegrad::neuron_forward_cpu(options, params, x, output, nullptr, v_last);
    std::fprintf(stderr, "T = 0 was accepted\n");
    return 1;
  } catch (const std::invalid_argument& error) {
    std::printf("consumer: spikegrad works (T = 0 rejected: %s)\n", error.what());
  }
  return 0;
}
