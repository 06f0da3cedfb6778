// graph: stream capture of H2D copy -> two kernels -> memset -> kernel ->
// D2H copy into a CUDA graph, instantiated once and replayed 100 times; an
// accumulator that the graph never resets shows that every replay ran. Then
// the same graph is rebuilt by hand from explicit nodes (cudaGraphAddKernelNode
// etc.) and replayed again. Last, the captured graph is cloned and nested in
// another graph as a child node, and launched after its host input changed.
// Results are checked exactly on the host.
#include <vector>
#include "common.h"

constexpr int kN = 1 << 16;
constexpr int kReplays = 100;

__global__ void affine(const int *in, int *x, int n) {  // x = 2*in + 1
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = 2 * in[i] + 1;
}

__global__ void accumulate(const int *x, long long *acc, int n) {  // acc += x
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) acc[i] += x[i];
}

__global__ void square_into(const int *x, int *y, int n) {  // y += x*x (y zeroed first)
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += x[i] * x[i];
}

int main() {
    print_versions("graph");
    std::vector<int> in(kN);
    for (int i = 0; i < kN; ++i) in[i] = (i * 37) % 1001 - 500;
    int *h_in, *h_y;
    CHECK(cudaMallocHost(&h_in, kN * sizeof(int)));
    CHECK(cudaMallocHost(&h_y, kN * sizeof(int)));
    for (int i = 0; i < kN; ++i) h_in[i] = in[i];
    int *d_in, *d_x, *d_y;
    long long *d_acc;
    CHECK(cudaMalloc(&d_in, kN * sizeof(int)));
    CHECK(cudaMalloc(&d_x, kN * sizeof(int)));
    CHECK(cudaMalloc(&d_y, kN * sizeof(int)));
    CHECK(cudaMalloc(&d_acc, kN * sizeof(long long)));
    CHECK(cudaMemset(d_acc, 0, kN * sizeof(long long)));
    CHECK(cudaDeviceSynchronize());

    cudaStream_t stream;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const int threads = 256, blocks = (kN + threads - 1) / threads;

    cudaGraph_t graph;
    CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    cudaStreamCaptureStatus capturing;
    CHECK(cudaStreamIsCapturing(stream, &capturing));
    CHECK(cudaMemcpyAsync(d_in, h_in, kN * sizeof(int), cudaMemcpyHostToDevice, stream));
    affine<<<blocks, threads, 0, stream>>>(d_in, d_x, kN);
    CHECK_LAUNCH();
    accumulate<<<blocks, threads, 0, stream>>>(d_x, d_acc, kN);
    CHECK_LAUNCH();
    CHECK(cudaMemsetAsync(d_y, 0, kN * sizeof(int), stream));
    square_into<<<blocks, threads, 0, stream>>>(d_x, d_y, kN);
    CHECK_LAUNCH();
    CHECK(cudaMemcpyAsync(h_y, d_y, kN * sizeof(int), cudaMemcpyDeviceToHost, stream));
    CHECK(cudaStreamEndCapture(stream, &graph));
    size_t nodes = 0;
    CHECK(cudaGraphGetNodes(graph, nullptr, &nodes));
    std::printf("graph: captured (status while capturing: %s), %zu nodes\n",
                capturing == cudaStreamCaptureStatusActive ? "active" : "NOT active", nodes);

    cudaGraphExec_t exec;
    CHECK(cudaGraphInstantiate(&exec, graph, 0));
    CHECK(cudaGraphUpload(exec, stream));
    for (int r = 0; r < kReplays; ++r) CHECK(cudaGraphLaunch(exec, stream));
    CHECK(cudaStreamSynchronize(stream));

    std::vector<long long> acc(kN);
    CHECK(cudaMemcpy(acc.data(), d_acc, kN * sizeof(long long), cudaMemcpyDeviceToHost));
    long bad = 0;
    for (int i = 0; i < kN; ++i) {
        long long x = 2LL * in[i] + 1;
        if (acc[i] != kReplays * x || h_y[i] != int(x * x)) ++bad;
    }
    std::printf("graph: %d replays: bad=%ld acc=%016llx y=%016llx\n", kReplays, bad,
                (unsigned long long)fnv1a(acc.data(), kN * sizeof(long long)),
                (unsigned long long)fnv1a(h_y, kN * sizeof(int)));

    // The same accumulate step as an explicit kernel node, replayed again.
    cudaGraph_t manual;
    CHECK(cudaGraphCreate(&manual, 0));
    void *args[] = {&d_x, &d_acc, (void *)&kN};
    cudaKernelNodeParams kp = {};
    kp.func = (void *)accumulate;
    kp.gridDim = dim3(blocks);
    kp.blockDim = dim3(threads);
    kp.kernelParams = args;
    cudaGraphNode_t knode;
    CHECK(cudaGraphAddKernelNode(&knode, manual, nullptr, 0, &kp));
    cudaGraphExec_t manual_exec;
    CHECK(cudaGraphInstantiate(&manual_exec, manual, 0));
    for (int r = 0; r < kReplays; ++r) CHECK(cudaGraphLaunch(manual_exec, stream));
    CHECK(cudaStreamSynchronize(stream));
    CHECK(cudaMemcpy(acc.data(), d_acc, kN * sizeof(long long), cudaMemcpyDeviceToHost));
    long bad2 = 0;
    for (int i = 0; i < kN; ++i)
        if (acc[i] != 2LL * kReplays * (2LL * in[i] + 1)) ++bad2;
    std::printf("graph: manual kernel node, %d more replays: bad=%ld acc=%016llx\n", kReplays, bad2,
                (unsigned long long)fnv1a(acc.data(), kN * sizeof(long long)));

    // The captured graph cloned and nested in another as a child node: its
    // copies read the host input as it is now, and write the host output.
    for (int i = 0; i < kN; ++i) h_in[i] = in[i] + 3;
    cudaGraph_t clone, parent;
    CHECK(cudaGraphClone(&clone, graph));
    CHECK(cudaGraphCreate(&parent, 0));
    cudaGraphNode_t child;
    CHECK(cudaGraphAddChildGraphNode(&child, parent, nullptr, 0, clone));
    cudaGraphExec_t parent_exec;
    CHECK(cudaGraphInstantiate(&parent_exec, parent, 0));
    CHECK(cudaGraphLaunch(parent_exec, stream));
    CHECK(cudaStreamSynchronize(stream));
    long bad3 = 0;
    for (int i = 0; i < kN; ++i) {
        long long x = 2LL * (in[i] + 3) + 1;
        if (h_y[i] != int(x * x)) ++bad3;
    }
    std::printf("graph: cloned, as a child node, new input: bad=%ld y=%016llx\n", bad3,
                (unsigned long long)fnv1a(h_y, kN * sizeof(int)));
    CHECK(cudaGraphExecDestroy(parent_exec));
    CHECK(cudaGraphDestroy(parent));
    CHECK(cudaGraphDestroy(clone));

    CHECK(cudaGraphExecDestroy(manual_exec));
    CHECK(cudaGraphDestroy(manual));
    CHECK(cudaGraphExecDestroy(exec));
    CHECK(cudaGraphDestroy(graph));
    CHECK(cudaStreamDestroy(stream));
    CHECK(cudaFree(d_in));
    CHECK(cudaFree(d_x));
    CHECK(cudaFree(d_y));
    CHECK(cudaFree(d_acc));
    CHECK(cudaFreeHost(h_in));
    CHECK(cudaFreeHost(h_y));
    bool ok = bad == 0 && bad2 == 0 && bad3 == 0 && nodes == 6 && capturing == cudaStreamCaptureStatusActive;
    std::printf("graph: %s\n", ok ? "OK" : "FAIL");
    return ok ? 0 : 1;
}
