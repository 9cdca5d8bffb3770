//! Makes the binary find libtorch by itself: an rpath to libtorch's `lib` directory,
//! and an explicit link to `libtorch_cuda.so` (when present) so that CUDA is seen at
//! run time even though no symbol of it is referenced directly.
use std::path::PathBuf;

/// Builtin models embedded with include_bytes!: (cfg name, file in assets/).
const ASSETS: &[(&str, &str)] = &[
    ("asset_efficientnet_lite0", "efficientnet-lite0.safetensors"),
    ("asset_mnist", "mnist-tiny-cnn.safetensors"),
    ("asset_fashion_mnist", "fashion-mnist-tiny-cnn.safetensors"),
];

fn main() {
    for (cfg, file) in ASSETS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        let path = format!("assets/{file}");
        if std::path::Path::new(&path).exists() {
            println!("cargo:rustc-cfg={cfg}");
        }
    }
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=assets");
    let Some(root) = std::env::var_os("LIBTORCH") else {
        return;
    };
    let lib = PathBuf::from(root).join("lib");
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{}", lib.display());
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
