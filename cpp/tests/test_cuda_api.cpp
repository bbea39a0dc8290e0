// test_cuda_api.cpp — spikegrad::cuda without a GPU: the launchers link (every .cu compiled), the
// host twin of the device's float64 sum order, argument checks that come before any device call,
// workspace sizes. Run: ctest --test-dir build-cpp -R test_cuda_api.
#include <spikegrad/cuda.hpp>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace sc = spikegrad::cuda;

#define CHECK(condition)                                                   \
  do {                                                                     \
    if (!(condition)) {                                                    \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
      std::exit(1);                                                        \
    }                                                                      \
  } while (0)

template <typename F>
std::string invalid_argument_message(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return "";
}

int main() {
  // The order: thread k adds values k, k + 256, ...; the warp trees pair lanes 16 apart, then 8,
  // 4, 2, 1. With values {1, 1e-16, -1} (threads 0, 1, 2): lane 0 = (v0 + v2) + v1 = 1e-16,
  // where left-to-right summation gives (1 + 1e-16) - 1 = 0.
  const double three[] = {1.0, 1e-16, -1.0};
  CHECK(sc::ordered_device_sum(three, 3) == 1e-16);
  // thread 0 adds values 0 and 256 sequentially, before any tree: (1 + -1) = 0, then + 1e-16
  // from thread 1; whereas values 0 and 1 paired first would give (1 + 1e-16) - 1 = 0.
  std::vector<double> wide(257, 0.0);
  wide[0] = 1.0;
  wide[1] = 1e-16;
  wide[256] = -1.0;
  CHECK(sc::ordered_device_sum(wide.data(), 257) == 1e-16);
  std::vector<double> exact(1000);
  double expected = 0;
  for (int i = 0; i < 1000; ++i) {
    exact[static_cast<std::size_t>(i)] = i;
    expected += i;
  }
  CHECK(sc::ordered_device_sum(exact.data(), 1000) == expected);  // integers: any order is exact
  CHECK(sc::ordered_device_sum(exact.data(), 0) == 0.0);

  // argument checks before any device access: T < 1, null buffers
  spikegrad::NeuronOptions options;
  sc::NeuronDeviceParams params;
  params.T = 0;
  params.N = 4;
  const std::string message = invalid_argument_message(
      [&] { sc::neuron_forward(options, sc::DType::Float32, params, nullptr, nullptr, nullptr, nullptr, nullptr); });
  CHECK(message.find("T >= 1") != std::string::npos);
  // the siblings of the CPU launchers check the same, with the same message
  spikegrad::NeuronParams<float> sibling;
  sibling.T = 0;
  sibling.N = 4;
  CHECK(invalid_argument_message([&] {
          spikegrad::neuron_forward_cuda(options, sibling, nullptr, nullptr, nullptr, nullptr);
        }) == message);
  CHECK(invalid_argument_message([&] {
          spikegrad::neuron_backward_cuda(options, sibling, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, nullptr, nullptr, nullptr);
        }) == message);
  sc::MultilevelDeviceParams multilevel;
  multilevel.T = 0;
  CHECK(!invalid_argument_message([&] {
           sc::multilevel_forward({}, sc::DType::Float64, multilevel, nullptr, nullptr, nullptr, nullptr, nullptr);
         }).empty());
  CHECK(invalid_argument_message([&] {
          sc::pnb_partial_sums(sc::DType::Float32, nullptr, 10, 1.0, 1.0, 0, nullptr, nullptr, nullptr);
        }).find("k must be >= 1") != std::string::npos);
  sc::AdaptiveDeviceParams adaptive;
  adaptive.T = 1;
  adaptive.N = 1;
  CHECK(invalid_argument_message([&] {
          sc::adaptive_forward(options, sc::DType::Float32, adaptive, nullptr, nullptr, nullptr, nullptr, nullptr,
                               nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
        }).find("N >= 2") != std::string::npos);

  // workspace: [2T + 1] rows of one double per 256 neurons, then ceil(T / chunk) - 2 checkpoint
  // rows (chunks of 8 steps, 4 for float64)
  CHECK(sc::neuron_backward_workspace_bytes(sc::DType::Float32, 8, 256) == 8 * 17);
  CHECK(sc::neuron_backward_workspace_bytes(sc::DType::Float32, 8, 257) == 8 * 17 * 2);
  CHECK(sc::neuron_backward_workspace_bytes(sc::DType::Float16, 24, 10) == 8 * 49 + 4 * 10);
  CHECK(sc::neuron_backward_workspace_bytes(sc::DType::Float64, 24, 10) == 8 * 49 + 8 * 40);  // chunks of 4
  CHECK(sc::neuron_backward_workspace_bytes(sc::DType::Float64, 0, 10) == 0);
  CHECK(spikegrad::neuron_backward_workspace_bytes_cuda<float>(24, 10) ==
        sc::neuron_backward_workspace_bytes(sc::DType::Float16, 24, 10));
  CHECK(spikegrad::neuron_backward_workspace_bytes_cuda<double>(24, 10) == 8 * 49 + 8 * 40);
  CHECK(sc::multilevel_backward_workspace_bytes(sc::DType::Float32, 4, 300) == 8 * 5 * 2);
  CHECK(sc::state_size(sc::DType::BFloat16) == 4);
  std::puts("test_cuda_api: ok");
  return 0;
}
