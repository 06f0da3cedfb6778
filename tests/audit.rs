//! `cudastub audit`: every kind of difference is found in a library built to
//! have it, the shims match the real runtimes, and a consumer's versioned
//! requirements are checked the way the dynamic loader checks them.
//!
//! The broken libraries are small C stubs for every function of a major,
//! linked by the C compiler with a version script; each test first checks,
//! with `readelf`, that the library really has the defect it is about.

#[allow(dead_code)]
mod support_audit;

use std::path::Path;
use std::process::Command;

use cudastub_tests::{fixtures, run, tempdir};
use support_audit::{
    CONSUMER_CALLS, StubLibrary, audit, consumer_of_real_runtime, dist_shim, findings, json,
    manifest_functions, readelf_symbol, version_script,
};

/// The version script of major 12 with `name` left out of the node.
fn script_without(name: &str, local_all: bool) -> String {
    let globals: Vec<String> = manifest_functions(12)
        .into_iter()
        .filter(|f| f != name)
        .collect();
    version_script("libcudart.so.12", &globals, local_all)
}

/// Audits `lib` (plus `extra` arguments) in JSON and text; checks that both
/// agree on the verdict and exit with `code`, that the text ends with the
/// summary line and the JSON matches schemas/audit.schema.json; returns the
/// text and the JSON.
fn audit_both(lib: &Path, extra: &[&str], code: i32) -> (String, serde_json::Value) {
    let mut args: Vec<&std::ffi::OsStr> = vec![lib.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let text = audit(&args);
    text.expect_code(code);
    args.extend(["--format", "json"].map(std::ffi::OsStr::new));
    let j = audit(&args);
    j.expect_code(code);
    let report = json(&j);
    assert_eq!(report["schema_version"], 3, "{j}");
    let mut summary = format!(
        "1 library, {} difference{}, {} warning{}",
        report["errors"],
        if report["errors"] == 1 { "" } else { "s" },
        report["warnings"],
        if report["warnings"] == 1 { "" } else { "s" },
    );
    if report["notes"] != 0 {
        summary.push_str(&format!(
            ", {} expected addition{}",
            report["notes"],
            if report["notes"] == 1 { "" } else { "s" }
        ));
    }
    assert_eq!(text.stdout.lines().last(), Some(summary.as_str()), "{text}");
    assert_eq!(
        report["verdict"],
        if code == 0 { "ok" } else { "different" },
        "{j}"
    );
    (text.stdout, report)
}

#[test]
fn a_stub_library_linked_with_the_generated_script_is_clean() {
    let dir = tempdir();
    let lib = StubLibrary::like_manifest(12).build(dir.path(), "libcudart.so.12");
    let (text, report) = audit_both(&lib, &[], 0);
    assert_eq!(
        text.lines().next().unwrap_or(""),
        format!(
            "{}: OK — 435 exports match codegen/api/cudart.yaml major 12",
            lib.display()
        ),
        "{text}"
    );
    assert_eq!(report["errors"], 0);
    assert_eq!(report["exports"], 435);
    assert_eq!(report["checks"][0]["compared"], 435);
}

#[test]
fn a_function_left_out_of_the_version_script_is_missing() {
    let dir = tempdir();
    let mut stub = StubLibrary::like_manifest(12);
    stub.version_script = Some(script_without("cudaGetDeviceCount", true));
    let lib = stub.build(dir.path(), "libcudart.so.12");
    assert_eq!(
        readelf_symbol(&lib, "cudaGetDeviceCount"),
        None,
        "`local: *` should have hidden cudaGetDeviceCount"
    );
    let (text, report) = audit_both(&lib, &[], 1);
    assert_eq!(
        text.lines().next(),
        Some(format!("{}: 1 difference", lib.display()).as_str()),
        "{text}"
    );
    assert!(
        text.contains("missing, against codegen/api/cudart.yaml major 12 (1):\n  cudaGetDeviceCount@@libcudart.so.12 is not exported\n"),
        "{text}"
    );
    assert_eq!(
        findings(&report),
        [(
            "manifest".into(),
            "missing".into(),
            "cudaGetDeviceCount@@libcudart.so.12".into()
        )]
    );
    // What should be there, as data; nothing is there.
    assert_eq!(
        report["findings"][0]["expected"],
        serde_json::json!({"name": "cudaGetDeviceCount", "version": "libcudart.so.12", "binding": "default", "type": "FUNC", "size": null})
    );
    assert!(report["findings"][0]["found"].is_null(), "{report}");
}

#[test]
fn a_global_the_version_node_does_not_name_is_exported_unversioned() {
    // Without `local: *`, GNU ld keeps a global the script does not name
    // exported, with version index 1 (VER_NDX_GLOBAL): no version at all.
    let dir = tempdir();
    let mut stub = StubLibrary::like_manifest(12);
    stub.version_script = Some(script_without("cudaFree", false));
    let lib = stub.build(dir.path(), "libcudart.so.12");
    assert_eq!(
        readelf_symbol(&lib, "cudaFree").as_deref(),
        Some("cudaFree"),
        "cudaFree should be exported without a version"
    );
    let (text, report) = audit_both(&lib, &[], 1);
    assert_eq!(
        first_line_of(&text),
        format!("{}: 1 difference", lib.display())
    );
    assert!(
        text.contains(
            "unversioned, against codegen/api/cudart.yaml major 12 (1):\n  cudaFree is exported without a version\n"
        ),
        "{text}"
    );
    assert_eq!(
        findings(&report),
        [("manifest".into(), "unversioned".into(), "cudaFree".into())]
    );
    assert_eq!(
        report["findings"][0]["found"],
        serde_json::json!({"name": "cudaFree", "version": null, "binding": "unversioned", "type": "FUNC", "size": null})
    );
    assert_eq!(report["findings"][0]["expected"]["binding"], "default");
}

fn first_line_of(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

#[test]
fn a_misnamed_node_is_reported_in_the_definitions_and_for_each_export() {
    let dir = tempdir();
    let mut stub = StubLibrary::like_manifest(12);
    stub.version_script = Some(version_script("libcudart.so.12.9", &stub.functions, true));
    let lib = stub.build(dir.path(), "libcudart.so.12");
    assert_eq!(
        readelf_symbol(&lib, "cudaMalloc").as_deref(),
        Some("cudaMalloc@@libcudart.so.12.9")
    );
    let (text, report) = audit_both(&lib, &[], 1);
    // The definitions, and each of the 435 exports.
    assert_eq!(
        first_line_of(&text),
        format!("{}: 436 differences", lib.display())
    );
    assert!(
        text.contains("wrong version definitions, against codegen/api/cudart.yaml major 12 (1):\n  version definitions are [libcudart.so.12 (base), libcudart.so.12.9], expected [libcudart.so.12 (base), libcudart.so.12]\n"),
        "{text}"
    );
    assert!(
        text.contains("wrong version, against codegen/api/cudart.yaml major 12 (435):\n"),
        "{text}"
    );
    assert!(
        text.contains("  cudaMalloc is exported as cudaMalloc@@libcudart.so.12.9, expected cudaMalloc@@libcudart.so.12\n"),
        "{text}"
    );
    let f = findings(&report);
    assert!(f.contains(&(
        "manifest".into(),
        "wrong-version".into(),
        "cudaMalloc".into()
    )));
    assert_eq!(
        f.iter().filter(|(_, k, _)| k == "wrong-version").count(),
        435
    );
    // Version definitions as `{name, base}`, not prose.
    let defs = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["kind"] == "wrong-version-definitions")
        .expect("a wrong-version-definitions finding");
    assert_eq!(
        defs["expected"],
        serde_json::json!([{"name": "libcudart.so.12", "base": true}, {"name": "libcudart.so.12", "base": false}])
    );
    assert_eq!(
        defs["found"],
        serde_json::json!([{"name": "libcudart.so.12", "base": true}, {"name": "libcudart.so.12.9", "base": false}])
    );
    let malloc = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["kind"] == "wrong-version" && f["symbol"] == "cudaMalloc")
        .expect("cudaMalloc's wrong-version finding");
    assert_eq!(malloc["found"][0]["version"], "libcudart.so.12.9");
    assert_eq!(malloc["expected"][0]["version"], "libcudart.so.12");
}

