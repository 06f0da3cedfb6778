//! cuBLAS and cuBLASLt from the pinned wheels: `codegen/api/cublas.yaml` and
//! `codegen/api/cublasLt.yaml` are exactly what importing the real libraries and
//! headers gives, every export has a prototype, the C++ pass is what finds
//! the `__half`/bf16 functions, and the generated Rust types compile with
//! the C layouts (`cuComplex` = `float2`, over-aligned).

use std::collections::BTreeMap;
use std::path::PathBuf;

use cudastub_codegen::emit::rust_types::RustNames;
use cudastub_codegen::import::{ImportRequest, import};
use cudastub_codegen::manifest::{self, Language, Manifest, TypeDef};
use cudastub_tests::{read_elf, repo_root, run, run_cudastub, tempdir};

/// One real library of one major, unpacked by `scripts/fetch-fixtures`.
struct RealLibrary {
    /// `cublas` or `cublasLt`: the manifest's `library.name`.
    name: &'static str,
    major: u32,
    /// The pinned wheel's version, from `target/fixtures/releases`.
    release: String,
    library: PathBuf,
    include: PathBuf,
    /// How many functions it exports (measured).
    export_count: usize,
}

/// The checked-in manifest of `name`.
fn manifest_path(name: &str) -> PathBuf {
    repo_root().join("codegen/api").join(format!("{name}.yaml"))
}

fn load(name: &str) -> Manifest {
    let path = manifest_path(name);
    manifest::load(&path).unwrap_or_else(|e| panic!("{} does not load:\n{e}", path.display()))
}

/// The four libraries; panics, saying to run `scripts/fetch-fixtures`,
/// when a fixture is missing.
fn real_libraries() -> Vec<RealLibrary> {
    let fixtures = repo_root().join("target/fixtures");
    let releases_file = fixtures.join("releases");
    let text = std::fs::read_to_string(&releases_file).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\nrun scripts/fetch-fixtures (or scripts/test, which runs it) first",
            releases_file.display()
        )
    });
    let releases: BTreeMap<(String, u32), String> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((
                (w.next()?.to_string(), w.next()?.parse().ok()?),
                w.next()?.to_string(),
            ))
        })
        .collect();
    let libs: Vec<RealLibrary> = [
        ("cublas", 12, 746),
        ("cublas", 13, 756),
        ("cublasLt", 12, 180),
        ("cublasLt", 13, 222),
    ]
    .into_iter()
    .map(|(name, major, export_count)| RealLibrary {
        name,
        major,
        release: releases
            .get(&(name.to_string(), major))
            .unwrap_or_else(|| {
                panic!(
                    "{} has no release of {name} {major}",
                    releases_file.display()
                )
            })
            .clone(),
        library: fixtures.join(format!("cuda{major}/lib/lib{name}.so.{major}")),
        include: fixtures.join(format!("cuda{major}/include")),
        export_count,
    })
    .collect();
    let missing: Vec<String> = libs
        .iter()
        .flat_map(|l| {
            [
                l.library.clone(),
                l.include.join("cublas_v2.h"),
                l.include.join("nv/target"),
            ]
        })
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "fixtures are missing: {}\nrun scripts/fetch-fixtures (or scripts/test, which runs it) first",
        missing.join(", ")
    );
    libs
}

#[test]
fn reimporting_the_pinned_cublas_wheels_reproduces_the_manifests_byte_for_byte() {
    let libs = real_libraries();
    for name in ["cublas", "cublasLt"] {
        let dir = tempdir();
        let copy = dir.path().join(format!("{name}.yaml"));
        let checked_in = std::fs::read_to_string(manifest_path(name)).unwrap();
        std::fs::write(&copy, &checked_in).unwrap();
        for lib in libs.iter().filter(|l| l.name == name) {
            let out = run_cudastub([
                "import".as_ref(),
                "--manifest".as_ref(),
                copy.as_os_str(),
                "--library".as_ref(),
                lib.library.as_os_str(),
                "--release".as_ref(),
                lib.release.as_ref(),
                "--headers".as_ref(),
                lib.include.as_os_str(),
            ] as [&std::ffi::OsStr; 9]);
            out.expect_success();
            let expected = format!(
                "major {} from release {}: 0 added, 0 removed, 0 changed",
                lib.major, lib.release
            );
            assert!(
                out.stdout.contains(&expected),
                "re-importing the pinned lib{name}.so.{} should change nothing (expected `{expected}`): {out}",
                lib.major
            );
            let text = std::fs::read_to_string(&copy).unwrap();
            let first_difference = checked_in
                .lines()
                .zip(text.lines())
                .position(|(a, b)| a != b);
            assert!(
                text == checked_in,
                "after re-importing lib{name}.so.{}, codegen/api/{name}.yaml differs from the checked-in one (first at line {:?})",
                lib.major,
                first_difference.map(|n| n + 1)
            );
        }
    }
}

