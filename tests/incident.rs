//! The incident cudastub was born from, with the real consumer: llama.cpp's
//! `libggml-cuda.so`, a CUDA 12 build from the pinned `inferna-cuda12` wheel
//! (`target/fixtures/ggml-cuda12`), requires
//! `__cudaRegisterFatBinary@libcudart.so.12` and calls it from its ELF
//! constructors, the moment it is loaded.
//!
//! It is loaded the way ggml's backend registry loads it
//! (`dlopen(path, RTLD_NOW | RTLD_LOCAL)`, tests/c/load_library.c) against
//! runtimes that get `__cudaRegisterFatBinary` wrong:
//!
//! - missing, or exported only under another version node: the loader refuses
//!   the library, naming the symbol and the version;
//! - exported without a version in a library that defines the node: glibc's
//!   loader accepts it (an unversioned definition meets a versioned
//!   reference), so only `cudastub audit` catches it;
//!
//! and against the runtime shim of `cudastub dist`, which it loads through,
//! its 145 fat binaries registered with the real 12.9 runtime. `cudastub
//! audit --consumer` names the unmet requirement first for every broken
//! runtime, and finds the shim meets all 57 of the library's requirements
//! on `libcudart.so.12`.

mod shim_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cudastub_codegen::elf::Versioning;
use cudastub_tests::{Outcome, read_elf, run, run_cudastub};
use shim_support::{c_compiler, c_source, dist_dir, real_lib, repo_root, run_checked, scratch};

const RUNTIME: &str = "libcudart.so.12";
const REGISTER: &str = "__cudaRegisterFatBinary";
/// What the loader says when the runtime does not meet the requirement.
const REFUSED: &str = "undefined symbol: __cudaRegisterFatBinary, version libcudart.so.12";

/// The real `libggml-cuda.so` (a link to the wheel's `libggml-cuda-<hash>.so`).
fn ggml_cuda() -> PathBuf {
    let lib = repo_root().join("target/fixtures/ggml-cuda12/lib/libggml-cuda.so");
    assert!(
        lib.is_file(),
        "{} is missing: run scripts/fetch-fixtures",
        lib.display()
    );
    // Its RPATH is $ORIGIN, searched before LD_LIBRARY_PATH: a CUDA library
    // next to it would be loaded instead of the one under test.
    let dir = lib.parent().expect("lib/ has a parent");
    for entry in std::fs::read_dir(dir).expect("read ggml-cuda12/lib") {
        let name = entry.expect("dir entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            name.starts_with("libggml"),
            "{} holds {name}: only ggml's libraries belong there (RPATH $ORIGIN)",
            dir.display()
        );
    }
    lib
}

/// tests/c/load_library.c, compiled once.
fn loader() -> &'static Path {
    static LOADER: OnceLock<PathBuf> = OnceLock::new();
    LOADER.get_or_init(|| {
        let dir = scratch("incident-loader");
        let exe = dir.join("load_library");
        let mut cc = Command::new(c_compiler());
        cc.args(["-O1", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&exe)
            .arg(c_source("load_library.c"))
            .arg("-ldl");
        run_checked(cc, "compiling load_library.c");
        exe
    })
}

