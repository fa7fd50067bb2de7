#pragma once
// The parity harness's second half for the CUDA backend (built with INN_TEST_CUDA): a network
// whose modules all have device twins is run again through inn::cuda::network, from device
// buffers through the device-pointer API, and compared with the same golden values and
// tolerances. Compiled by g++, the device is thrust's host system; by nvcc, the GPU.

#include <inn/cuda.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace inn::test {

template <Scalar T> struct device_batch {
    cuda::device_buffer<T> buf;
    index_t rows = 0, cols = 0;
};

template <Scalar T> device_batch<T> to_device(const cuda::context& ctx, const row_matrix<T>& m) {
    return {cuda::upload(ctx, m.data(), m.size()), m.rows(), m.cols()};
}
template <Scalar T> row_matrix<T> to_host(const cuda::context& ctx, const device_batch<T>& d) {
    row_matrix<T> m(d.rows, d.cols);
    cuda::copy_to_host(ctx, d.buf.data(), m.data(), m.size());
    ctx.synchronize();
    return m;
}

/// Runs `read` through the device network in one direction; returns outputs and log-dets.
template <bool Forward, class Net, Scalar T>
std::pair<std::vector<row_matrix<T>>, vector<T>>
run_on_device(cuda::network<Net>& g, const std::vector<row_matrix<T>>& read,
              const std::vector<row_matrix<T>>& c, int n_write, auto write_cols) {
    const cuda::context& ctx = g.device_context();
    const index_t batch = read.empty() ? 0 : read[0].rows();
    std::vector<device_batch<T>> in, cond, out;
    std::vector<cuda::dcview<T>> in_v, cond_v;
    std::vector<cuda::dview<T>> out_v;
    for (const auto& m : read)
        in.push_back(to_device(ctx, m));
    for (const auto& m : c)
        cond.push_back(to_device(ctx, m));
    for (int i = 0; i < n_write; ++i)
        out.push_back({cuda::device_buffer<T>(batch * write_cols(i)), batch, write_cols(i)});
    for (auto& d : in)
        in_v.push_back({d.buf.data(), d.cols});
    for (auto& d : cond)
        cond_v.push_back({d.buf.data(), d.cols});
    for (auto& d : out)
        out_v.push_back({d.buf.data(), d.cols});
    device_batch<T> ljd{cuda::device_buffer<T>(batch), batch, 1};
    if constexpr (Forward)
        g.forward_into(batch, in_v, out_v, ljd.buf.data(), cond_v);
    else
        g.inverse_into(batch, in_v, out_v, ljd.buf.data(), cond_v);
    std::vector<row_matrix<T>> res;
    for (auto& d : out)
        res.push_back(to_host(ctx, d));
    const row_matrix<T> l = to_host(ctx, ljd);
    return {std::move(res), vector<T>(Eigen::Map<const vector<T>>(l.data(), batch))};
}

} // namespace inn::test
