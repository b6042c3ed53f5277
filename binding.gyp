{
  "targets": [
    {
      "target_name": "netd_native",
      "sources": ["native/netd_native.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"]
    },
    {
      "target_name": "netd-cni-shim",
      "type": "executable",
      "sources": ["native/netd-cni-shim.c"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra"],
      "libraries": ["-lm"]
    }
  ]
}
