//! Finds libtorch (LIBTORCH, which .cargo/config.toml sets to the project's venv), compiles
//! the one piece of libtorch C++ that tch does not expose: the guided-backprop autograd
//! function (`src/explain/guided.cpp`), with the same headers and ABI flag as tch's own C++,
//! and tells the crates that link binaries where libtorch's `lib` directory is (they set
//! the rpath with ../link-libtorch.rs, as this crate does for its unit tests). Also embeds
//! the builtin models that exist in assets/ (a cfg per model).
use std::path::PathBuf;

include!("../link-libtorch.rs");

/// Builtin models embedded with include_bytes!: (cfg name, file in assets/).
const ASSETS: &[(&str, &str)] = &[
    ("asset_efficientnet_lite0", "efficientnet-lite0.safetensors"),
    ("asset_mnist", "mnist-tiny-cnn.safetensors"),
    ("asset_fashion_mnist", "fashion-mnist-tiny-cnn.safetensors"),
];

fn main() {
    for (cfg, file) in ASSETS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        let path = format!("../../assets/{file}");
        if std::path::Path::new(&path).exists() {
            println!("cargo:rustc-cfg={cfg}");
        }
    }
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../../assets");
    println!("cargo:rerun-if-changed=../link-libtorch.rs");
    println!("cargo:rerun-if-changed=src/explain/guided.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let Some(root) = std::env::var_os("LIBTORCH") else {
        panic!(
            "LIBTORCH is not set: run `make setup` (it links .venv/libtorch, which \
             .cargo/config.toml names), or set LIBTORCH to a libtorch 2.11 directory"
        );
    };
    let root = PathBuf::from(root);
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .file("src/explain/guided.cpp")
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        // libtorch's headers warn a lot under -Wextra; they are not this project's code.
        .warnings(false)
        .flag_if_supported("-Wno-unused-parameter")
        .compile("glassbox_guided");
    // The libtorch version, for `glassbox --version`: PyTorch's version.py (PyPI wheels) or
    // build-version (libtorch archives).
    let version = std::fs::read_to_string(root.join("version.py"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("__version__ = ")
                    .map(|v| v.trim_matches(['\'', '"']).to_string())
            })
        })
        .or_else(|| {
            std::fs::read_to_string(root.join("build-version"))
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "(version unknown)".to_string());
    println!("cargo:rustc-env=GLASSBOX_LIBTORCH_VERSION={version}");
    let lib = root.join("lib");
    let lib = lib.canonicalize().unwrap_or(lib);
    // For the dependent crates' build scripts: DEP_GLASSBOX_ENGINE_LIBTORCH_LIB.
    println!("cargo:libtorch_lib={}", lib.display());
    link_libtorch(&lib);
}
