//! `versionscripts/` against the real libraries: the symbol lists are the
//! real exports, a library linked with the version scripts exports exactly
//! those, and `cudastub generate --check` shows a stale or missing file as
//! a unified diff.

use std::fmt::Write as _;

use cudastub_codegen::elf::{SymbolKind, Versioning};
use cudastub_tests::{
    Runtime, assert_untouched, checked_in_manifest, compile_c, copy_dir_files, fixtures,
    index_path, list_difference, read_elf, run_cudastub, snapshot, tempdir, versioned_exports,
    versionscripts_dir,
};

/// The `.symbols` file of a major, one line a symbol.
fn symbol_list(runtime: &Runtime) -> Vec<String> {
    let path = versionscripts_dir().join(format!("{}.symbols", runtime.soname));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_real_exports_are_all_default_versioned_functions() {
    for runtime in fixtures().runtimes() {
        let image = read_elf(&runtime.library);
        let node = &runtime.soname;
        assert_eq!(
            image.soname.as_deref(),
            Some(node.as_str()),
            "soname of {}",
            runtime.library.display()
        );
        assert_eq!(
            image.version_nodes(),
            [node.as_str()],
            "version nodes of {}",
            runtime.library.display()
        );
        assert_eq!(
            image.exports.len(),
            runtime.export_count,
            "exports of {}",
            runtime.library.display()
        );
        let odd: Vec<String> = image
            .exports
            .iter()
            .filter(|s| {
                s.kind != SymbolKind::Func
                    || s.weak
                    || s.version != Versioning::Default(node.clone())
            })
            .map(|s| {
                format!(
                    "{} ({}{})",
                    s.versioned_name(),
                    s.kind,
                    if s.weak { ", weak" } else { "" }
                )
            })
            .collect();
        assert!(
            odd.is_empty(),
            "{}: exports that are not FUNC name@@{node}: {odd:?}",
            runtime.library.display()
        );
    }
}

#[test]
fn symbol_lists_are_the_real_libraries_exports() {
    for runtime in fixtures().runtimes() {
        let real = versioned_exports(&read_elf(&runtime.library));
        let listed = symbol_list(runtime);
        assert!(
            listed == real,
            "versionscripts/{}.symbols differs from the exports of {}: {}",
            runtime.soname,
            runtime.library.display(),
            list_difference("the symbol list", &listed, "the real library", &real)
        );
        assert_eq!(listed.len(), runtime.export_count);
    }
}

#[test]
fn a_c_library_linked_with_the_version_script_exports_the_real_symbols() {
    let m = checked_in_manifest();
    for runtime in fixtures().runtimes() {
        let dir = tempdir();
        let mut source = String::from("/* one stub per export of the manifest */\n");
        for name in m.symbols_of(runtime.major) {
            let _ = writeln!(source, "void {name}(void) {{}}");
        }
        let c_file = dir.path().join("stubs.c");
        std::fs::write(&c_file, source).unwrap();
        let library = dir.path().join(&runtime.soname);
        let map = versionscripts_dir().join(format!("{}.map", runtime.soname));
        compile_c([
            "-shared".as_ref(),
            "-fPIC".as_ref(),
            "-o".as_ref(),
            library.as_os_str(),
            c_file.as_os_str(),
            format!("-Wl,--version-script={}", map.display()).as_ref(),
            format!("-Wl,-soname,{}", runtime.soname).as_ref(),
        ]);
        let image = read_elf(&library);
        assert_eq!(image.soname.as_deref(), Some(runtime.soname.as_str()));
        assert_eq!(
            image.version_nodes(),
            [runtime.soname.as_str()],
            "version nodes of a library linked with {}",
            map.display()
        );
        let not_func: Vec<&str> = image
            .exports
            .iter()
            .filter(|s| s.kind != SymbolKind::Func)
            .map(|s| s.name.as_str())
            .collect();
        assert!(
            not_func.is_empty(),
            "exports that are not functions: {not_func:?}"
        );
        let built = versioned_exports(&image);
        let real = versioned_exports(&read_elf(&runtime.library));
        assert!(
            built == real,
            "a library linked with {} does not export what {} does: {}",
            map.display(),
            runtime.library.display(),
            list_difference("the linked library", &built, "the real library", &real)
        );
    }
}

#[test]
fn generate_check_passes_on_the_checked_in_tree() {
    run_cudastub(["generate", "--check"]).expect_success();
}

#[test]
fn generate_writes_exactly_the_checked_in_files() {
    let dir = tempdir();
    let out = dir.path().join("versionscripts");
    run_cudastub([
        "generate".as_ref(),
        "--manifest".as_ref(),
        index_path().as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--crates".as_ref(),
        dir.path().join("shim").as_os_str(),
        "--schemas".as_ref(),
        dir.path().join("schemas").as_os_str(),
    ])
    .expect_success();
    let written = snapshot(&out);
    let checked_in = snapshot(&versionscripts_dir());
    let names = |s: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>| {
        s.keys()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&written),
        names(&checked_in),
        "generate wrote other files than versionscripts/ holds (or left temporary files)"
    );
    for (path, bytes) in &written {
        assert!(
            bytes == &checked_in[path],
            "generate wrote a different {}",
            path.display()
        );
    }
    // The JSON Schemas of the reports, generated from their Rust types.
    let schemas = snapshot(&dir.path().join("schemas"));
    assert_eq!(
        schemas,
        snapshot(&cudastub_tests::repo_root().join("schemas")),
        "generate wrote other schemas than schemas/ holds"
    );
    assert_eq!(schemas.len(), 2);
}

