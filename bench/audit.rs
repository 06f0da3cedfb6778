//! Benchmark: how long auditing a library against the manifest takes, in
//! process, split into its parts. Run by `bench/audit.sh`, or:
//!
//!   cargo bench -p cudastub-tests --bench audit [-- LIBRARY [RUNS]]
//!
//! LIBRARY defaults to the real 13.5.37 runtime of the fixtures (458
//! exports, 0.8 MB); RUNS to 200. Each part is timed RUNS times after one
//! warm-up run; the median and the fastest run are printed in milliseconds.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cudastub_codegen::audit::{self, Report};
use cudastub_codegen::elf::ElfImage;
use cudastub_codegen::manifest;

/// Times `f` `runs` times after one warm-up run; returns (median, fastest).
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration) {
    black_box(f());
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    samples.sort();
    (samples[samples.len() / 2], samples[0])
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace root")
        .to_path_buf();
    // `cargo bench` passes `--bench`; the rest are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let library = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/fixtures/cuda13/lib/libcudart.so.13"));
    let runs: usize = args
        .get(1)
        .map_or(200, |r| r.parse().expect("RUNS must be a number"));
    let manifest_path = root.join("codegen/api/cudart.yaml");

    let m = manifest::load(&manifest_path).unwrap_or_else(|e| panic!("{e}"));
    let image =
        ElfImage::read(&library).unwrap_or_else(|e| panic!("{e} (run scripts/fetch-fixtures)"));
    let major = image
        .soname
        .as_deref()
        .and_then(|s| m.library.major_of_soname(s))
        .expect("the library's soname names a major of the manifest");
    let check = audit::against_manifest(&image, &m, major);
    assert!(
        check.is_clean(),
        "the benchmarked library should match the manifest: {:?}",
        check.differences
    );

    println!(
        "auditing {} ({} exports, {} bytes) against {} major {major}, {runs} runs",
        library.display(),
        image.exports.len(),
        std::fs::metadata(&library).map_or(0, |md| md.len()),
        manifest_path.display()
    );
    println!("| part | median ms | fastest ms |");
    println!("|---|---|---|");
    let row = |name: &str, (median, fastest): (Duration, Duration)| {
        println!("| {name} | {} | {} |", ms(median), ms(fastest));
    };
    row(
        "check against the manifest (`audit::against_manifest`)",
        time(runs, || audit::against_manifest(&image, &m, major)),
    );
    row(
        "read and parse the ELF file (`ElfImage::read`)",
        time(runs, || ElfImage::read(&library).expect("reads")),
    );
    row(
        "load the manifest (`manifest::load`)",
        time(runs.min(50), || {
            manifest::load(&manifest_path).expect("loads")
        }),
    );
    row(
        "all of `cudastub audit LIB` in process (load, read, check, text report)",
        time(runs.min(50), || {
            let m = manifest::load(&manifest_path).expect("loads");
            let image = ElfImage::read(&library).expect("reads");
            let mut report = Report::new(&image);
            report.check_manifest(&image, &m, &manifest_path, major);
            report.to_text()
        }),
    );
}
