// tests/test_parity_coupling.cpp compiled by nvcc for the GPU (inn_cuda_tests; the golden files run on the
// device through INN_TEST_CUDA, tests/support/device_parity.hpp).
#include "../test_parity_coupling.cpp"
