//! Bad input through the `cudastub` binary: every mistake in a manifest or
//! a library is reported like a compiler error (file:line:column and what is
//! wrong), exits 2, and writes nothing.

use std::ffi::OsString;
use std::ops::RangeInclusive;
use std::path::Path;

use cudastub_tests::{
    Outcome, assert_untouched, compile_c, copy_dir_files, copy_manifest_to_tempdir, fixtures,
    location_of, run_cudastub, snapshot, tempdir, versionscripts_dir,
};

/// Where the error must point.
enum At {
    /// This line and column (1-based).
    Exact(usize, usize),
    /// Some column of a line in this range (where the YAML parser decides).
    Lines(RangeInclusive<usize>),
}

/// The commands a manifest goes through, each of which must reject it.
/// Every output of `generate` goes beside `out`, never into the checkout
/// (where a manifest wrongly accepted would otherwise rewrite `shim/`).
fn commands_on(manifest: &Path, out: &Path) -> Vec<Vec<OsString>> {
    let cuda12 = &fixtures().cuda12;
    let beside = |name: &str| out.with_file_name(name).into_os_string();
    vec![
        vec![
            "generate".into(),
            "--manifest".into(),
            manifest.into(),
            "--out".into(),
            out.into(),
            "--crates".into(),
            beside("crates"),
            "--schemas".into(),
            beside("schemas"),
        ],
        vec![
            "generate".into(),
            "--check".into(),
            "--manifest".into(),
            manifest.into(),
            "--out".into(),
            out.into(),
        ],
        vec!["check".into(), "--manifest".into(), manifest.into()],
        vec![
            "import".into(),
            "--manifest".into(),
            manifest.into(),
            "--library".into(),
            cuda12.library.clone().into(),
            "--release".into(),
            cuda12.release.into(),
            "--headers".into(),
            cuda12.include.clone().into(),
        ],
    ]
}

/// Edits a copy of the checked-in manifest with `edit`, runs every command
/// on it, and checks that each exits 2 with an error at `at(edited text)`
/// that contains every one of `needles`, leaving every file as it was.
fn assert_manifest_rejected(
    edit: impl FnOnce(&str) -> String,
    at: impl FnOnce(&str) -> At,
    needles: &[&str],
) {
    let copy = copy_manifest_to_tempdir();
    let edited = edit(&copy.text());
    assert_ne!(edited, copy.text(), "the test's edit changed nothing");
    copy.write(&edited);
    let out = copy.dir.path().join("versionscripts");
    copy_dir_files(&versionscripts_dir(), &out);
    let before = snapshot(copy.dir.path());
    let at = at(&edited);
    let file = copy.path.display().to_string();

    for args in commands_on(&copy.path, &out) {
        let outcome = run_cudastub(&args);
        outcome.expect_code(2);
        let error = outcome
            .stderr
            .lines()
            .find(|l| l.starts_with(&format!("{file}:")) && needles.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| {
                panic!("expected an error naming {file} and {needles:?}: {outcome}")
            });
        let location = error[file.len() + 1..]
            .split(": error: ")
            .next()
            .unwrap_or("");
        let numbers: Vec<usize> = location.split(':').filter_map(|n| n.parse().ok()).collect();
        match (&at, numbers.as_slice()) {
            (At::Exact(line, col), [l, c]) => {
                assert_eq!(
                    (l, c),
                    (line, col),
                    "the error points at the wrong place (expected {line}:{col}): {error}"
                )
            }
            (At::Lines(lines), [l, _]) => {
                assert!(
                    lines.contains(l),
                    "the error should point into lines {lines:?}: {error}"
                )
            }
            _ => panic!("the error should start with {file}:LINE:COLUMN: {error}"),
        }
        assert_untouched(copy.dir.path(), &before, &outcome);
    }
}

