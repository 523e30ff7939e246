{
  "targets": [
    {
      "target_name": "node_kvm",
      "sources": [
        "native/base/args.cc",
        "native/base/buffers.cc",
        "native/base/convert.cc",
        "native/base/errors.cc",
        "native/base/ioctl.cc",
        "native/addon.cc",
        "native/kick.cc",
        "native/kvm.cc",
        "native/memory.cc",
        "native/state.cc",
        "native/vm.cc",
        "native/vcpu.cc",
        "native/vcpu_core.cc",
        "native/eventfd.cc",
        "native/rings.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-fexceptions"],
      "ldflags": ["-pthread"],
      "libraries": ["-ldl"]
    }
  ]
}