/// Loads `lib` with `path` as LD_LIBRARY_PATH and no cudastub variables but `env`.
fn load(lib: &Path, path: &[&Path], env: &[(&str, &Path)]) -> Outcome {
    let path = std::env::join_paths(path).expect("join LD_LIBRARY_PATH");
    let mut cmd = Command::new(loader());
    cmd.arg(lib)
        .env("LD_LIBRARY_PATH", path)
        .env_remove("CUDA_HOME");
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("CUDASTUB_") {
            cmd.env_remove(var);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// How a stand-in runtime gets `__cudaRegisterFatBinary` wrong.
#[derive(Clone, Copy, Debug)]
enum Broken {
    /// Not exported at all.
    Missing,
    /// Exported without a version; every other export is `@@libcudart.so.12`.
    Unversioned,
    /// Exported only as `__cudaRegisterFatBinary@@LIBCUDART_PRIVATE`.
    OtherVersion,
}

/// Every export of the real runtime 12 (versionscripts/libcudart.so.12.symbols).
fn runtime_exports() -> Vec<String> {
    let path = repo_root().join("versionscripts/libcudart.so.12.symbols");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let names: Vec<String> = text
        .lines()
        .map(|l| {
            l.strip_suffix("@@libcudart.so.12")
                .unwrap_or_else(|| panic!("not name@@libcudart.so.12: {l}"))
                .to_string()
        })
        .collect();
    assert!(names.iter().any(|n| n == REGISTER), "{REGISTER} not listed");
    names
}

/// A `libcudart.so.12` in `dir`: an empty function for every export of the
/// real runtime, all `@@libcudart.so.12` but `__cudaRegisterFatBinary`,
/// which is as `broken` says. Checked in the ELF file, not trusted.
fn broken_runtime(broken: Broken, dir: &Path) -> PathBuf {
    let names = runtime_exports();
    let others: Vec<&String> = names.iter().filter(|n| *n != REGISTER).collect();
    let defined: Vec<&String> = match broken {
        Broken::Missing => others.clone(),
        Broken::Unversioned | Broken::OtherVersion => names.iter().collect(),
    };
    let source: String = defined
        .iter()
        .map(|n| format!("void {n}(void) {{}}\n"))
        .collect();
    // No `local: *`: a global symbol the script does not list stays exported,
    // unversioned.
    let mut script = format!("{RUNTIME} {{\n  global:\n");
    for n in &others {
        script.push_str(&format!("    {n};\n"));
    }
    script.push_str("};\n");
    if let Broken::OtherVersion = broken {
        script.push_str(&format!(
            "LIBCUDART_PRIVATE {{ global: {REGISTER}; }} {RUNTIME};\n"
        ));
    }
    let c = dir.join("stubs.c");
    let map = dir.join("stubs.map");
    std::fs::write(&c, source).expect("write stubs.c");
    std::fs::write(&map, script).expect("write stubs.map");
    let lib = dir.join(RUNTIME);
    let mut cc = Command::new(c_compiler());
    cc.args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&c)
        .arg(format!("-Wl,--version-script={}", map.display()))
        .arg(format!("-Wl,-soname,{RUNTIME}"));
    run_checked(cc, "compiling a broken runtime");

    let image = read_elf(&lib);
    let register: Vec<&Versioning> = image
        .exports
        .iter()
        .filter(|s| s.name == REGISTER)
        .map(|s| &s.version)
        .collect();
    let expected = match broken {
        Broken::Missing => vec![],
        Broken::Unversioned => vec![Versioning::None],
        Broken::OtherVersion => vec![Versioning::Default("LIBCUDART_PRIVATE".into())],
    };
    assert_eq!(
        register,
        expected.iter().collect::<Vec<_>>(),
        "{broken:?}: {}",
        lib.display()
    );
    let versioned = image
        .exports
        .iter()
        .filter(|s| s.version == Versioning::Default(RUNTIME.into()))
        .count();
    assert_eq!(versioned, names.len() - 1, "{broken:?}: the other exports");
    lib
}

/// The lines of what `load_library` printed that name a loaded object.
fn objects(o: &Outcome) -> Vec<&str> {
    o.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("object: "))
        .collect()
}