#[test]
fn an_export_the_manifest_does_not_list_is_extra() {
    let dir = tempdir();
    let mut stub = StubLibrary::like_manifest(12);
    stub.functions.push("cudaNotInTheManifest".into());
    stub.version_script = Some(version_script("libcudart.so.12", &stub.functions, true));
    let lib = stub.build(dir.path(), "libcudart.so.12");
    let (text, report) = audit_both(&lib, &[], 1);
    assert_eq!(
        first_line_of(&text),
        format!("{}: 1 difference", lib.display())
    );
    assert!(
        text.contains("extra, against codegen/api/cudart.yaml major 12 (1):\n  cudaNotInTheManifest@@libcudart.so.12 is exported but should not be\n"),
        "{text}"
    );
    assert_eq!(
        findings(&report),
        [(
            "manifest".into(),
            "extra".into(),
            "cudaNotInTheManifest@@libcudart.so.12".into()
        )]
    );
}

#[test]
fn a_wrong_soname_is_reported_and_the_major_must_be_given() {
    let dir = tempdir();
    let mut stub = StubLibrary::like_manifest(12);
    stub.soname = "libcudart.so.12.9".into();
    let lib = stub.build(dir.path(), "libcudart.so.12");
    // The library and major cannot come from a soname that matches no pattern.
    let o = audit([lib.as_os_str()]);
    o.expect_code(2);
    assert!(
        o.stderr.contains(&lib.display().to_string())
            && o.stderr.contains("soname libcudart.so.12.9")
            && o.stderr.contains("pass --lib and --major"),
        "{o}"
    );
    let (text, report) = audit_both(&lib, &["--lib", "cudart", "--major", "12"], 1);
    // The soname, and the base version definition named after it.
    assert_eq!(
        first_line_of(&text),
        format!("{}: 2 differences", lib.display())
    );
    assert!(
        text.contains("wrong soname, against codegen/api/cudart.yaml major 12 (1):\n  soname is libcudart.so.12.9, expected libcudart.so.12\n"),
        "{text}"
    );
    let kinds: Vec<String> = findings(&report).into_iter().map(|f| f.1).collect();
    assert_eq!(kinds, ["wrong-soname", "wrong-version-definitions"]);
    assert_eq!(report["findings"][0]["found"], "libcudart.so.12.9");
    assert_eq!(report["findings"][0]["expected"], "libcudart.so.12");
}

