// cuBLAS through the shims: SGEMM, GemmEx (FP16 inputs, FP32 compute) and a
// cuBLASLt matmul on seeded inputs. Prints the checksum of every result's
// bytes and the largest error against a host reference, so that a direct
// run and a run through the libcudart, libcublas and libcublasLt shims can
// be compared byte for byte.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_fp16.h>

#include <cmath>
#include <vector>

#include "common.h"

#define CHECK_BLAS(call)                                                      \
    do {                                                                      \
        cublasStatus_t check_st_ = (call);                                    \
        if (check_st_ != CUBLAS_STATUS_SUCCESS) {                             \
            std::printf("FAIL %s -> %s\n", #call,                             \
                        cublasGetStatusName(check_st_));                      \
            std::fflush(stdout);                                              \
            std::exit(1);                                                     \
        }                                                                     \
    } while (0)

static const int N = 256;

// C = A * B on the host, column-major, in double.
static double max_error(const std::vector<float> &a, const std::vector<float> &b,
                        const std::vector<float> &c) {
    double worst = 0;
    for (int j = 0; j < N; ++j)
        for (int i = 0; i < N; ++i) {
            double sum = 0;
            for (int k = 0; k < N; ++k) sum += double(a[k * N + i]) * double(b[j * N + k]);
            worst = std::fmax(worst, std::fabs(sum - c[j * N + i]));
        }
    return worst;
}

int main() {
    print_versions("cublas_gemm");
    int version = 0;
    std::vector<float> a(N * N), b(N * N), c(N * N);
    uint64_t seed = 42;
    for (auto &x : a) x = float(next_random(seed) % 2001) / 1000.0f - 1.0f;
    for (auto &x : b) x = float(next_random(seed) % 2001) / 1000.0f - 1.0f;
    std::vector<__half> ah(N * N), bh(N * N);
    for (int i = 0; i < N * N; ++i) {
        ah[i] = __float2half(a[i]);
        bh[i] = __float2half(b[i]);
    }
    const size_t bytes = sizeof(float) * N * N, half_bytes = sizeof(__half) * N * N;
    float *da, *db, *dc;
    __half *dah, *dbh;
    CHECK(cudaMalloc(&da, bytes));
    CHECK(cudaMalloc(&db, bytes));
    CHECK(cudaMalloc(&dc, bytes));
    CHECK(cudaMalloc(&dah, half_bytes));
    CHECK(cudaMalloc(&dbh, half_bytes));
    CHECK(cudaMemcpy(da, a.data(), bytes, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(db, b.data(), bytes, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dah, ah.data(), half_bytes, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dbh, bh.data(), half_bytes, cudaMemcpyHostToDevice));

    cublasHandle_t handle;
    CHECK_BLAS(cublasCreate(&handle));
    CHECK_BLAS(cublasGetVersion(handle, &version));
    std::printf("cublas_gemm: cuBLAS %d\n", version);
    // Deterministic: no atomics, the default (non-tensor-op-split) math.
    CHECK_BLAS(cublasSetAtomicsMode(handle, CUBLAS_ATOMICS_NOT_ALLOWED));
    const float one = 1.0f, zero = 0.0f;

    CHECK_BLAS(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, N, N, N, &one, da, N, db, N, &zero, dc, N));
    CHECK(cudaMemcpy(c.data(), dc, bytes, cudaMemcpyDeviceToHost));
    double err = max_error(a, b, c);
    std::printf("cublas_gemm: sgemm %dx%d fnv1a %016llx\n", N, N,
                (unsigned long long)fnv1a(c.data(), bytes));
    if (err > 1e-3) {
        std::printf("FAIL sgemm error %g\n", err);
        return 1;
    }

    CHECK_BLAS(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, N, N, N, &one, dah, CUDA_R_16F, N, dbh,
                            CUDA_R_16F, N, &zero, dc, CUDA_R_32F, N, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
    CHECK(cudaMemcpy(c.data(), dc, bytes, cudaMemcpyDeviceToHost));
    std::printf("cublas_gemm: gemmex fp16->fp32 fnv1a %016llx\n",
                (unsigned long long)fnv1a(c.data(), bytes));
    if (max_error(a, b, c) > 0.5) {
        std::printf("FAIL gemmex error %g\n", max_error(a, b, c));
        return 1;
    }

    // cuBLASLt: the same SGEMM through a matmul descriptor.
    cublasLtHandle_t lt;
    CHECK_BLAS(cublasLtCreate(&lt));
    cublasLtMatmulDesc_t desc;
    CHECK_BLAS(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasLtMatrixLayout_t la, lb, lc;
    CHECK_BLAS(cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, N, N, N));
    CHECK_BLAS(cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, N, N, N));
    CHECK_BLAS(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, N, N, N));
    CHECK(cudaMemset(dc, 0, bytes));
    CHECK_BLAS(cublasLtMatmul(lt, desc, &one, da, la, db, lb, &zero, dc, lc, dc, lc, nullptr, nullptr, 0, 0));
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(c.data(), dc, bytes, cudaMemcpyDeviceToHost));
    std::printf("cublas_gemm: cublasLt matmul fnv1a %016llx\n",
                (unsigned long long)fnv1a(c.data(), bytes));
    if (max_error(a, b, c) > 1e-3) {
        std::printf("FAIL cublasLt error %g\n", max_error(a, b, c));
        return 1;
    }
    CHECK_BLAS(cublasLtMatrixLayoutDestroy(la));
    CHECK_BLAS(cublasLtMatrixLayoutDestroy(lb));
    CHECK_BLAS(cublasLtMatrixLayoutDestroy(lc));
    CHECK_BLAS(cublasLtMatmulDescDestroy(desc));
    CHECK_BLAS(cublasLtDestroy(lt));
    CHECK_BLAS(cublasDestroy(handle));
    CHECK(cudaFree(da));
    CHECK(cudaFree(db));
    CHECK(cudaFree(dc));
    CHECK(cudaFree(dah));
    CHECK(cudaFree(dbh));
    std::printf("cublas_gemm: OK\n");
    return 0;
}