/// `(line, column)` of `needle` in `text`, moved `shift` columns right.
fn at(text: &str, needle: &str, shift: usize) -> At {
    let (line, col) = location_of(text, needle);
    At::Exact(line, col + shift)
}

/// The lines of major `n`'s block (`  12:` up to the next major or section).
fn major_block(text: &str, n: u32) -> RangeInclusive<usize> {
    let (start, _) = location_of(text, &format!("\n  {n}:\n"));
    let rest: Vec<&str> = text.lines().skip(start + 1).collect();
    let len = rest
        .iter()
        .position(|l| !l.starts_with("    ") && !l.is_empty())
        .unwrap_or(rest.len());
    (start + 1)..=(start + 1 + len)
}

/// The text with `from` replaced once by `to`; panics when `from` is absent.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the manifest no longer contains `{from}`; update the test"
    );
    text.replacen(from, to, 1)
}

/// The entry `  - name: NAME` … up to the next entry.
fn function_entry<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text
        .find(&format!("\n  - name: {name}\n"))
        .expect("the function's entry")
        + 1;
    let end = text[start + 1..]
        .find("\n  - name: ")
        .map_or(text.len(), |e| start + e + 2);
    &text[start..end]
}

#[test]
fn yaml_syntax_error() {
    assert_manifest_rejected(
        |t| replace_once(t, "    kind: api\n", "    kind: api: x\n"),
        |t| at(t, "api: x", 3),
        &["mapping values are not allowed"],
    );
}

#[test]
fn unknown_field() {
    assert_manifest_rejected(
        |t| replace_once(t, "    kind: api\n", "    kind: api\n    colour: red\n"),
        |t| at(t, "colour: red", 0),
        &["unknown field `colour`"],
    );
}

#[test]
fn duplicate_function() {
    assert_manifest_rejected(
        |t| {
            let entry = function_entry(t, "cudaMalloc");
            replace_once(t, entry, &format!("{entry}{entry}"))
        },
        |t| {
            let first = location_of(t, "\n  - name: cudaMalloc\n").0 + 1;
            let second = first + function_entry(t, "cudaMalloc").lines().count();
            At::Exact(second, 11)
        },
        &["duplicate function `cudaMalloc`"],
    );
}

#[test]
fn function_in_no_major() {
    assert_manifest_rejected(
        |t| {
            let entry = function_entry(t, "cudaMalloc");
            let since = entry
                .lines()
                .find(|l| l.starts_with("    since: "))
                .unwrap();
            replace_once(t, entry, &entry.replacen(since, "    since: {}", 1))
        },
        |t| {
            let (line, _) = location_of(t, "\n  - name: cudaMalloc\n");
            At::Exact(line + 3, 12)
        },
        &["`cudaMalloc`", "no major"],
    );
}

#[test]
fn major_that_stores_its_soname() {
    // The soname and version node come from the library's patterns alone:
    // a major that repeats them could contradict them, so it is rejected.
    assert_manifest_rejected(
        |t| {
            replace_once(
                t,
                "  12:\n    imported:",
                "  12:\n    soname: libcudart.so.12\n    imported:",
            )
        },
        |t| At::Lines(major_block(t, 12)),
        &["soname"],
    );
}

#[test]
fn library_without_a_valid_real_path_variable() {
    assert_manifest_rejected(
        |t| replace_once(t, "  real_path_variable: CUDASTUB_REAL_CUDART\n", ""),
        |_| At::Lines(7..=30),
        &["real_path_variable"],
    );
    assert_manifest_rejected(
        |t| {
            replace_once(
                t,
                "  real_path_variable: CUDASTUB_REAL_CUDART\n",
                "  real_path_variable: \"CUDA HOME\"\n",
            )
        },
        |t| at(t, "real_path_variable: \"CUDA HOME\"", 20),
        &["`CUDA HOME`", "not a valid environment variable name"],
    );
}