#[test]
fn a_hidden_version_is_reported() {
    let dir = tempdir();
    let mut stub = StubLibrary::like_manifest(12).without_definition("cudaFree");
    stub.hidden
        .push(("cudaFree".into(), "libcudart.so.12".into()));
    let lib = stub.build(dir.path(), "libcudart.so.12");
    assert_eq!(
        readelf_symbol(&lib, "cudaFree").as_deref(),
        Some("cudaFree@libcudart.so.12")
    );
    let (text, report) = audit_both(&lib, &[], 1);
    assert_eq!(
        first_line_of(&text),
        format!("{}: 1 difference", lib.display())
    );
    assert!(
        text.contains("hidden, against codegen/api/cudart.yaml major 12 (1):\n  cudaFree@libcudart.so.12 is exported as a hidden (non-default) version\n"),
        "{text}"
    );
    assert_eq!(
        findings(&report),
        [(
            "manifest".into(),
            "hidden".into(),
            "cudaFree@libcudart.so.12".into()
        )]
    );
    assert_eq!(report["findings"][0]["found"]["binding"], "hidden");
    assert_eq!(report["findings"][0]["expected"]["binding"], "default");
}

#[test]
fn a_data_symbol_in_place_of_a_function_is_the_wrong_type() {
    let dir = tempdir();
    let mut stub = StubLibrary::like_manifest(12).without_definition("cudaFree");
    stub.objects.push("cudaFree".into());
    let lib = stub.build(dir.path(), "libcudart.so.12");
    let (text, report) = audit_both(&lib, &[], 1);
    assert!(
        text.contains("wrong type, against codegen/api/cudart.yaml major 12 (1):\n  cudaFree is a OBJECT (4 bytes) symbol, expected FUNC\n"),
        "{text}"
    );
    assert_eq!(
        findings(&report),
        [("manifest".into(), "wrong-type".into(), "cudaFree".into())]
    );
    assert_eq!(report["findings"][0]["found"][0]["type"], "OBJECT");
    assert_eq!(report["findings"][0]["expected"][0]["type"], "FUNC");
}

#[test]
fn the_real_runtimes_match_the_manifest() {
    for rt in fixtures().runtimes() {
        let (text, report) = audit_both(&rt.library, &[], 0);
        assert_eq!(
            first_line_of(&text),
            format!(
                "{}: OK — {} exports match codegen/api/cudart.yaml major {}",
                rt.library.display(),
                rt.export_count,
                rt.major
            )
        );
        assert_eq!(report["exports"], rt.export_count);
    }
}

#[test]
fn the_shims_match_the_real_runtimes() {
    for rt in fixtures().runtimes() {
        let shim = dist_shim(rt.major);
        let (text, report) = audit_both(
            &shim,
            &["--reference", &rt.library.display().to_string()],
            0,
        );
        assert_eq!(
            first_line_of(&text),
            format!(
                "{}: OK — {} exports match codegen/api/cudart.yaml major {} and {}",
                shim.display(),
                rt.export_count,
                rt.major,
                rt.library.display()
            )
        );
        assert_eq!(report["checks"][1]["against"], "reference");
        assert_eq!(report["checks"][1]["compared"], rt.export_count);
        assert_eq!(report["findings"].as_array().map(Vec::len), Some(0));
    }
}

#[test]
fn a_reference_of_another_major_differs_in_every_shared_name() {
    // Real 13 against real 12: 30 names only in 12, 53 only in 13, 405 in
    // both with another version node, the soname and the definitions.
    let f = fixtures();
    let (text, report) = audit_both(
        &f.cuda13.library,
        &["--reference", &f.cuda12.library.display().to_string()],
        1,
    );
    assert_eq!(
        first_line_of(&text),
        format!("{}: 490 differences", f.cuda13.library.display())
    );
    let f = findings(&report);
    let count = |kind: &str| {
        f.iter()
            .filter(|x| x.0 == "reference" && x.1 == kind)
            .count()
    };
    assert_eq!(count("missing"), 30);
    assert_eq!(count("extra"), 53);
    assert_eq!(count("wrong-version"), 405);
    assert_eq!(count("wrong-soname"), 1);
    assert!(f.contains(&(
        "reference".into(),
        "missing".into(),
        "cudaThreadExit@@libcudart.so.12".into()
    )));
    assert!(f.iter().all(|x| x.0 == "reference"), "{f:?}");
}

