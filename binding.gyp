# CPU-only build of the addon with node-gyp: the same native sources as CMakeLists.txt, with
# native/no_cuda.cc in place of cuda/. CI builds it once (scripts/check-gyp.js) so it cannot rot.
{
  "targets": [
    {
      "target_name": "mamba_node",
      "sources": [
        "native/addon.cc",
        "native/check.cc",
        "native/tensor.cc",
        "native/ops/creation.cc",
        "native/ops/copy.cc",
        "native/ops/device.cc",
        "native/ops/selective_scan.cc",
        "native/ops/fused.cc",
        "native/ops/matmul.cc",
        "native/ops/elementwise.cc",
        "native/ops/shape.cc",
        "native/ops/reduce_extra.cc",
        "native/ops/adamw.cc",
        "native/cpu/parallel.cc",
        "native/cpu/creation_cpu.cc",
        "native/cpu/selective_scan_cpu.cc",
        "native/cpu/rmsnorm_cpu.cc",
        "native/cpu/conv1d_cpu.cc",
        "native/cpu/embedding_cpu.cc",
        "native/cpu/cross_entropy_cpu.cc",
        "native/cpu/softplus_bias_cpu.cc",
        "native/cpu/matmul_cpu.cc",
        "native/cpu/elementwise_cpu.cc",
        "native/cpu/shape_cpu.cc",
        "native/cpu/reduce_extra_cpu.cc",
        "native/cpu/adamw_cpu.cc",
        "native/no_cuda.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++14", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3"],
      "libraries": ["-lpthread"]
    }
  ]
}
