//! `cudastub import` against the real runtime libraries and headers: the
//! checked-in manifest is exactly what importing the pinned wheels gives, and
//! importing is a merge that never loses what another release exported.
//!
//! The second half imports small synthetic libraries (a header, a C file and
//! a version script, built with the C compiler): those tests exercise the
//! importer's handling of C, not NVIDIA's API. Each is the regression test of
//! a bug found while importing cuBLAS, cuRAND or NVRTC.

use std::path::{Path, PathBuf};

use cudastub_codegen::ctype::CType;
use cudastub_codegen::emit::rust_types::RustNames;
use cudastub_codegen::import::{ImportRequest, ImportSummary, import};
use cudastub_codegen::manifest::{self, Layout, Manifest, TypeDef};
use cudastub_tests::{
    Runtime, checked_in_manifest, compile_c, copy_manifest_to_tempdir, fixtures, run, run_cudastub,
    snapshot, tempdir,
};

fn import_args(manifest: &std::path::Path, runtime: &Runtime) -> Vec<std::ffi::OsString> {
    vec![
        "import".into(),
        "--manifest".into(),
        manifest.into(),
        "--library".into(),
        runtime.library.clone().into(),
        "--release".into(),
        runtime.release.into(),
        "--headers".into(),
        runtime.include.clone().into(),
    ]
}

/// Imports `runtime` into `m` with the library API, as release `release`.
fn import_as(m: &Manifest, runtime: &Runtime, release: &str) -> (Manifest, ImportSummary) {
    let request = ImportRequest {
        library: runtime.library.clone(),
        exports_list: false,
        major: None,
        include_dirs: vec![runtime.include.clone()],
        release: release.to_string(),
    };
    import(m, &request).unwrap_or_else(|e| {
        panic!(
            "importing {} as {release} failed: {e}",
            runtime.library.display()
        )
    })
}

/// The first line where two texts differ, for messages.
fn first_difference(a: &str, b: &str) -> String {
    let (mut la, mut lb) = (a.lines(), b.lines());
    for n in 1.. {
        match (la.next(), lb.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (None, None) => return "no difference".to_string(),
            (x, y) => return format!("line {n}:\n  checked in: {x:?}\n  re-imported: {y:?}"),
        }
    }
    unreachable!()
}

#[test]
fn reimporting_the_pinned_wheels_reproduces_the_manifest_byte_for_byte() {
    let f = fixtures();
    let copy = copy_manifest_to_tempdir();
    let checked_in = std::fs::read_to_string(cudastub_tests::manifest_path()).unwrap();
    for runtime in f.runtimes() {
        let out = run_cudastub(import_args(&copy.path, runtime));
        out.expect_success();
        let expected = format!(
            "major {} from release {}: 0 added, 0 removed, 0 changed",
            runtime.major, runtime.release
        );
        assert!(
            out.stdout.contains(&expected),
            "re-importing the pinned {} should change nothing (expected `{expected}`): {out}",
            runtime.soname
        );
        let text = copy.text();
        assert!(
            text == checked_in,
            "after re-importing {} the manifest differs from the checked-in one at {}",
            runtime.soname,
            first_difference(&checked_in, &text)
        );
    }
}