/// Runs `exe` with `lib_dir` first in the search path and every symbol bound
/// at start, the way the tests of the loader's facts do.
fn run_bound_now(exe: &Path, lib_dir: &Path) -> cudastub_tests::Outcome {
    run(Command::new(exe)
        .env("LD_LIBRARY_PATH", lib_dir)
        .env("LD_BIND_NOW", "1"))
}

#[test]
fn a_consumer_needing_a_function_the_library_lacks_is_named() {
    let dir = tempdir();
    let app = consumer_of_real_runtime(12, dir.path());
    let libs = dir.path().join("lib");
    std::fs::create_dir(&libs).expect("mkdir");
    let mut stub = StubLibrary::like_manifest(12);
    stub.version_script = Some(script_without("cudaGetDeviceCount", true));
    let lib = stub.build(&libs, "libcudart.so.12");

    let app_arg = app.display().to_string();
    let (text, report) = audit_both(&lib, &["--consumer", &app_arg], 1);
    assert_eq!(
        first_line_of(&text),
        format!("{}: 2 differences", lib.display())
    );
    assert!(
        text.contains(&format!(
            "unsatisfied, needed by {app_arg} (1):\n  cudaGetDeviceCount@libcudart.so.12 is required but not exported\n"
        )),
        "{text}"
    );
    let consumer_findings: Vec<_> = findings(&report)
        .into_iter()
        .filter(|f| f.0 == "consumer")
        .collect();
    assert_eq!(
        consumer_findings,
        [(
            "consumer".into(),
            "unsatisfied".into(),
            "cudaGetDeviceCount@libcudart.so.12".into()
        )]
    );
    assert_eq!(report["checks"][1]["path"], app_arg.as_str());
    assert_eq!(report["checks"][1]["compared"], CONSUMER_CALLS.len());
    let unsatisfied = &report["findings"][1];
    assert_eq!(
        unsatisfied["expected"],
        serde_json::json!({"name": "cudaGetDeviceCount", "version": "libcudart.so.12", "weak": false})
    );
    assert_eq!(unsatisfied["found"], serde_json::json!([]), "{report}");

    // The loader agrees: the same symbol and version, at start.
    let o = run_bound_now(&app, &libs);
    assert_eq!(o.code, Some(127), "{o}");
    assert!(
        o.stderr
            .contains("undefined symbol: cudaGetDeviceCount, version libcudart.so.12"),
        "{o}"
    );
}

#[test]
fn a_consumer_whose_requirements_are_all_met_passes_and_runs() {
    let dir = tempdir();
    let app = consumer_of_real_runtime(12, dir.path());
    let libs = dir.path().join("lib");
    std::fs::create_dir(&libs).expect("mkdir");
    let lib = StubLibrary::like_manifest(12).build(&libs, "libcudart.so.12");
    let app_arg = app.display().to_string();
    let (text, _) = audit_both(&lib, &["--consumer", &app_arg], 0);
    assert_eq!(
        first_line_of(&text),
        format!(
            "{}: OK — 435 exports match codegen/api/cudart.yaml major 12; meet the 5 requirements of 1 consumer",
            lib.display()
        )
    );
    run_bound_now(&app, &libs).expect_success();
}

#[test]
fn the_shims_meet_consumers_linked_against_the_real_runtimes() {
    let dir = tempdir();
    for rt in fixtures().runtimes() {
        let app = consumer_of_real_runtime(rt.major, dir.path());
        let shim = dist_shim(rt.major);
        let (text, report) = audit_both(
            &shim,
            &[
                "--reference",
                &rt.library.display().to_string(),
                "--consumer",
                &app.display().to_string(),
            ],
            0,
        );
        assert!(
            first_line_of(&text).ends_with("; meet the 5 requirements of 1 consumer"),
            "{text}"
        );
        assert_eq!(report["checks"][2]["compared"], 5);
    }
}

#[test]
fn a_consumer_of_another_major_is_a_warning() {
    let dir = tempdir();
    let app13 = consumer_of_real_runtime(13, dir.path());
    let lib = StubLibrary::like_manifest(12).build(dir.path(), "libcudart.so.12");
    let app_arg = app13.display().to_string();
    let (text, report) = audit_both(&lib, &["--consumer", &app_arg], 0);
    assert!(first_line_of(&text).ends_with(" (1 warning)"), "{text}");
    assert!(
        text.contains(&format!(
            "warning: not a consumer, needed by {app_arg} (1):\n  needs nothing from libcudart.so.12"
        )),
        "{text}"
    );
    assert_eq!(report["warnings"], 1);
    assert_eq!(report["findings"][0]["severity"], "warning");
    assert_eq!(report["findings"][0]["kind"], "not-a-consumer");
    assert_eq!(
        report["findings"][0]["expected"],
        serde_json::json!({"soname": "libcudart.so.12"})
    );

    // --quiet: a library without errors prints only the summary.
    let quiet = audit([
        lib.as_os_str(),
        "--consumer".as_ref(),
        app13.as_os_str(),
        "-q".as_ref(),
    ]);
    quiet.expect_success();
    assert_eq!(
        quiet.stdout, "1 library, 0 differences, 1 warning\n",
        "{quiet}"
    );
}

