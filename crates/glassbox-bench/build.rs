//! Makes this crate's binaries find libtorch by themselves (see ../link-libtorch.rs).
include!("../link-libtorch.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../link-libtorch.rs");
    link_libtorch_of_engine();
}