#[test]
fn function_name_not_a_c_identifier() {
    assert_manifest_rejected(
        |t| replace_once(t, "  - name: cudaMalloc\n", "  - name: cuda-Malloc\n"),
        |t| at(t, "cuda-Malloc", 0),
        &["`cuda-Malloc`", "not a valid C identifier"],
    );
}

#[test]
fn type_used_but_not_defined() {
    assert_manifest_rejected(
        |t| {
            replace_once(
                t,
                "cudaMalloc(void **devPtr, size_t size)",
                "cudaMalloc(void **devPtr, cudaSizeThing size)",
            )
        },
        |t| at(t, "\"cudaError_t cudaMalloc(", 0),
        &["`cudaSizeThing`", "not defined", "major 12"],
    );
    // In a prototype of one major only: the error points at that major's line.
    assert_manifest_rejected(
        |t| {
            replace_once(
                t,
                "advice, struct cudaMemLocation location)",
                "advice, struct cudaMemLocationX location)",
            )
        },
        |t| {
            at(
                t,
                "\"cudaError_t cudaMemAdvise(const void *devPtr, size_t count, enum cudaMemoryAdvise advice, struct",
                0,
            )
        },
        &["`struct cudaMemLocationX`", "not defined", "major 13"],
    );
}

#[test]
fn prototype_parse_error_points_at_the_column() {
    // The missing comma: the parser stops at `size_t`.
    assert_manifest_rejected(
        |t| {
            replace_once(
                t,
                "cudaMalloc(void **devPtr, size_t size)",
                "cudaMalloc(void **devPtr size_t size)",
            )
        },
        |t| {
            at(
                t,
                "cudaMalloc(void **devPtr size_t",
                "cudaMalloc(void **devPtr ".len(),
            )
        },
        &["cudaMalloc(void **devPtr size_t size)", "expected"],
    );
    // In a prototype of one major only, the missing `)` is at the closing quote.
    assert_manifest_rejected(
        |t| {
            replace_once(
                t,
                "advice, struct cudaMemLocation location)",
                "advice, struct cudaMemLocation location",
            )
        },
        |t| {
            at(
                t,
                "advice, struct cudaMemLocation location\"",
                "advice, struct cudaMemLocation location".len(),
            )
        },
        &["cudaMemAdvise", "expected `)`"],
    );
}

/// Runs `import` of `library` on a copy of the manifest and checks it exits
/// 2 with an error naming the library and containing `needles`, with the
/// manifest's directory untouched.
fn assert_library_rejected(library: &Path, needles: &[&str]) {
    let copy = copy_manifest_to_tempdir();
    let before = snapshot(copy.dir.path());
    let include = &fixtures().cuda12.include;
    let outcome: Outcome = run_cudastub([
        "import".as_ref(),
        "--manifest".as_ref(),
        copy.path.as_os_str(),
        "--library".as_ref(),
        library.as_os_str(),
        "--release".as_ref(),
        "12.9.79".as_ref(),
        "--headers".as_ref(),
        include.as_os_str(),
    ]);
    outcome.expect_code(2);
    let name = library.display().to_string();
    assert!(
        outcome
            .stderr
            .lines()
            .any(|l| l.starts_with(&format!("{name}: error: "))
                && needles.iter().all(|n| l.contains(n))),
        "expected `{name}: error: ` with {needles:?}: {outcome}"
    );
    assert_untouched(copy.dir.path(), &before, &outcome);
}

#[test]
fn import_of_a_text_file() {
    let dir = tempdir();
    let text = dir.path().join("libcudart.so.12");
    std::fs::write(&text, "this is not a library\n").unwrap();
    assert_library_rejected(&text, &["not an ELF file"]);
}

