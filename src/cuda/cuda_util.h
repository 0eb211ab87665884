// CUDA runtime and cuBLAS errors as Status, and device memory that frees itself. Internal to
// owf_cuda_model (host code, compiled by the C++ compiler).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdio>
#include <string>
#include <utility>

#include "owf/core/status.h"

namespace owf::cuda {

inline std::string ByteString(size_t bytes) {
  char s[32];
  std::snprintf(s, sizeof(s), "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return s;
}

// "<what> failed: cudaErrorX (description)". Clears the runtime's last error, so that a failed
// allocation is not reported again by the next launch check.
inline Status CudaError(const std::string& what, cudaError_t e) {
  cudaGetLastError();
  return Internal(what + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

inline Status CublasError(const std::string& what, cublasStatus_t s) {
  return Internal(what + " failed: " + cublasGetStatusName(s) + " (" + cublasGetStatusString(s) + ")");
}

inline Status CudaCheck(cudaError_t e, const std::string& what) {
  return e == cudaSuccess ? Status::Ok() : CudaError(what, e);
}

// Returns a Status naming the call when a CUDA runtime call fails.
#define OWF_CUDA_RETURN_IF_ERROR(call)                                            \
  do {                                                                            \
    const cudaError_t owf_cuda_error_ = (call);                                   \
    if (owf_cuda_error_ != cudaSuccess) return ::owf::cuda::CudaError(#call, owf_cuda_error_); \
  } while (0)

// `count` elements of T in device memory, freed on destruction.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Reset();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  ~DeviceBuffer() { Reset(); }

  void Reset() {
    if (p_ != nullptr) cudaFree(p_);
    p_ = nullptr;
    n_ = 0;
  }
  // Frees the old contents and allocates `count` elements (contents undefined).
  Status Allocate(size_t count, const std::string& what) {
    Reset();
    if (count == 0) return Status::Ok();
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, count * sizeof(T));
    if (e != cudaSuccess) return CudaError("cudaMalloc(" + ByteString(count * sizeof(T)) + " for " + what + ")", e);
    p_ = static_cast<T*>(p);
    n_ = count;
    return Status::Ok();
  }
  // Allocates when fewer than `count` elements are held (contents then undefined).
  Status Reserve(size_t count, const std::string& what) { return count <= n_ ? Status::Ok() : Allocate(count, what); }
  // Allocates `count` elements and copies them from host memory.
  Status Upload(const void* host, size_t count, const std::string& what) {
    OWF_RETURN_IF_ERROR(Allocate(count, what));
    if (count == 0) return Status::Ok();
    return CudaCheck(cudaMemcpy(p_, host, count * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy (" + what + ")");
  }

  T* get() const { return p_; }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace owf::cuda