#[test]
fn a_consumer_linked_without_versions_is_a_warning_and_checked_by_name() {
    let dir = tempdir();
    // Link the consumer against a library with no version information: its
    // binary needs libcudart.so.12 but requires no version of it.
    let unversioned_dir = dir.path().join("unversioned");
    std::fs::create_dir(&unversioned_dir).expect("mkdir");
    let mut stub = StubLibrary::like_manifest(12);
    stub.version_script = None;
    let unversioned = stub.build(&unversioned_dir, "libcudart.so.12");
    let app = dir.path().join("consumer-unversioned");
    cudastub_tests::compile_c([
        "-o".into(),
        app.display().to_string(),
        cudastub_tests::repo_root()
            .join("tests/c/consumer.c")
            .display()
            .to_string(),
        unversioned.display().to_string(),
    ]);
    let app_arg = app.display().to_string();

    let good = StubLibrary::like_manifest(12).build(dir.path(), "libcudart.so.12");
    let (text, report) = audit_both(&good, &["--consumer", &app_arg], 0);
    assert!(first_line_of(&text).ends_with(" (1 warning)"), "{text}");
    assert!(
        text.contains("warning: unversioned requirements, needed by"),
        "{text}"
    );
    assert!(
        text.contains("its 5 references to the library's functions bind by name only"),
        "{text}"
    );
    assert_eq!(report["findings"][0]["kind"], "unversioned-requirements");
    assert_eq!(
        report["findings"][0]["found"],
        serde_json::json!({"soname": "libcudart.so.12", "references": 5})
    );

    let lacking = StubLibrary::like_manifest(12).without_definition("cudaGetErrorName");
    let mut lacking = lacking;
    lacking.version_script = Some(script_without("cudaGetErrorName", true));
    let bad_dir = dir.path().join("bad");
    std::fs::create_dir(&bad_dir).expect("mkdir");
    let bad = lacking.build(&bad_dir, "libcudart.so.12");
    let (text, report) = audit_both(&bad, &["--consumer", &app_arg], 1);
    assert!(
        text.contains(&format!(
            "unsatisfied, needed by {app_arg} (1):\n  cudaGetErrorName is required but not exported\n"
        )),
        "{text}"
    );
    assert!(findings(&report).contains(&(
        "consumer".into(),
        "unsatisfied".into(),
        "cudaGetErrorName".into()
    )));
}