#[test]
fn import_of_a_32_bit_elf_file() {
    let dir = tempdir();
    let path = dir.path().join("libcudart.so.12");
    // An ELFCLASS32 little-endian ET_DYN header for i386; the class alone decides.
    let mut header = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for half in [3u16, 3] {
        header.extend(half.to_le_bytes()); // e_type ET_DYN, e_machine EM_386
    }
    header.extend(1u32.to_le_bytes()); // e_version
    header.extend([0u8; 12]); // e_entry, e_phoff, e_shoff
    header.extend(0u32.to_le_bytes()); // e_flags
    for half in [52u16, 32, 0, 40, 0, 0] {
        header.extend(half.to_le_bytes()); // e_ehsize … e_shstrndx
    }
    assert_eq!(header.len(), 52);
    std::fs::write(&path, header).unwrap();
    assert_library_rejected(&path, &["32-bit"]);
}

#[test]
fn import_of_an_object_file() {
    let dir = tempdir();
    let source = dir.path().join("f.c");
    std::fs::write(&source, "int cudaMalloc(void) { return 0; }\n").unwrap();
    let object = dir.path().join("f.o");
    compile_c([
        "-c".as_ref(),
        "-fPIC".as_ref(),
        source.as_os_str(),
        "-o".as_ref(),
        object.as_os_str(),
    ]);
    assert_library_rejected(&object, &["no dynamic section"]);
}

#[test]
fn import_of_a_library_with_another_soname() {
    let dir = tempdir();
    let source = dir.path().join("f.c");
    std::fs::write(&source, "int cudaMalloc(void) { return 0; }\n").unwrap();
    let library = dir.path().join("libfoo.so.12");
    compile_c([
        "-shared".as_ref(),
        "-fPIC".as_ref(),
        source.as_os_str(),
        "-Wl,-soname,libfoo.so.12".as_ref(),
        "-o".as_ref(),
        library.as_os_str(),
    ]);
    assert_library_rejected(&library, &["soname `libfoo.so.12`", "libcudart.so.{major}"]);
}

#[test]
fn import_of_a_library_with_unversioned_exports() {
    let dir = tempdir();
    let source = dir.path().join("f.c");
    std::fs::write(&source, "int cudaMalloc(void) { return 0; }\n").unwrap();
    let library = dir.path().join("libcudart.so.12");
    compile_c([
        "-shared".as_ref(),
        "-fPIC".as_ref(),
        source.as_os_str(),
        "-Wl,-soname,libcudart.so.12".as_ref(),
        "-o".as_ref(),
        library.as_os_str(),
    ]);
    assert_library_rejected(&library, &["`cudaMalloc`", "cudaMalloc@@libcudart.so.12"]);
}

// ---------------------------------------------------------------------------
// Mistakes that once passed `check` and then broke the build (issue 12)

#[test]
fn status_value_not_in_the_status_enum() {
    // Once accepted; the shim's build then failed with hundreds of rustc errors.
    assert_manifest_rejected(
        |t| replace_once(t, "    success: cudaSuccess\n", "    success: cudaSucess\n"),
        |t| at(t, "cudaSucess", 0),
        &[
            "`cudaSucess`",
            "(success)",
            "not a value of `enum cudaError`",
            "major 12",
        ],
    );
}

#[test]
fn pointer_levels_beyond_the_limit() {
    // 50 000 levels once passed, then overflowed the build script's stack.
    let deep = format!("void {}devPtr", "*".repeat(50_000));
    assert_manifest_rejected(
        |t| {
            replace_once(
                t,
                "cudaMalloc(void **devPtr, size_t size)",
                &format!("cudaMalloc({deep}, size_t size)"),
            )
        },
        |t| at(t, "cudaMalloc(void *", "cudaMalloc(void ".len() + 8),
        &["50000 pointer levels", "at most 8"],
    );
}

#[test]
fn aggregate_size_beyond_the_limit() {
    // 2^64 - 4 (a multiple of the alignment) was accepted.
    assert_manifest_rejected(
        |t| {
            replace_once(
                t,
                "      struct dim3:\n        size: 12\n",
                "      struct dim3:\n        size: 18446744073709551612\n",
            )
        },
        |t| {
            let (line, _) = location_of(t, "      struct dim3:\n        size: 1844");
            At::Lines(line..=line + 1)
        },
        &[
            "`struct dim3`",
            "size 18446744073709551612",
            "at most 1048576",
        ],
    );
}