/// 12's plain `cudaGetDeviceProperties` is the legacy entry point of CUDA 11
/// binaries: it fills CUDA 11's `cudaDeviceProp`, 728 bytes (measured on an
/// H200 with the 12.9.79 runtime: it writes exactly 728 bytes, where
/// `cudaGetDeviceProperties_v2` writes up to 780 of 12's 1032). No 12 header
/// declares that layout, so the manifest keeps it by hand as `struct
/// cudaDeviceProp_v1` (`source: overlay`); it must be the CUDA 11.8 header's,
/// field for field, and the legacy prototype must take it.
#[test]
fn the_legacy_device_properties_are_cuda_11s_layout() {
    let cuda11 = cudastub_tests::repo_root().join("target/fixtures/cuda11/include");
    let cuda12 = &fixtures().cuda12.include;
    assert!(
        cuda11.join("cuda_runtime_api.h").is_file(),
        "{} is missing: run scripts/fetch-fixtures",
        cuda11.display()
    );
    // 11.8's runtime wheel has no crt/: 12.9's macros serve it.
    let decls = cudastub_codegen::import::parse_header(
        &cuda11.join("cuda_runtime_api.h"),
        &[&cuda11, cuda12],
        &[],
        &[],
        manifest::Language::C,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let TypeDef::Aggregate(real) = &decls.types["struct cudaDeviceProp"] else {
        panic!("CUDA 11.8's cudaDeviceProp is not a struct");
    };
    assert_eq!((real.size, real.align), (728, 8));
    let m = checked_in_manifest();
    let ours = type_of_major(m, 12, "struct cudaDeviceProp_v1");
    assert_eq!(ours, &TypeDef::Aggregate(real.clone()));
    assert!(
        m.majors[&12]
            .overlay_types
            .contains("struct cudaDeviceProp_v1")
    );
    assert_eq!(
        proto_of_major(m, 12, "cudaGetDeviceProperties"),
        "cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp_v1 *prop, int device)"
    );
    assert_eq!(
        proto_of_major(m, 12, "cudaGetDeviceProperties_v2"),
        "cudaError_t cudaGetDeviceProperties_v2(struct cudaDeviceProp *prop, int device)"
    );
    let TypeDef::Aggregate(current) = type_of_major(m, 12, "struct cudaDeviceProp") else {
        panic!("12's cudaDeviceProp is not a struct");
    };
    assert_eq!(current.size, 1032);
    assert!(!m.majors[&13].types.contains_key("struct cudaDeviceProp_v1"));
}

fn type_of_major<'m>(m: &'m Manifest, major: u32, name: &str) -> &'m TypeDef {
    m.majors[&major]
        .types
        .get(name)
        .unwrap_or_else(|| panic!("no type `{name}` in major {major}"))
}

fn proto_of_major(m: &Manifest, major: u32, name: &str) -> String {
    m.functions_of(major)
        .find(|(f, _)| f.name == name)
        .unwrap_or_else(|| panic!("no function `{name}` in major {major}"))
        .1
        .proto
        .to_string()
}

#[test]
fn a_function_the_manifest_lacks_is_reported_as_added() {
    let f = fixtures();
    let m = checked_in_manifest();
    // A function only major 12 exports and a header declares: removing its
    // whole entry loses nothing the import cannot recover.
    let victim = m
        .functions
        .iter()
        .find(|f| f.majors.keys().eq([&12]) && f.majors[&12].source != manifest::OVERLAY)
        .expect("major 12 has functions of its own declared in headers");
    let copy = copy_manifest_to_tempdir();
    let text = copy.text();
    let start = text
        .find(&format!("\n  - name: {}\n", victim.name))
        .expect("the function's entry")
        + 1;
    let end = start
        + text[start + 1..]
            .find("\n  - name: ")
            .expect("a next entry")
        + 2;
    copy.write(&format!("{}{}", &text[..start], &text[end..]));
    assert!(
        manifest::load(&copy.path)
            .unwrap()
            .function(&victim.name)
            .is_none(),
        "the test failed to remove {}",
        victim.name
    );

    let out = run_cudastub(import_args(&copy.path, &f.cuda12));
    out.expect_success();
    assert!(
        out.stdout.contains("1 added, 0 removed, 0 changed")
            && out.stdout.contains(&format!("  + {}\n", victim.name)),
        "importing 12.9.79 should report {} as the one function added: {out}",
        victim.name
    );
    assert!(
        copy.text() == std::fs::read_to_string(cudastub_tests::manifest_path()).unwrap(),
        "after re-adding {} the manifest should equal the checked-in one",
        victim.name
    );
}

