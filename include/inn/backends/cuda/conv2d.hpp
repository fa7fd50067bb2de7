#pragma once
// nn::Conv2d on the device (nn/conv2d.hpp is the host layer: stride 1, zero padding, NCHW).
//
// Under nvcc (with INN_CUDA_CUDNN=1, below) the convolution is cuDNN's (cross-correlation, as
// PyTorch): descriptors and the algorithm are chosen once at construction, with the algorithm's
// workspace allocated then for batches of up to `cudnn_batch` samples; a call runs its batch in
// such slices, so it never allocates. Float runs without TF32 (CUDNN_FMA_MATH), as the host
// computes. Bias and a following activation (fused by the device nn::Sequential) are one
// element-wise pass.
//
// On the host system device memory is host memory: the layer keeps a copy of the host layer and
// calls its own kernel, then applies a fused activation as a separate pass (the same values:
// the activation reads the same pre-activation).

#include <algorithm>
#include <memory>
#include <type_traits>

#include "../../nn/conv2d.hpp"
#include "buffer.hpp"
#include "device.hpp"
#include "launch.hpp"
#include "nn.hpp"

// Under nvcc the layer needs cuDNN, which a program opts into with -DINN_CUDA_CUDNN=1 and by
// linking it (-lcudnn): it is a library of its own, beside the CUDA toolkit. Without it Conv2d
// has no device twin and the modules whose subnets use it have no device binding
// (cuda::runs_on_device is false for their networks).
#ifndef INN_CUDA_CUDNN
#define INN_CUDA_CUDNN 0
#endif
#if INN_CUDA_CUDNN && !INN_CUDA_DEVICE
#undef INN_CUDA_CUDNN
#define INN_CUDA_CUDNN 0 // the host system runs the host layer's kernel
#endif

#if INN_CUDA_CUDNN
#include <cudnn.h>

#include <map>
#include <mutex>
#include <string>
#endif

namespace inn::cuda {

/// y[b, o, p] = f(y[b, o, p] (+ bias[o])) over a batch of (Out, pixels) samples, in place.
template <Scalar S, class F> struct channel_bias_act {
    S* y;
    index_t ldy;
    const S* bias; // null: none
    index_t pixels, size;
    F f;
    INN_HD void operator()(index_t k) const {
        const index_t b = fast_div(k, size), q = k - b * size;
        S v = y[b * ldy + q];
        if (bias)
            v += bias[q / pixels];
        y[b * ldy + q] = f(v);
    }
};

#if INN_CUDA_CUDNN
inline void check(cudnnStatus_t e, const char* what) {
    if (e != CUDNN_STATUS_SUCCESS)
        throw cuda_error(std::string("inn::cuda: ") + what + ": " + cudnnGetErrorString(e));
}

/// One cuDNN handle per context, shared by the context's convolution layers (a handle is
/// costly: one per layer would be dozens per network).
class cudnn_handle {
  public:
    cudnn_handle() { check(cudnnCreate(&h_), "cudnnCreate"); }
    cudnn_handle(const cudnn_handle&) = delete;
    cudnn_handle& operator=(const cudnn_handle&) = delete;
    ~cudnn_handle() { cudnnDestroy(h_); }
    cudnnHandle_t get() const { return h_; }

    static std::shared_ptr<cudnn_handle> of(const context& ctx) {
        static std::mutex m;
        static std::map<const context*, std::weak_ptr<cudnn_handle>> handles;
        const std::lock_guard<std::mutex> lock(m);
        std::erase_if(handles, [](const auto& e) { return e.second.expired(); }); // gone contexts
        std::weak_ptr<cudnn_handle>& w = handles[&ctx];
        std::shared_ptr<cudnn_handle> h = w.lock();
        if (!h) {
            h = std::make_shared<cudnn_handle>();
            w = h;
        }
        return h;
    }