#[test]
fn the_json_report_has_the_documented_keys() {
    let dir = tempdir();
    let app = consumer_of_real_runtime(12, dir.path());
    let mut stub = StubLibrary::like_manifest(12);
    stub.version_script = Some(script_without("cudaGetDeviceCount", true));
    let lib = stub.build(dir.path(), "libcudart.so.12");
    let o = audit([
        lib.as_os_str(),
        "--reference".as_ref(),
        fixtures().cuda12.library.as_os_str(),
        "--consumer".as_ref(),
        app.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    o.expect_code(1);
    let r = json(&o);
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {v}"))
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&r),
        [
            "checks",
            "errors",
            "exports",
            "findings",
            "library",
            "notes",
            "schema_version",
            "soname",
            "verdict",
            "warnings"
        ]
    );
    assert_eq!(r["library"], lib.display().to_string());
    assert_eq!(r["soname"], "libcudart.so.12");
    let checks: Vec<&str> = r["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["against"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(checks, ["manifest", "reference", "consumer"]);
    for c in r["checks"].as_array().expect("checks") {
        assert_eq!(keys(c), ["against", "compared", "major", "path"]);
    }
    assert_eq!(r["checks"][0]["major"], 12);
    assert!(r["checks"][1]["major"].is_null());
    // Missing against the manifest, missing against the reference, unsatisfied for the consumer.
    assert_eq!(r["errors"], 3, "{o}");
    for f in r["findings"].as_array().expect("findings") {
        assert_eq!(
            keys(f),
            [
                "against", "expected", "found", "kind", "message", "path", "severity", "symbol"
            ]
        );
    }
    assert_eq!(
        findings(&r),
        [
            (
                "manifest".into(),
                "missing".into(),
                "cudaGetDeviceCount@@libcudart.so.12".into()
            ),
            (
                "reference".into(),
                "missing".into(),
                "cudaGetDeviceCount@@libcudart.so.12".into()
            ),
            (
                "consumer".into(),
                "unsatisfied".into(),
                "cudaGetDeviceCount@libcudart.so.12".into()
            ),
        ]
    );
}

#[test]
fn every_unreadable_input_is_named_and_exits_2() {
    let dir = tempdir();
    let missing_ref = dir.path().join("no-such-reference.so");
    let missing_consumer = dir.path().join("no-such-consumer");
    let o = audit([
        fixtures().cuda12.library.as_os_str(),
        "--reference".as_ref(),
        missing_ref.as_os_str(),
        "--consumer".as_ref(),
        missing_consumer.as_os_str(),
    ]);
    o.expect_code(2);
    assert!(o.stdout.is_empty(), "{o}");
    for p in [&missing_ref, &missing_consumer] {
        assert!(
            o.stderr
                .contains(&format!("{}: error: cannot read", p.display())),
            "{o}"
        );
    }
    let bad_manifest = dir.path().join("none.yaml");
    let o = audit([
        fixtures().cuda12.library.as_os_str(),
        "--manifest".as_ref(),
        bad_manifest.as_os_str(),
    ]);
    o.expect_code(2);
    assert!(
        o.stderr.contains(&bad_manifest.display().to_string()),
        "{o}"
    );
    let o = audit([
        fixtures().cuda12.library.as_os_str(),
        "--major".as_ref(),
        "11".as_ref(),
    ]);
    o.expect_code(2);
    assert!(o.stderr.contains("no major 11"), "{o}");
}

#[test]
fn quiet_prints_only_the_errors_and_the_summary() {
    let dir = tempdir();
    let app13 = consumer_of_real_runtime(13, dir.path());
    let mut stub = StubLibrary::like_manifest(12);
    stub.version_script = Some(script_without("cudaGetDeviceCount", true));
    let lib = stub.build(dir.path(), "libcudart.so.12");
    let args = [
        lib.as_os_str(),
        "--consumer".as_ref(),
        app13.as_os_str(),
        "--quiet".as_ref(),
    ];
    let o = audit(args);
    o.expect_code(1);
    assert_eq!(
        o.stdout,
        format!(
            "{}: 1 difference (1 warning)\n\
             missing, against codegen/api/cudart.yaml major 12 (1):\n  \
             cudaGetDeviceCount@@libcudart.so.12 is not exported\n\
             1 library, 1 difference, 1 warning\n",
            lib.display()
        ),
        "--quiet should print the errors and the summary, not the warning: {o}"
    );
}

#[test]
fn a_directory_is_audited_library_by_library_with_one_summary() {
    let tmp = tempdir();
    let dir = tmp.path().join("libs");
    std::fs::create_dir(&dir).expect("mkdir");
    // Built elsewhere: the stub's C source and version script are not libraries.
    let stub = StubLibrary::like_manifest(12).build(tmp.path(), "libcudart.so.12");
    std::fs::copy(&stub, dir.join("libcudart.so.12")).expect("copying the stub");
    std::fs::copy(&fixtures().cuda13.library, dir.join("libcudart.so.13"))
        .expect("copying the real runtime 13");
    let o = audit([&dir]);
    o.expect_success();
    assert_eq!(o.stdout.lines().count(), 3, "{o}");
    assert_eq!(
        o.stdout.lines().last(),
        Some("2 libraries, 0 differences, 0 warnings"),
        "{o}"
    );
    // One object, as for one library: the totals, then a report per
    // library, as the schema describes.
    let j = audit([dir.as_os_str(), "--format".as_ref(), "json".as_ref()]);
    j.expect_success();
    let report = json(&j);
    assert_eq!(report["schema_version"], 3, "{j}");
    assert_eq!(report["directory"], dir.display().to_string(), "{j}");
    assert_eq!(report["verdict"], "ok", "{j}");
    assert_eq!(
        (&report["errors"], &report["warnings"], &report["notes"]),
        (&0.into(), &0.into(), &0.into()),
        "{j}"
    );
    let sonames: Vec<&str> = report["libraries"]
        .as_array()
        .expect("a list of reports")
        .iter()
        .map(|r| r["soname"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(sonames, ["libcudart.so.12", "libcudart.so.13"]);
}

/// `cudastub` run in `dir`, not in the repository: as a user runs the one
/// `cargo install --path codegen` installed.
fn cudastub_in(dir: &Path, args: &[&std::ffi::OsStr]) -> cudastub_tests::Outcome {
    run(Command::new(cudastub_tests::cudastub())
        .current_dir(dir)
        .args(args))
}

#[test]
fn outside_a_checkout_audit_diff_and_check_read_the_shipped_manifests() {
    let dir = tempdir();
    assert!(!dir.path().join("cuda-api.yaml").exists());
    let lib = StubLibrary::like_manifest(12).build(dir.path(), "libcudart.so.12");
    let shipped = cudastub_tests::repo_root().join("codegen/api/cudart.yaml");
    let o = cudastub_in(dir.path(), &["audit".as_ref(), lib.as_os_str()]);
    o.expect_success();
    assert!(
        o.stdout.starts_with(&format!(
            "{}: OK — {} exports match {} major 12",
            lib.display(),
            manifest_functions(12).len(),
            shipped.display()
        )),
        "audit with no --manifest and no ./cuda-api.yaml reads the shipped manifests: {o}"
    );
    let o = cudastub_in(dir.path(), &["check".as_ref()]);
    o.expect_success();
    for library in ["cudart", "cublas", "cublasLt", "cuda", "nvml"] {
        assert!(
            o.stdout.contains(&format!("{library} major 12: ")),
            "check lists {library}: {o}"
        );
    }
    // The README's diff, written as there.
    let o = cudastub_in(
        dir.path(),
        &[
            "diff".as_ref(),
            "cuda-api.yaml#cudart/12".as_ref(),
            "cuda-api.yaml#cudart/13".as_ref(),
        ],
    );
    o.expect_code(1);
    assert!(
        o.stdout
            .starts_with("cuda-api.yaml#cudart/12 → cuda-api.yaml#cudart/13: 53 added, 30 removed"),
        "{o}"
    );
    // A manifest named on the command line is never replaced.
    let o = cudastub_in(
        dir.path(),
        &[
            "audit".as_ref(),
            lib.as_os_str(),
            "--manifest".as_ref(),
            "cuda-api.yaml".as_ref(),
        ],
    );
    o.expect_code(2);
    assert!(
        o.stderr
            .contains("cuda-api.yaml: error: cannot read the manifest"),
        "{o}"
    );
}

/// The real 535 driver of the fixtures.
fn real_driver() -> std::path::PathBuf {
    let lib = cudastub_tests::repo_root().join("target/fixtures/driver/lib/libcuda.so.1");
    assert!(
        lib.is_file(),
        "{} is missing: run scripts/fetch-fixtures",
        lib.display()
    );
    lib
}

/// An unversioned `libcuda.so.1` exporting what major 12 of the shipped
/// driver manifest lists (the 535 driver's exports and the 580 list's), as
/// the driver shim does: functions, and data objects of their sizes.
fn driver_stub(dir: &Path) -> std::path::PathBuf {
    let catalog = cudastub_codegen::catalog::Catalog::load(&cudastub_tests::index_path())
        .unwrap_or_else(|e| panic!("{e}"));
    let m = &catalog
        .library("cuda")
        .expect("the driver's manifest")
        .manifest;
    let mut c = String::from("/* Generated by tests/audit.rs. */\n");
    let mut globals = Vec::new();
    for (f, _) in m.functions_of(12) {
        c.push_str(&format!("void {}(void) {{}}\n", f.name));
        globals.push(f.name.clone());
    }
    for d in m.data_of(12) {
        c.push_str(&format!("char {}[{}];\n", d.name, d.size_of(12)));
        globals.push(d.name.clone());
    }
    let source = dir.join("libcuda.c");
    std::fs::write(&source, c).expect("writing the driver stub's C source");
    // No node name: exports stay unversioned, and `local: *` hides the
    // linker's own `_edata`, `_end`, `__bss_start`.
    let script = dir.join("libcuda.map");
    std::fs::write(
        &script,
        format!("{{\n  global: {};\n  local: *;\n}};\n", globals.join("; ")),
    )
    .expect("writing the version script");
    let lib = dir.join("libcuda.so.1");
    cudastub_tests::compile_c([
        "-shared".into(),
        "-fPIC".into(),
        "-o".into(),
        lib.display().to_string(),
        source.display().to_string(),
        "-Wl,-soname,libcuda.so.1".into(),
        format!("-Wl,--version-script,{}", script.display()),
    ]);
    lib
}

#[test]
fn the_580_additions_are_expected_against_the_535_driver_and_its_consumers_are_not_warned() {
    let dir = tempdir();
    let lib = driver_stub(dir.path());
    // A driver consumer: linked against an unversioned library, as every
    // program linked against the real libcuda.so.1 is.
    let app_c = dir.path().join("app.c");
    std::fs::write(
        &app_c,
        "int cuInit(unsigned flags);\nint main(void) { return cuInit(0); }\n",
    )
    .expect("writing the consumer");
    let app = dir.path().join("app");
    cudastub_tests::compile_c([
        "-o".into(),
        app.display().to_string(),
        app_c.display().to_string(),
        lib.display().to_string(),
    ]);
    let reference = real_driver();
    let (text, report) = audit_both(
        &lib,
        &[
            "--major",
            "12",
            "--reference",
            reference.to_str().expect("a UTF-8 path"),
            "--consumer",
            app.to_str().expect("a UTF-8 path"),
        ],
        0,
    );
    assert_eq!(report["errors"], 0, "{text}");
    assert_eq!(
        report["warnings"], 0,
        "a consumer of the unversioned driver is not warned about unversioned requirements: {text}"
    );
    assert_eq!(report["notes"], 87, "{text}");
    for f in report["findings"].as_array().expect("findings") {
        assert_eq!(
            (&f["severity"], &f["kind"], &f["against"]),
            (&"note".into(), &"added".into(), &"reference".into()),
            "{f}"
        );
        assert_eq!(
            f["expected"],
            serde_json::json!({"since": "580.159.04", "reference_release": "535.261.03"}),
            "{f}"
        );
    }
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.ends_with("(87 expected additions)")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "note: expected addition, against {} (87):\n  cuCheckpointProcessCheckpoint is not in the reference: \
             added in 580.159.04, newer than the reference (535.261.03), as the manifest imported\n",
            reference.display()
        )),
        "{text}"
    );
    assert!(
        text.ends_with("1 library, 0 differences, 0 warnings, 87 expected additions\n"),
        "{text}"
    );
}