#[test]
fn importing_merges_added_removed_and_older_functions() {
    let f = fixtures();
    let checked_in = checked_in_manifest();
    let mut m = checked_in.clone();
    // cudaMemAdvise has a different prototype in each major: dropping its
    // major-12 entry must bring back the major-12 prototype.
    let advise = m
        .functions
        .iter_mut()
        .find(|f| f.name == "cudaMemAdvise")
        .expect("cudaMemAdvise is in the manifest");
    advise
        .majors
        .remove(&12)
        .expect("cudaMemAdvise is in major 12");
    // A function only 12.9.79 was said to export, and one an older release
    // exported: the first goes, the second stays for old binaries.
    let mut only_this_release = checked_in.function("cudaMalloc").unwrap().clone();
    only_this_release.name = "cudaNotExportedAnyMore".into();
    only_this_release.majors.retain(|&n, _| n == 12);
    let entry = only_this_release.majors.get_mut(&12).unwrap();
    entry.proto.name = only_this_release.name.clone();
    let mut from_older_release = only_this_release.clone();
    from_older_release.name = "cudaFromAnOlderRelease".into();
    let entry = from_older_release.majors.get_mut(&12).unwrap();
    entry.proto.name = from_older_release.name.clone();
    entry.since = "12.0.0".into();
    m.functions.push(only_this_release);
    m.functions.push(from_older_release.clone());
    m.functions.sort_by(|a, b| a.name.cmp(&b.name));

    let (out, summary) = import_as(&m, &f.cuda12, "12.9.79");
    assert_eq!(summary.added, ["cudaMemAdvise"], "added, in {summary}");
    assert_eq!(
        summary.removed,
        ["cudaNotExportedAnyMore"],
        "removed, in {summary}"
    );
    assert!(summary.changed.is_empty(), "changed, in {summary}");
    assert_eq!(
        out.function("cudaFromAnOlderRelease"),
        Some(&from_older_release),
        "a function an older imported release exported must stay, with its since"
    );
    let mut without_older = out.clone();
    without_older
        .functions
        .retain(|f| f.name != "cudaFromAnOlderRelease");
    assert!(
        without_older == *checked_in,
        "apart from cudaFromAnOlderRelease, the import should give back the checked-in manifest"
    );
}

#[test]
fn an_older_release_moves_since_back_and_keeps_every_symbol() {
    let f = fixtures();
    let checked_in = checked_in_manifest();
    // The same library file, imported as if it were an older release.
    let (older, summary) = import_as(checked_in, &f.cuda12, "12.8.0");
    assert!(
        summary.added.is_empty() && summary.removed.is_empty() && summary.changed.is_empty(),
        "the same exports as an older release change no symbol: {summary}"
    );
    assert_eq!(older.majors[&12].imported, ["12.8.0", "12.9.79"]);
    assert_eq!(
        older.symbols_of(12),
        checked_in.symbols_of(12),
        "major 12 keeps every symbol"
    );
    for (func, entry) in older.functions_of(12) {
        assert_eq!(
            entry.since, "12.8.0",
            "{}: since should move back to the older release",
            func.name
        );
        let before = &checked_in.function(&func.name).unwrap().majors[&12];
        assert_eq!(
            (&entry.proto, &entry.source),
            (&before.proto, &before.source),
            "{}: an older release must not replace the newest prototype",
            func.name
        );
    }
    assert_eq!(
        older.majors[&12].types, checked_in.majors[&12].types,
        "an older release must not replace the newest types"
    );
    assert_eq!(
        older.majors[&13], checked_in.majors[&13],
        "major 13 untouched"
    );
    for func in &older.functions {
        if let Some(e) = func.majors.get(&13) {
            assert_eq!(
                Some(e),
                checked_in.function(&func.name).unwrap().majors.get(&13),
                "{}: major 13 untouched",
                func.name
            );
        }
    }
    // The canonical text reads back as the same manifest.
    let text = manifest::to_yaml(&older);
    let reread = manifest::parse("older.yaml".as_ref(), &text)
        .unwrap_or_else(|e| panic!("the merged manifest does not read back: {e}"));
    assert!(
        reread == older,
        "the merged manifest reads back differently"
    );
    assert!(
        text.contains("    imported: [12.8.0, 12.9.79]\n"),
        "the written manifest lists both releases of major 12"
    );

    // Importing the newer release again keeps the earliest since.
    let (again, summary) = import_as(&older, &f.cuda12, "12.9.79");
    assert!(
        summary.added.is_empty() && summary.removed.is_empty() && summary.changed.is_empty(),
        "re-importing 12.9.79 changes nothing: {summary}"
    );
    assert!(
        again == older,
        "re-importing 12.9.79 after 12.8.0 should keep since 12.8.0 and imported [12.8.0, 12.9.79]"
    );
}

// ---------------------------------------------------------------------------
// Synthetic libraries: the importer's C handling, one bug at a time.

