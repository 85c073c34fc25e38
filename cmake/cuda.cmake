# The CUDA backend (resnet::cuda) is added here by the CUDA work; without nvcc the library is CPU-only.