#[test]
fn a_four_gib_sparse_library_is_audited_in_bounded_memory() {
    // `audit` read the whole file: a library padded to 4 GiB with a hole
    // (which takes no disk) took 4.2 GB of memory. Only its headers and
    // dynamic sections are read now.
    let dir = tempdir();
    let lib = dir.path().join("libcudart.so.12");
    std::fs::copy(&fixtures().cuda12.library, &lib).expect("copy the real runtime");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&lib)
        .expect("open the copy");
    file.set_len(4 << 30)
        .expect("extend the copy to 4 GiB, sparse");
    drop(file);
    let outcome = run(Command::new("/usr/bin/time")
        .current_dir(cudastub_tests::repo_root())
        .arg("-v")
        .arg(cudastub_tests::cudastub())
        .arg("audit")
        .arg(&lib));
    assert!(
        matches!(outcome.code, Some(0 | 1)),
        "the audit of a padded real runtime should run to its verdict: {outcome}"
    );
    assert!(
        outcome.stdout.starts_with(&format!("{}: ", lib.display())),
        "{outcome}"
    );
    let peak_kb: u64 = outcome
        .stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time -v: {outcome}"));
    assert!(
        peak_kb < 200 * 1024,
        "auditing a 4 GiB sparse file took {} MB at its peak (at most 200 MB expected)",
        peak_kb / 1024
    );
}

