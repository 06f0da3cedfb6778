//! The plans of every major, from the repository's manifests, for the
//! client library to send calls by.

use cudastub_codegen::catalog::Catalog;
use cudastub_remote::plan::MajorPlan;

fn main() {
    let index = std::path::Path::new("../cuda-api.yaml");
    println!("cargo:rerun-if-changed={}", index.display());
    let catalog = match Catalog::load(index) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    for file in catalog.files() {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let mut majors: Vec<u32> = catalog.views().iter().map(|v| v.major).collect();
    majors.sort_unstable();
    majors.dedup();
    let plans: Vec<MajorPlan> = majors
        .into_iter()
        .map(|m| cudastub_codegen::remote::major_plan(&catalog, m))
        .collect();
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("plans.bin"), MajorPlan::encode_all(&plans)).expect("write the plans");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcudastub-remote.so");
}