#[test]
fn every_export_of_the_real_libraries_is_in_the_manifest_with_a_prototype() {
    for lib in real_libraries() {
        let m = load(lib.name);
        let image = read_elf(&lib.library);
        let mut real: Vec<&str> = image.exports.iter().map(|s| s.name.as_str()).collect();
        real.sort_unstable();
        assert_eq!(
            real.len(),
            lib.export_count,
            "lib{}.so.{} should export {} functions",
            lib.name,
            lib.major,
            lib.export_count
        );
        assert_eq!(
            m.symbols_of(lib.major),
            real,
            "codegen/api/{}.yaml major {} should list exactly the real library's exports",
            lib.name,
            lib.major
        );
        assert_eq!(
            m.majors[&lib.major].imported,
            std::slice::from_ref(&lib.release),
            "codegen/api/{}.yaml major {} is imported from the pinned release",
            lib.name,
            lib.major
        );
    }
}

/// The 22 `__half`/bf16 functions of cuBLAS are declared only under
/// `__cplusplus`: without the manifest's C++ pass they have no prototype.
#[test]
fn the_cxx_pass_finds_the_half_and_bfloat16_functions() {
    let libs = real_libraries();
    let lib = libs
        .iter()
        .find(|l| l.name == "cublas" && l.major == 12)
        .unwrap();
    let with = load("cublas");
    assert!(
        with.import
            .passes
            .iter()
            .any(|p| p.language == Language::Cxx),
        "codegen/api/cublas.yaml should have a C++ pass"
    );
    let hgemm = &with.function("cublasHgemm").unwrap().majors[&12];
    assert_eq!(hgemm.source, "cublas_v2.h");
    assert!(
        hgemm
            .proto
            .to_string()
            .contains("const struct __half *alpha"),
        "{}",
        hgemm.proto
    );

    let mut without = with.clone();
    without.import.passes.retain(|p| p.language == Language::C);
    let e = import(
        &without,
        &ImportRequest {
            library: lib.library.clone(),
            exports_list: false,
            major: None,
            include_dirs: vec![lib.include.clone()],
            release: lib.release.clone(),
        },
    )
    .expect_err("without the C++ pass the __half functions have no prototype")
    .to_string();
    assert!(
        e.contains("no prototype for 22 export(s) of major 12")
            && e.contains("cublasHgemm,")
            && e.contains("cublasTSTgemvStridedBatched_64"),
        "without the C++ pass, exactly the 22 __half/bf16 functions should lack a prototype: {e}"
    );
}

/// The generated `types` module of every major compiles: rustc checks each
/// layout assertion, including `float2` (align 8) and `double2` (align 16),
/// which cuBLAS passes by value as `cuComplex` and `cuDoubleComplex`.
#[test]
fn the_rust_types_compile_with_the_c_layouts() {
    let cublas = load("cublas");
    for major in [12, 13] {
        for (name, size, align) in [("struct float2", 8, 8), ("struct double2", 16, 16)] {
            match cublas.major(major).unwrap().types.get(name) {
                Some(TypeDef::Aggregate(l)) => {
                    assert_eq!((l.size, l.align), (size, align), "{name} in major {major}")
                }
                other => panic!("{name} is passed by value in major {major}: {other:?}"),
            }
        }
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    for name in ["cublas", "cublasLt"] {
        let m = load(name);
        for major in [12, 13] {
            let view = cudastub_codegen::view::LibraryMajor::new(&m, major).unwrap();
            cudastub_codegen::emit::shim::forwarding_source(&view).unwrap_or_else(|e| {
                panic!("the shim source of codegen/api/{name}.yaml major {major} does not generate: {e}")
            });
            let source = RustNames::new(m.major(major).unwrap())
                .types_module()
                .to_string();
            let dir = tempdir();
            let file = dir.path().join("types.rs");
            std::fs::write(&file, &source).unwrap();
            let out = run(std::process::Command::new(&rustc)
                .args([
                    "--edition",
                    "2021",
                    "--crate-type",
                    "lib",
                    "--emit",
                    "metadata",
                    "-o",
                ])
                .arg(dir.path().join("types.rmeta"))
                .arg(&file));
            assert_eq!(
                out.code,
                Some(0),
                "the types of codegen/api/{name}.yaml major {major} do not compile: {out}"
            );
        }
    }
}