/// Audits directory `dir` (plus `extra`), in text and in JSON (checked
/// against its schema); both exit 1. Returns the text and the findings.
fn audit_directory(dir: &Path, extra: &[&std::ffi::OsStr]) -> (String, Vec<serde_json::Value>) {
    let mut args = vec![dir.as_os_str()];
    args.extend_from_slice(extra);
    let text = audit(&args);
    text.expect_code(1);
    args.extend(["--format", "json"].map(std::ffi::OsStr::new));
    let j = audit(&args);
    j.expect_code(1);
    let findings = json(&j)["libraries"]
        .as_array()
        .expect("a directory's report lists its libraries")
        .iter()
        .flat_map(|r| r["findings"].as_array().cloned().unwrap_or_default())
        .collect();
    (text.stdout, findings)
}

#[test]
fn a_dangling_link_in_a_directory_is_a_difference() {
    // dist/12 whose libcudart.so.12 links to a file that is gone passed:
    // the link was skipped, and the rest audited clean.
    let work = tempdir();
    let dir = work.path().join("12");
    std::fs::create_dir(&dir).expect("mkdir");
    let stub = StubLibrary::like_manifest(12).build(work.path(), "libcudart.so.12");
    std::fs::copy(stub, dir.join("libcudart.so.12.9.79")).expect("copy the stub");
    let link = dir.join("libcudart.so.12");
    std::os::unix::fs::symlink("libcudart.so.12.9.78", &link).expect("symlink");
    let (text, findings) = audit_directory(&dir, &[]);
    assert!(
        text.contains(&format!(
            "{}: 1 difference\ndangling link, in {} (1):\n  a symbolic link to libcudart.so.12.9.78, which does not exist\n",
            link.display(),
            dir.display()
        )),
        "{text}"
    );
    assert!(
        findings.iter().any(|f| f["kind"] == "dangling-link"
            && f["against"] == "directory"
            && f["found"]["target"] == "libcudart.so.12.9.78"),
        "{findings:?}"
    );
}

#[test]
fn a_library_a_consumer_needs_and_the_directory_lacks_is_a_difference() {
    // A CUDA 12 program against a CUDA 13 directory passed: it needs
    // libcudart.so.12, which was only checked if present.
    let dir = tempdir();
    let dist = dir.path().join("13");
    std::fs::create_dir(&dist).expect("mkdir");
    let stub = StubLibrary::like_manifest(13).build(dir.path(), "libcudart.so.13");
    std::fs::copy(stub, dist.join("libcudart.so.13")).expect("copy the stub");
    let app = consumer_of_real_runtime(12, dir.path());
    let (text, findings) = audit_directory(&dist, &["--consumer".as_ref(), app.as_os_str()]);
    assert!(
        text.contains(&format!(
            "{}: 1 difference\nabsent library, needed by {} (1):\n  needs libcudart.so.12, which {} does not hold\n",
            dist.join("libcudart.so.12").display(),
            app.display(),
            dist.display()
        )),
        "{text}"
    );
    assert!(
        findings.iter().any(|f| f["kind"] == "absent-library"
            && f["symbol"] == "libcudart.so.12"
            && f["expected"]["soname"] == "libcudart.so.12"),
        "{findings:?}"
    );
}