#[test]
fn a_huge_prototype_is_not_echoed_whole() {
    // A 200 KB prototype with an error near its start was repeated in full.
    let copy = copy_manifest_to_tempdir();
    let nested = format!("cudaMalloc({}", "(".repeat(200_000));
    copy.write(&replace_once(
        &copy.text(),
        "cudaMalloc(void **devPtr, size_t size)",
        &nested,
    ));
    let outcome = run_cudastub([
        "check".as_ref(),
        "--manifest".as_ref(),
        copy.path.as_os_str(),
    ]);
    outcome.expect_code(2);
    let file = copy.path.display().to_string();
    assert!(
        outcome.stderr.starts_with(&format!("{file}:"))
            && outcome.stderr.contains(&format!(
                "({} bytes in all)",
                "cudaError_t ".len() + nested.len()
            )),
        "{}",
        &outcome.stderr[..outcome.stderr.len().min(2000)]
    );
    assert!(
        outcome.stderr.len() < 1000,
        "the error repeats {} bytes of input",
        outcome.stderr.len()
    );
}

#[test]
fn a_manifest_that_is_not_utf8_is_reported_at_its_line_and_column() {
    let copy = copy_manifest_to_tempdir();
    let mut bytes = copy.text().into_bytes();
    // Inside the third line (a comment): column 5.
    let third = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .map(|(i, _)| i + 1)
        .expect("three lines");
    bytes[third + 4] = 0xff;
    std::fs::write(&copy.path, bytes).expect("write");
    let outcome = run_cudastub([
        "check".as_ref(),
        "--manifest".as_ref(),
        copy.path.as_os_str(),
    ]);
    outcome.expect_code(2);
    assert_eq!(
        outcome.stderr.trim_end(),
        format!(
            "{}:3:5: error: the manifest is not valid UTF-8",
            copy.path.display()
        ),
        "{outcome}"
    );
}

#[test]
fn a_manifest_major_out_of_range_is_an_error_not_a_file_name() {
    for spec in [
        "cuda-api.yaml#4294967296",
        "cuda-api.yaml#cudart/4294967296",
    ] {
        let outcome = run_cudastub(["diff", spec, "cuda-api.yaml#12"]);
        outcome.expect_code(2);
        assert!(
            outcome.stderr.contains(&format!(
                "cuda-api.yaml: error: major `4294967296` in `{spec}` is out of range"
            )),
            "{outcome}"
        );
        assert!(!outcome.stderr.contains("cannot read"), "{outcome}");
    }
}

// ---------------------------------------------------------------------------
// Types and names that once passed `check` and then broke the build (issue 20)

#[test]
fn a_typedef_cycle_is_rejected_at_its_first_type() {
    // `EGLint` → `khronos_int32_t` → `EGLint`: the shim failed to compile,
    // and the C header of a C implementation overflowed its generator's stack.
    assert_manifest_rejected(
        |t| {
            replace_once(
                t,
                "      khronos_int32_t: {typedef: \"int32_t\"}\n",
                "      khronos_int32_t: {typedef: \"EGLint\"}\n",
            )
        },
        |t| {
            let (line, _) = location_of(t, "      EGLint: {typedef: \"khronos_int32_t\"}");
            At::Lines(line..=line)
        },
        &[
            "type `EGLint` of major 12 is defined through itself",
            "`EGLint` → `khronos_int32_t` → `EGLint`",
        ],
    );
}