#[test]
fn generate_check_names_the_stale_file() {
    let dir = tempdir();
    copy_dir_files(&versionscripts_dir(), dir.path());
    let stale = dir.path().join("libcudart.so.13.map");
    let mut text = std::fs::read_to_string(&stale).unwrap();
    text = text.replacen("    cudaMalloc;\n", "", 1);
    std::fs::write(&stale, &text).unwrap();
    let missing = dir.path().join("libcudart.so.12.symbols");
    std::fs::remove_file(&missing).unwrap();
    let before = snapshot(dir.path());

    let out = run_cudastub([
        "generate".as_ref(),
        "--check".as_ref(),
        "--manifest".as_ref(),
        index_path().as_os_str(),
        "--out".as_ref(),
        dir.path().as_os_str(),
    ]);
    out.expect_code(1);
    // The deleted file is missing; the modified one is shown as the diff
    // that `cudastub generate` would apply to it.
    let stale = stale.display().to_string();
    assert!(
        out.stdout.contains(&format!(
            "{}: missing; run `cudastub generate`\n",
            missing.display()
        )),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!(
            "{stale}: stale; run `cudastub generate`\n--- {stale}\n+++ {stale} (generated)\n@@ "
        )),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("\n     cudaLogsUnregisterCallback;\n+    cudaMalloc;\n     cudaMalloc3D;\n"),
        "the diff should add back cudaMalloc, with context: {out}"
    );
    for current in ["libcudart.so.12.map", "libcudart.so.13.symbols"] {
        assert!(
            !out.stdout.contains(current) && !out.stderr.contains(current),
            "--check names {current}, which is current: {out}"
        );
    }
    assert!(
        out.stderr.contains("2 of ") && out.stderr.contains(" generated files differ"),
        "{out}"
    );
    assert_untouched(dir.path(), &before, &out);
}

#[test]
fn generate_check_with_a_missing_output_directory_is_a_bad_argument() {
    let dir = tempdir();
    let nowhere = dir.path().join("no/such/dir");
    for option in ["--out", "--crates", "--schemas"] {
        let out = run_cudastub([
            "generate".as_ref(),
            "--check".as_ref(),
            option.as_ref(),
            nowhere.as_os_str(),
        ]);
        out.expect_code(2);
        assert_eq!(
            out.stderr,
            format!(
                "{}: error: cannot check: no such directory\n",
                nowhere.display()
            ),
            "{option}: {out}"
        );
        assert!(out.stdout.is_empty(), "{out}");
    }
    assert!(!nowhere.exists(), "--check created {}", nowhere.display());
}

#[test]
fn generate_into_a_path_that_cannot_be_a_directory_exits_2() {
    // Under a regular file nothing can be created, even as root.
    let dir = tempdir();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out_dir = file.join("versionscripts");
    let out = run_cudastub([
        "generate".as_ref(),
        "--manifest".as_ref(),
        index_path().as_os_str(),
        "--out".as_ref(),
        out_dir.as_os_str(),
        "--crates".as_ref(),
        dir.path().join("shim").as_os_str(),
        "--schemas".as_ref(),
        dir.path().join("schemas").as_os_str(),
    ]);
    out.expect_code(2);
    // Every destination is checked before anything is written: each is
    // named, with why it cannot be written.
    assert!(
        out.stderr.contains(&format!("{}/", out_dir.display()))
            && out.stderr.contains("error: cannot write")
            && out.stderr.contains("is not a directory"),
        "{out}"
    );
    assert!(!dir.path().join("shim").exists(), "{out}");
}
