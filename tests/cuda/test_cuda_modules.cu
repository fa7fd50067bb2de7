// tests/test_cuda_modules.cpp compiled by nvcc for the GPU (inn_cuda_tests).
#include "../test_cuda_modules.cpp"
