//! Generates the shim for `CUDASTUB_MAJOR` (default 12) from ../cuda-api.yaml.

fn main() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cuda-api.yaml");
    if let Err(e) = cudastub_codegen::emit::shim::build(&manifest, 12) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