  private:
    cudnnHandle_t h_{};
};

/// The descriptors and algorithm of one convolution, and its workspace.
template <Scalar S> struct cudnn_convolution {
    static constexpr cudnnDataType_t type =
        std::is_same_v<S, float> ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;

    std::shared_ptr<cudnn_handle> handle;
    cudnnTensorDescriptor_t x_desc{}, y_desc{};
    cudnnFilterDescriptor_t w_desc{};
    cudnnConvolutionDescriptor_t conv_desc{};
    cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    device_buffer<unsigned char> workspace;
    int c_in, h, w, c_out, ho, wo;

    cudnn_convolution(const context& ctx, int In, int H, int W, int Out, int K, int P,
                      int max_batch)
        : handle(cudnn_handle::of(ctx)), c_in(In), h(H), w(W), c_out(Out), ho(H + 2 * P - K + 1),
          wo(W + 2 * P - K + 1) {
        check(cudnnCreateTensorDescriptor(&x_desc), "cudnnCreateTensorDescriptor");
        check(cudnnCreateTensorDescriptor(&y_desc), "cudnnCreateTensorDescriptor");
        check(cudnnCreateFilterDescriptor(&w_desc), "cudnnCreateFilterDescriptor");
        check(cudnnCreateConvolutionDescriptor(&conv_desc), "cudnnCreateConvolutionDescriptor");
        check(cudnnSetFilter4dDescriptor(w_desc, type, CUDNN_TENSOR_NCHW, Out, In, K, K),
              "cudnnSetFilter4dDescriptor");
        check(cudnnSetConvolution2dDescriptor(conv_desc, P, P, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                              type),
              "cudnnSetConvolution2dDescriptor");
        // No TF32: float results stay those of float arithmetic.
        check(cudnnSetConvolutionMathType(conv_desc, CUDNN_FMA_MATH),
              "cudnnSetConvolutionMathType");
        set_batch(max_batch, index_t(In) * H * W, index_t(Out) * ho * wo);
        // The fastest algorithm cuDNN's heuristics offer whose workspace stays modest.
        constexpr std::size_t cap = std::size_t(256) << 20;
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        int found = 0;
        check(cudnnGetConvolutionForwardAlgorithm_v7(handle->get(), x_desc, w_desc, conv_desc,
                                                     y_desc, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                     &found, perf),
              "cudnnGetConvolutionForwardAlgorithm_v7");
        std::size_t bytes = 0;
        for (int i = 0; i < found; ++i)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= cap) {
                algo = perf[i].algo;
                bytes = perf[i].memory;
                break;
            }
        workspace.resize(index_t(bytes));
    }
    cudnn_convolution(const cudnn_convolution&) = delete;
    cudnn_convolution& operator=(const cudnn_convolution&) = delete;
    ~cudnn_convolution() {
        cudnnDestroyConvolutionDescriptor(conv_desc);
        cudnnDestroyFilterDescriptor(w_desc);
        cudnnDestroyTensorDescriptor(y_desc);
        cudnnDestroyTensorDescriptor(x_desc);
    }

    // The batch descriptors for `n` samples with the given row strides (no allocation).
    void set_batch(int n, index_t ldx, index_t ldy) {
        check(cudnnSetTensor4dDescriptorEx(x_desc, type, n, c_in, h, w, int(ldx), h * w, w, 1),
              "cudnnSetTensor4dDescriptorEx");
        check(
            cudnnSetTensor4dDescriptorEx(y_desc, type, n, c_out, ho, wo, int(ldy), ho * wo, wo, 1),
            "cudnnSetTensor4dDescriptorEx");
    }

    /// y = conv(x) for `n` samples (at most the construction's max_batch).
    void run(const context& ctx, const S* x, index_t ldx, const S* weight, S* y, index_t ldy,
             int n) {
        set_batch(n, ldx, ldy);
        check(cudnnSetStream(handle->get(), ctx.stream()), "cudnnSetStream");
        // A smaller slice may want more workspace for the chosen algorithm: then none at all.
        std::size_t need = 0;
        check(cudnnGetConvolutionForwardWorkspaceSize(handle->get(), x_desc, w_desc, conv_desc,
                                                      y_desc, algo, &need),
              "cudnnGetConvolutionForwardWorkspaceSize");
        const bool fits = need <= std::size_t(workspace.size());
        const S one = 1, zero = 0;
        check(cudnnConvolutionForward(handle->get(), &one, x_desc, x, w_desc, weight, conv_desc,
                                      fits ? algo : CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                      fits ? workspace.data() : nullptr,
                                      fits ? need : std::size_t(0), &zero, y_desc, y),
              "cudnnConvolutionForward");
    }
};
#endif