/// A library `libsynth.so.1` (major 1, every export `@@libsynth.so.1`) built
/// from `header` and `source`, and a manifest whose import section lists the
/// header; `functions` is the manifest's `functions:` section.
struct Synthetic {
    dir: tempfile::TempDir,
    library: PathBuf,
    manifest: PathBuf,
}

impl Synthetic {
    fn new(header: &str, source: &str) -> Synthetic {
        let dir = tempdir();
        let d = dir.path();
        std::fs::write(d.join("synth.h"), header).unwrap();
        std::fs::write(d.join("synth.c"), format!("#include \"synth.h\"\n{source}")).unwrap();
        std::fs::write(d.join("synth.map"), "libsynth.so.1 { global: *; };\n").unwrap();
        let library = d.join("libsynth.so.1");
        compile_c([
            "-shared".as_ref(),
            "-fPIC".as_ref(),
            "-Wl,-soname,libsynth.so.1".as_ref(),
            format!("-Wl,--version-script={}", d.join("synth.map").display()).as_ref(),
            format!("-I{}", d.display()).as_ref(),
            d.join("synth.c").as_os_str(),
            "-o".as_ref(),
            library.as_os_str(),
        ] as [&std::ffi::OsStr; 8]);
        let manifest = d.join("synth.yaml");
        std::fs::write(
            &manifest,
            "library:\n  name: synth\n  soname: \"libsynth.so.{major}\"\n  version_node: \"libsynth.so.{major}\"\n  real_path_variable: CUDASTUB_REAL_SYNTH\n\
             import:\n  headers:\n    - {file: synth.h, kind: api}\n  passes:\n    - {name: default, defines: []}\n\
             majors: {}\n",
        )
        .unwrap();
        Synthetic {
            dir,
            library,
            manifest,
        }
    }

    /// Imports the library as release 1.0 with the library API.
    fn import(&self) -> Result<Manifest, String> {
        let m = manifest::load(&self.manifest).map_err(|e| e.to_string())?;
        import(
            &m,
            &ImportRequest {
                library: self.library.clone(),
                exports_list: false,
                major: None,
                include_dirs: vec![self.dir.path().to_path_buf()],
                release: "1.0".into(),
            },
        )
        .map(|(m, _)| m)
        .map_err(|e| e.to_string())
    }

    /// Imports and panics with the importer's message on failure.
    fn imported(&self) -> Manifest {
        self.import()
            .unwrap_or_else(|e| panic!("importing the synthetic library failed: {e}"))
    }
}

/// The prototype of `name` in major 1, as the manifest writes it.
fn proto_of(m: &Manifest, name: &str) -> String {
    m.function(name)
        .and_then(|f| f.majors.get(&1))
        .unwrap_or_else(|| panic!("`{name}` is not in major 1"))
        .proto
        .to_string()
}

/// Compiles the `types` module of major 1 with rustc: every layout
/// assertion it carries is checked by the compiler.
fn compile_types_module(m: &Manifest) {
    let major = m.major(1).unwrap();
    let source = RustNames::new(major).types_module().to_string();
    let dir = tempdir();
    let file = dir.path().join("types.rs");
    std::fs::write(&file, &source).unwrap();
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = run(std::process::Command::new(rustc)
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
        "the generated types module does not compile:\n{source}\n{out}"
    );
}

/// A type of major 1.
fn type_of<'m>(m: &'m Manifest, name: &str) -> &'m TypeDef {
    m.major(1)
        .unwrap()
        .types
        .get(name)
        .unwrap_or_else(|| panic!("type `{name}` is not in major 1"))
}

