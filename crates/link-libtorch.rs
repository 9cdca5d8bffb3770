// Shared by the build scripts of every crate that links a binary (the engine's unit tests,
// the app's, the `glassbox` and `glassbox-bench` binaries and the integration tests), with
// `include!`: the binary finds libtorch by itself (an rpath to its `lib` directory), and
// `libtorch_cuda.so` (when present) is linked explicitly, so that CUDA is seen at run time
// even though no symbol of it is referenced directly.

/// Prints the link arguments for libtorch's `lib` directory.
fn link_libtorch(lib: &std::path::Path) {
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{}", lib.display());
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// In a crate that depends on glassbox-engine: libtorch's `lib` directory as the engine's
/// build script found it (its `links` metadata).
#[allow(dead_code)]
fn link_libtorch_of_engine() {
    let lib = std::env::var_os("DEP_GLASSBOX_ENGINE_LIBTORCH_LIB")
        .expect("glassbox-engine's build script names libtorch's lib directory");
    link_libtorch(std::path::Path::new(&lib));
}