#[test]
fn the_real_libggml_cuda_needs_register_fat_binary_at_libcudart_so_12() {
    let image = read_elf(&ggml_cuda());
    for soname in [
        RUNTIME,
        "libcublas.so.12",
        "libcublasLt.so.12",
        "libcuda.so.1",
    ] {
        assert!(
            image.needed.iter().any(|n| n == soname),
            "NEEDED {:?} lacks {soname}",
            image.needed
        );
    }
    let required: Vec<String> = image
        .requirements_from(RUNTIME)
        .map(|s| format!("{}@{}", s.name, s.version_name().unwrap_or("(none)")))
        .collect();
    assert_eq!(required.len(), 57, "{required:?}");
    let mut registration: Vec<&str> = required
        .iter()
        .map(String::as_str)
        .filter(|s| s.starts_with("__cuda"))
        .collect();
    registration.sort_unstable();
    assert_eq!(
        registration,
        [
            "__cudaPopCallConfiguration@libcudart.so.12",
            "__cudaPushCallConfiguration@libcudart.so.12",
            "__cudaRegisterFatBinary@libcudart.so.12",
            "__cudaRegisterFatBinaryEnd@libcudart.so.12",
            "__cudaRegisterFunction@libcudart.so.12",
            "__cudaRegisterVar@libcudart.so.12",
            "__cudaUnregisterFatBinary@libcudart.so.12",
        ]
    );
    assert_eq!(image.requirements_from("libcublas.so.12").count(), 13);
}

#[test]
fn a_runtime_without_register_fat_binary_is_refused_by_the_loader() {
    let dir = scratch("incident-missing");
    broken_runtime(Broken::Missing, &dir);
    let o = load(&ggml_cuda(), &[&dir, &dist_dir(12)], &[]);
    assert_eq!(o.code, Some(1), "{o}");
    assert!(o.stdout.contains(REFUSED), "{o}");
}

#[test]
fn a_runtime_exporting_it_under_another_version_is_refused_by_the_loader() {
    let dir = scratch("incident-other-version");
    broken_runtime(Broken::OtherVersion, &dir);
    let o = load(&ggml_cuda(), &[&dir, &dist_dir(12)], &[]);
    assert_eq!(o.code, Some(1), "{o}");
    assert!(o.stdout.contains(REFUSED), "{o}");
}

#[test]
fn a_runtime_exporting_it_unversioned_passes_the_loader_but_not_audit() {
    // glibc (2.36) binds a versioned reference to an unversioned definition
    // when the library defines the version at all: the library loads, and
    // only the audit below and `audit_names_the_unmet_registration_first`
    // show what is wrong.
    let dir = scratch("incident-unversioned");
    let runtime = broken_runtime(Broken::Unversioned, &dir);
    let o = load(&ggml_cuda(), &[&dir, &dist_dir(12)], &[]);
    assert_eq!(o.code, Some(0), "{o}");
    assert!(
        objects(&o).contains(&runtime.to_str().expect("UTF-8 path")),
        "{o}"
    );
}

#[test]
fn audit_names_the_unmet_registration_first() {
    let ggml = ggml_cuda();
    for broken in [Broken::Missing, Broken::Unversioned, Broken::OtherVersion] {
        let dir = scratch(&format!("incident-audit-{broken:?}"));
        let runtime = broken_runtime(broken, &dir);
        let o = run_cudastub([
            "audit".as_ref(),
            runtime.as_os_str(),
            "--consumer".as_ref(),
            ggml.as_os_str(),
        ]);
        o.expect_code(1);
        let mut lines = o.stdout.lines();
        let verdict = lines.next().unwrap_or_default();
        assert!(
            verdict.starts_with(&format!("{}: ", runtime.display()))
                && verdict.ends_with(" differences"),
            "{broken:?}: {o}"
        );
        assert_eq!(
            lines.next(),
            Some(format!("unsatisfied, needed by {} (1):", ggml.display()).as_str()),
            "{broken:?}: {o}"
        );
        let found = match broken {
            Broken::Missing => "",
            Broken::Unversioned => " (the library has __cudaRegisterFatBinary (unversioned))",
            Broken::OtherVersion => " (the library has __cudaRegisterFatBinary@@LIBCUDART_PRIVATE)",
        };
        assert_eq!(
            lines.next(),
            Some(
                format!(
                    "  __cudaRegisterFatBinary@libcudart.so.12 is required but not exported{found}"
                )
                .as_str()
            ),
            "{broken:?}: {o}"
        );
        // The manifest's own findings follow, on the same export.
        let rest: Vec<&str> = lines.collect();
        assert!(
            rest.first()
                .is_some_and(|l| l.contains(", against codegen/api/cudart.yaml major 12 (")),
            "{broken:?}: {o}"
        );
        assert!(
            rest.iter()
                .any(|l| l.starts_with("  ") && l.contains(REGISTER)),
            "{broken:?}: {o}"
        );
    }
}