/// Bug a: `long long int` parsed, then the Rust emitter panicked on it. A
/// prototype kept by hand (the only place such spellings reach the model:
/// bindgen already writes `long long`) now reads in one spelling.
#[test]
fn hand_written_builtin_spellings_are_canonical_and_emit() {
    let s = Synthetic::new(
        "int declared(int x);\n",
        "int declared(int x) { return x; }\nlong long undeclared(unsigned a, long b, short c) { return a + b + c; }\n",
    );
    let mut m = manifest::load(&s.manifest).unwrap();
    let proto = cudastub_codegen::ctype::parse_prototype(
        "long long int undeclared(unsigned a, long int b, signed short int c)",
    )
    .unwrap();
    m.functions.push(manifest::Function {
        name: "undeclared".into(),
        kind: "api".into(),
        majors: [(
            1,
            manifest::FunctionInMajor {
                since: "1.0".into(),
                source: manifest::OVERLAY.into(),
                proto,
                roles: Vec::new(),
                class: Default::default(),
            },
        )]
        .into(),
        roles_overlay: false,
    });
    let (m, _) = import(
        &m,
        &ImportRequest {
            library: s.library.clone(),
            exports_list: false,
            major: None,
            include_dirs: vec![s.dir.path().to_path_buf()],
            release: "1.0".into(),
        },
    )
    .unwrap_or_else(|e| panic!("importing the synthetic library failed: {e}"));
    assert_eq!(
        proto_of(&m, "undeclared"),
        "long long undeclared(unsigned int a, long b, short c)"
    );
    let view = cudastub_codegen::view::LibraryMajor::new(&m, 1).unwrap();
    let source = cudastub_codegen::emit::shim::forwarding_source(&view)
        .unwrap_or_else(|e| panic!("the shim source does not generate: {e}"));
    assert!(
        source.contains("c_longlong"),
        "`long long` should be c_longlong in the shim"
    );
}

/// Bug b: a typedef first reached through a pointer stayed opaque when it
/// was later passed by value (cuBLAS: `cuComplex *`, then `cuComplex`), and
/// the generated failure value `0 as types::cuComplex` did not compile.
#[test]
fn a_typedef_pointed_to_then_passed_by_value_gets_its_layout() {
    let s = Synthetic::new(
        "typedef struct pair_s { float x; float y; } pair;\ntypedef pair complex_t;\n\
         int use_pair(complex_t value, complex_t *pointer);\n",
        "int use_pair(complex_t value, complex_t *pointer) { return (int)value.x + (pointer != 0); }\n",
    );
    let m = s.imported();
    assert_eq!(
        proto_of(&m, "use_pair"),
        "int use_pair(complex_t value, complex_t *pointer)"
    );
    match type_of(&m, "struct pair_s") {
        TypeDef::Aggregate(Layout {
            size: 8,
            align: 4,
            fields,
        }) => assert_eq!(fields.len(), 2),
        other => panic!("struct pair_s is passed by value, so it needs its layout, not {other:?}"),
    }
    compile_types_module(&m);
}

/// Bug c: `#[repr(C)]` alone under-aligns a C type declared with a larger
/// alignment than its fields' (cuBLAS's `double2` is 16, `float2` 8).
#[test]
fn an_over_aligned_struct_keeps_its_alignment_in_rust() {
    let s = Synthetic::new(
        "struct __attribute__((aligned(16))) dbl2 { double x, y; };\n\
         struct __attribute__((aligned(8))) flt2 { float x, y; };\n\
         typedef struct dbl2 dbl2_t;\ntypedef struct flt2 flt2_t;\n\
         dbl2_t twice(dbl2_t d, flt2_t f);\n",
        "dbl2_t twice(dbl2_t d, flt2_t f) { d.x += f.x; return d; }\n",
    );
    let m = s.imported();
    for (name, size, align) in [("struct dbl2", 16, 16), ("struct flt2", 8, 8)] {
        match type_of(&m, name) {
            TypeDef::Aggregate(l) => assert_eq!((l.size, l.align), (size, align), "{name}"),
            other => panic!("{name} should be an aggregate: {other:?}"),
        }
    }
    let types = RustNames::new(m.major(1).unwrap())
        .types_module()
        .to_string();
    assert!(
        types.contains("repr (C , align (16))") && types.contains("repr (C , align (8))"),
        "the Rust mirrors should carry align(16) and align(8): {types}"
    );
    compile_types_module(&m);
}

/// Bug e: a parameter written as an inline function pointer (NVRTC's
/// `nvrtcSetFlowCallback`) made the whole function disappear.
#[test]
fn an_inline_function_pointer_parameter_gets_a_named_type() {
    let s = Synthetic::new(
        "int set_callback(void *prog, int (*callback)(void *, void *), void *payload);\n",
        "int set_callback(void *prog, int (*callback)(void *, void *), void *payload) { return callback(prog, payload); }\n",
    );
    let m = s.imported();
    assert_eq!(
        proto_of(&m, "set_callback"),
        "int set_callback(void *prog, set_callback_callback_fn callback, void *payload)"
    );
    match type_of(&m, "set_callback_callback_fn") {
        TypeDef::FunctionPointer(p) => {
            assert_eq!(p.to_string(), "int (void *arg1, void *arg2)")
        }
        other => panic!("set_callback_callback_fn should be a function pointer: {other:?}"),
    }
    compile_types_module(&m);
}