#[test]
fn a_struct_containing_itself_is_rejected_at_the_struct() {
    // Through its typedef: `struct dim3` → `dim3` → `struct dim3`.
    assert_manifest_rejected(
        |t| {
            replace_once(
                t,
                "          - {offset: 8, decl: \"unsigned int z\"}\n      struct uint3:",
                "          - {offset: 8, decl: \"dim3 z\"}\n      struct uint3:",
            )
        },
        |t| {
            let (line, _) = location_of(t, "      struct dim3:\n        size: 12");
            At::Lines(line..=line + 1)
        },
        &[
            "type `struct dim3` of major 12 contains itself by value",
            "`struct dim3` → `dim3` → `struct dim3`",
        ],
    );
}

#[test]
fn a_function_named_like_a_rust_keyword_without_raw_form_is_rejected() {
    // `r#self` does not exist: no Rust item can carry the name (other
    // keywords, such as `match`, are exported as raw identifiers).
    assert_manifest_rejected(
        |t| replace_once(t, "  - name: cudaMalloc\n", "  - name: self\n"),
        |t| at(t, "name: self\n", "name: ".len()),
        &["function name `self`", "Rust keyword", "cannot export"],
    );
}

#[test]
fn an_unknown_export_of_ten_mib_is_not_echoed_whole() {
    // `import --exports` repeated every name it found no prototype for in
    // full: a 10 MiB line gave a 10 MiB error.
    let copy = copy_manifest_to_tempdir();
    let before = snapshot(copy.dir.path());
    let work = tempdir();
    let list = work.path().join("exports.txt");
    let long = "x".repeat(10 << 20);
    std::fs::write(&list, format!("cudaMalloc\n{long}\n")).expect("write the list");
    let include = &fixtures().cuda12.include;
    let outcome = run_cudastub([
        "import".as_ref(),
        "--manifest".as_ref(),
        copy.path.as_os_str(),
        "--exports".as_ref(),
        list.as_os_str(),
        "--major".as_ref(),
        "12".as_ref(),
        "--release".as_ref(),
        "12.9.80".as_ref(),
        "--headers".as_ref(),
        include.as_os_str(),
    ]);
    outcome.expect_code(2);
    let head = &outcome.stderr[..outcome.stderr.len().min(2000)];
    assert!(
        outcome
            .stderr
            .starts_with(&format!("{}: error: ", list.display()))
            && outcome
                .stderr
                .contains(&format!("({} bytes in all)", long.len())),
        "expected an error naming {} and the name's length: {head}",
        list.display()
    );
    assert!(
        outcome.stderr.len() < 2000,
        "the error repeats {} bytes of input: {head}",
        outcome.stderr.len()
    );
    assert_untouched(copy.dir.path(), &before, &outcome);
}

#[test]
fn a_function_named_like_a_rust_keyword_is_exported_under_its_c_name() {
    // `match` passed `check`, then the shim's source did not parse
    // (`fn match()`). As a raw identifier (`r#match`) its `#[no_mangle]`
    // symbol is `match`, and the version directive names `match`.
    let text = std::fs::read_to_string(cudastub_tests::manifest_path()).expect("read the manifest");
    let text = replace_once(&text, "  - name: cudaMalloc\n", "  - name: match\n")
        .replace("cudaError_t cudaMalloc(", "cudaError_t match(");
    let m = cudastub_codegen::manifest::parse(Path::new("cudart.yaml"), &text)
        .unwrap_or_else(|e| panic!("a function named `match` is a valid export: {e}"));
    let view = cudastub_codegen::view::LibraryMajor::new(&m, 12).expect("major 12");
    let source = cudastub_codegen::emit::shim::forwarding_source(&view)
        .unwrap_or_else(|e| panic!("the shim's source of a function named `match`: {e}"));
    assert!(
        source.contains("pub unsafe extern \"C\" fn r#match()"),
        "the export should be the raw identifier `r#match`"
    );
    assert!(
        source.contains(".symver match, match@@@libcudart.so.12"),
        "the version directive should name the C symbol `match`"
    );
    assert!(!source.contains("r#match@"), "no `r#` in a symbol name");
}