#[test]
fn the_dist_runtime_meets_every_requirement_of_libggml_cuda() {
    let ggml = ggml_cuda();
    let shim = dist_dir(12).join(RUNTIME);
    let o = run_cudastub([
        "audit".as_ref(),
        shim.as_os_str(),
        "--consumer".as_ref(),
        ggml.as_os_str(),
    ]);
    o.expect_success();
    assert_eq!(
        o.stdout.lines().next(),
        Some(
            format!(
                "{}: OK — 435 exports match codegen/api/cudart.yaml major 12; meet the 57 requirements of 1 consumer",
                shim.display()
            )
            .as_str()
        ),
        "{o}"
    );
    // The whole dist/12, as the README audits it: every shim ggml-cuda
    // needs meets it (libcuda.so.1 and libcublasLt.so.12 by name only, warnings).
    let dir = dist_dir(12);
    let o = run_cudastub([
        "audit".as_ref(),
        dir.as_os_str(),
        "--consumer".as_ref(),
        ggml.as_os_str(),
    ]);
    o.expect_success();
    for (soname, requirements) in [(RUNTIME, 57), ("libcublas.so.12", 13), ("libcuda.so.1", 11)] {
        let line = format!("{}: OK", dir.join(soname).display());
        assert!(
            o.stdout.lines().any(|l| l.starts_with(&line)
                && l.contains(&format!(
                    "; meet the {requirements} requirements of 1 consumer"
                ))),
            "{soname}: {o}"
        );
    }
}

#[test]
fn the_real_libggml_cuda_loads_through_the_dist_shims() {
    let fixtures = repo_root().join("target/fixtures");
    let real_cublas = fixtures.join("cuda12/lib/libcublas.so.12");
    let real_cublas_lt = fixtures.join("cuda12/lib/libcublasLt.so.12");
    let real_cuda = fixtures.join("driver/lib/libcuda.so.1");
    let real_cudart = real_lib(12);
    let shims = dist_dir(12);
    let o = load(
        &ggml_cuda(),
        &[&shims],
        &[
            ("CUDASTUB_REAL_CUDART", &real_cudart),
            ("CUDASTUB_REAL_CUBLAS", &real_cublas),
            ("CUDASTUB_REAL_CUBLASLT", &real_cublas_lt),
            ("CUDASTUB_REAL_CUDA", &real_cuda),
            ("CUDASTUB_TRACE", Path::new("1")),
        ],
    );
    assert_eq!(o.code, Some(0), "{o}");
    let loaded = objects(&o);
    for soname in [
        RUNTIME,
        "libcublas.so.12",
        "libcublasLt.so.12",
        "libcuda.so.1",
    ] {
        let shim = shims.join(soname);
        assert!(
            loaded.contains(&shim.to_str().expect("UTF-8 path")),
            "{soname} is not the shim: {loaded:?}"
        );
    }
    // Its constructors registered its kernels through the shim, which
    // loaded the real runtime for them.
    assert!(
        loaded.contains(&real_cudart.to_str().expect("UTF-8 path")),
        "the real runtime was not loaded: {loaded:?}"
    );
    let calls = |name: &str| {
        o.stderr
            .lines()
            .filter(|l| {
                l.split_once("] ")
                    .is_some_and(|(_, call)| call.starts_with(&format!("{name}(")))
            })
            .count()
    };
    assert_eq!(calls(REGISTER), 145, "{}", o.stderr);
    assert_eq!(calls("__cudaRegisterFatBinaryEnd"), 145);
    assert_eq!(calls("__cudaUnregisterFatBinary"), 145);
    assert!(calls("__cudaRegisterFunction") > 0);
}