/// Bug e, in general: what the model cannot represent is reported with the
/// reason, not silently dropped (here a variadic function).
#[test]
fn a_declaration_the_model_cannot_represent_is_reported_with_the_reason() {
    let s = Synthetic::new(
        "int log_message(const char *format, ...);\nint plain(int x);\n",
        "int log_message(const char *format, ...) { return format != 0; }\nint plain(int x) { return x; }\n",
    );
    let e = s.import().expect_err("a variadic export has no prototype");
    assert!(
        e.contains("synth.h declares `log_message`, but it cannot be represented")
            && e.contains("variadic")
            && e.contains("source: overlay"),
        "the error should name the function, the header and why: {e}"
    );
}

/// Bug f: array typedefs (cuRAND's `curandDirectionVectors32_t`) were
/// rejected. They are a type kind of their own, written and read back, and
/// a Rust array alias.
#[test]
fn an_array_typedef_is_imported_written_read_back_and_emitted() {
    let s = Synthetic::new(
        "typedef unsigned int directions32_t[32];\n\
         struct holder { directions32_t d; int n; };\n\
         int get_directions(directions32_t **vectors, struct holder h);\n",
        "int get_directions(directions32_t **vectors, struct holder h) { return vectors != 0 && h.n; }\n",
    );
    let m = s.imported();
    assert_eq!(
        type_of(&m, "directions32_t"),
        &TypeDef::Array {
            element: CType::named("unsigned int"),
            length: 32
        }
    );
    match type_of(&m, "struct holder") {
        TypeDef::Aggregate(l) => assert_eq!((l.size, l.align), (132, 4)),
        other => panic!("struct holder is passed by value: {other:?}"),
    }
    let text = manifest::to_yaml(&m);
    assert!(
        text.contains("      directions32_t: {array: \"unsigned int\", length: 32}\n"),
        "the manifest writes the array typedef:\n{text}"
    );
    let reread = manifest::parse(Path::new("synth.yaml"), &text)
        .unwrap_or_else(|e| panic!("the written manifest does not read back: {e}"));
    assert!(reread == m, "the array typedef does not read back the same");
    let types = RustNames::new(m.major(1).unwrap())
        .types_module()
        .to_string();
    assert!(
        types.contains("pub type directions32_t = [:: core :: ffi :: c_uint ; 32usize] ;"),
        "the Rust alias should be an array: {types}"
    );
    compile_types_module(&m);
}

/// Bug g: the release came from the file name, which cuBLAS's wheels do
/// not carry (`libcublas.so.12`). `--release` is now required and checked.
#[test]
fn a_missing_or_malformed_release_is_refused_naming_the_argument() {
    let f = fixtures();
    let copy = copy_manifest_to_tempdir();
    let before = snapshot(copy.dir.path());
    let args = |release: Option<&str>| {
        let mut args: Vec<std::ffi::OsString> = vec![
            "import".into(),
            "--manifest".into(),
            copy.path.clone().into(),
            "--library".into(),
            f.cuda12.library.clone().into(),
            "--headers".into(),
            f.cuda12.include.clone().into(),
        ];
        if let Some(r) = release {
            args.extend(["--release".into(), r.into()]);
        }
        args
    };
    for (release, expected) in [
        (None, "--release"),
        (Some(""), "--release"),
        (Some("abc"), "--release"),
        (Some("12.9\n79"), "--release"),
        (Some("12..79"), "--release"),
        (Some("13.0.0"), "is not a release of major 12"),
    ] {
        let out = run_cudastub(args(release));
        out.expect_code(2);
        assert!(
            out.stderr.contains(expected) && out.stderr.contains("--release"),
            "release {release:?}: the error should name --release and say `{expected}`: {out}"
        );
        cudastub_tests::assert_untouched(copy.dir.path(), &before, &out);
    }
}