/// Samples per cuDNN call (the workspace is sized for this many at construction).
inline constexpr index_t cudnn_batch = 256;

/// nn::Conv2d<In, Out, Kernel, Padding, Bias> on inputs of shape D.
template <Scalar S, dims D, int In, int Out, int Kernel, int Padding, bool Bias>
struct conv2d_layer {
    using host_type = typename nn::Conv2d<In, Out, Kernel, Padding, Bias>::template bind<S, D>;
    // The output shape from the parameters, not from host_type: instantiating the host layer
    // inside nn.hpp's requires-expression (Sequential's fusion test) trips nvcc 13's front end.
    static constexpr int Ho = D[1] + 2 * Padding - Kernel + 1, Wo = D[2] + 2 * Padding - Kernel + 1;
    static constexpr dims out = make_dims({Out, Ho, Wo});
    static constexpr index_t pixels = index_t(Ho) * Wo;
    static constexpr index_t out_size = out.size();

#if INN_CUDA_CUDNN
    device_buffer<S> weight{index_t(Out) * In * Kernel * Kernel};
    device_buffer<S> bias{Bias ? index_t(Out) : 0};
    std::unique_ptr<cudnn_convolution<S>> conv;

    conv2d_layer(const context& ctx, const host_type& h)
        : conv(std::make_unique<cudnn_convolution<S>>(ctx, In, D[1], D[2], Out, Kernel, Padding,
                                                      int(cudnn_batch))) {
        upload(ctx, h);
    }
    void upload(const context& ctx, const host_type& h) {
        copy_to_device(ctx, h.weight.data(), weight.data(), weight.size());
        if constexpr (Bias)
            copy_to_device(ctx, h.bias.data(), bias.data(), bias.size());
    }
    static constexpr index_t scratch_size(index_t) { return 0; } // the workspace is its own
#else
    host_type host; // host memory is device memory: the host layer runs as it is

    conv2d_layer(const context&, const host_type& h) : host(h) {}
    void upload(const context&, const host_type& h) { host = h; }
    static constexpr index_t scratch_size(index_t batch) {
        return nn::layer_scratch<host_type>(batch);
    }
#endif

    void forward(const context& ctx, dcview<S> x, dview<S> y, index_t batch, S* s) const {
        forward_act(ctx, x, y, batch, s, identity{});
    }

    template <class F>
    void forward_act(const context& ctx, dcview<S> x, dview<S> y, index_t batch, S* s, F f) const {
        if (batch <= 0)
            return;
#if INN_CUDA_CUDNN
        (void)s;
        for (index_t b = 0; b < batch; b += cudnn_batch)
            conv->run(ctx, x.data + b * x.stride, x.stride, weight.data(), y.data + b * y.stride,
                      y.stride, int(std::min(cudnn_batch, batch - b)));
        if (Bias || !std::is_same_v<F, identity>)
            for_each_index(ctx, batch * out_size,
                           channel_bias_act<S, F>{y.data, y.stride, Bias ? bias.data() : nullptr,
                                                  pixels, out_size, f});
#else
        host.forward(cview<S>{x.data, x.stride}, view<S>{y.data, y.stride}, batch, s);
        if constexpr (!std::is_same_v<F, identity>)
            for_each_index(ctx, batch * out_size,
                           channel_bias_act<S, F>{y.data, y.stride, nullptr, pixels, out_size, f});
#endif
    }
};

template <int In, int Out, int Kernel, int Padding, bool Bias>
constexpr bool layer_on_device<nn::Conv2d<In, Out, Kernel, Padding, Bias>> =
    !INN_CUDA_DEVICE || INN_CUDA_CUDNN;

#if !INN_CUDA_DEVICE || INN_CUDA_CUDNN
namespace detail {
template <int In, int Out, int Kernel, int Padding, bool Bias, Scalar S, dims D>
struct layer_impl<nn::Conv2d<In, Out, Kernel, Padding, Bias>, S, D> {
    using type = conv2d_layer<S, D, In, Out, Kernel, Padding, Bias>;
};
} // namespace detail
#endif

} // namespace inn::cuda
