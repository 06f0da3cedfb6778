//! `cudastub diff`: the pinned real runtimes 12.9.79 → 13.5.37 add 53 and
//! remove 30 functions (cross-checked against `abidiff` and `nm`), the
//! manifest's majors also differ in the prototypes NVIDIA changed and in the
//! layouts and enums of the types those prototypes use (`struct
//! cudaDeviceProp` shrinks from 1032 to 1008 bytes), and a manifest major
//! equals the real library it was imported from. Every JSON report is
//! validated against schemas/diff.schema.json.

#[allow(dead_code)]
mod support_audit;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use cudastub_tests::{fixtures, run, tempdir};
use support_audit::{StubLibrary, diff, first_line, json};

/// The names `nm -D --defined-only` lists: an independent reader of the
/// dynamic symbol table.
fn nm_defined(lib: &Path) -> BTreeSet<String> {
    let o = run(Command::new("nm")
        .args(["-D", "--defined-only", "--format=posix"])
        .arg(lib));
    o.expect_success();
    o.stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|s| s.split('@').next().unwrap_or(s).to_string())
        // The version node's own absolute symbol.
        .filter(|s| !s.starts_with("libcudart.so."))
        .collect()
}

/// The function names `abidiff OLD NEW` lists as removed (`[D]`) and added
/// (`[A]`), without their versions.
fn abidiff(old: &Path, new: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let o = run(Command::new("abidiff").arg(old).arg(new));
    assert!(
        o.code.is_some_and(|c| c != 0 && c & 1 == 0),
        "abidiff should report an ABI change (exit bit 2 or 3), not an error; \
         install it with scripts/install-deps (package abigail-tools): {o}"
    );
    let names = |mark: &str| -> BTreeSet<String> {
        o.stdout
            .lines()
            .filter_map(|l| l.trim().strip_prefix(mark))
            .map(|s| s.trim().split('@').next().unwrap_or("").to_string())
            .collect()
    };
    (names("[D]"), names("[A]"))
}

fn names(report: &serde_json::Value, list: &str) -> BTreeSet<String> {
    report[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} is not an array: {report}"))
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn real_12_to_13_adds_53_and_removes_30_like_abidiff_and_nm_say() {
    let f = fixtures();
    let (old, new) = (&f.cuda12.library, &f.cuda13.library);
    let text = diff([old, new]);
    text.expect_code(1);
    assert_eq!(
        first_line(&text),
        format!(
            "{} → {}: 53 added, 30 removed, 0 changed",
            old.display(),
            new.display()
        )
    );
    assert!(
        text.stdout
            .contains("\n  + cudaGreenCtxCreate@@libcudart.so.13\n"),
        "{text}"
    );
    assert!(
        text.stdout
            .contains("\n  - cudaThreadExit@@libcudart.so.12\n"),
        "{text}"
    );
    let j = diff([
        old.as_os_str(),
        new.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    j.expect_code(1);
    let report = json(&j);
    assert_eq!(report["counts"]["added"], 53);
    assert_eq!(report["counts"]["removed"], 30);
    assert_eq!(report["counts"]["changed"], 0);
    let (added, removed) = (names(&report, "added"), names(&report, "removed"));

    // nm: the name sets of both files.
    let (nm_old, nm_new) = (nm_defined(old), nm_defined(new));
    assert_eq!(nm_old.len(), 435);
    assert_eq!(nm_new.len(), 458);
    assert_eq!(added, &nm_new - &nm_old);
    assert_eq!(removed, &nm_old - &nm_new);

    // abidiff matches symbols by name@version: every 12 symbol is "removed"
    // because its version node is renamed, while "added" is by name. Its
    // added names equal ours; its removed names, less those 13 still
    // exports, equal ours.
    let (abi_removed, abi_added) = abidiff(old, new);
    assert_eq!(
        abi_added, added,
        "added: cudastub diff and abidiff disagree"
    );
    assert_eq!(
        abi_removed.len(),
        435,
        "abidiff counts every renamed version as removed"
    );
    let abi_removed_names: BTreeSet<String> = &abi_removed - &nm_new;
    assert_eq!(
        abi_removed_names, removed,
        "removed: cudastub diff and abidiff disagree"
    );
}

/// The functions whose prototype differs between majors 12 and 13 of the
/// manifest (imported from 12.9.79 and 13.5.37).
const CHANGED_PROTOTYPES: [&str; 23] = [
    // 12's plain export is the legacy one, taking CUDA 11's struct.
    "cudaGetDeviceProperties",
    "cudaGraphAddDependencies",
    "cudaGraphAddNode",
    "cudaGraphGetEdges",
    "cudaGraphKernelNodeCopyAttributes",
    "cudaGraphNodeGetDependencies",
    "cudaGraphNodeGetDependentNodes",
    "cudaGraphRemoveDependencies",
    "cudaMemAdvise",
    "cudaMemPrefetchAsync",
    "cudaMemPrefetchAsync_ptsz",
    "cudaMemcpy3DBatchAsync",
    "cudaMemcpy3DBatchAsync_ptsz",
    "cudaMemcpyBatchAsync",
    "cudaMemcpyBatchAsync_ptsz",
    "cudaSignalExternalSemaphoresAsync",
    "cudaSignalExternalSemaphoresAsync_ptsz",
    "cudaStreamGetCaptureInfo",
    "cudaStreamGetCaptureInfo_ptsz",
    "cudaStreamUpdateCaptureDependencies",
    "cudaStreamUpdateCaptureDependencies_ptsz",
    "cudaWaitExternalSemaphoresAsync",
    "cudaWaitExternalSemaphoresAsync_ptsz",
];

#[test]
fn manifest_12_to_13_also_reports_the_changed_prototypes() {
    let text = diff(["cuda-api.yaml#cudart/12", "cuda-api.yaml#cudart/13"]);
    text.expect_code(1);
    assert_eq!(
        first_line(&text),
        "cuda-api.yaml#cudart/12 → cuda-api.yaml#cudart/13: 53 added, 30 removed, 23 changed; \
         types: 35 changed, 35 added, 12 removed"
    );
    assert!(
        text.stdout.contains(
            "  ~ cudaMemAdvise (prototype)\n      old: cudaError_t cudaMemAdvise(const void *devPtr, size_t count, enum cudaMemoryAdvise advice, int device)\n      new: cudaError_t cudaMemAdvise(const void *devPtr, size_t count, enum cudaMemoryAdvise advice, struct cudaMemLocation location)\n"
        ),
        "{text}"
    );
    let j = diff([
        "cuda-api.yaml#cudart/12",
        "cuda-api.yaml#cudart/13",
        "--format",
        "json",
    ]);
    j.expect_code(1);
    let report = json(&j);
    assert_eq!(report["old"]["kind"], "manifest");
    assert_eq!(report["old"]["major"], 12);
    assert_eq!(report["new"]["symbols"], 458);
    let changed = report["changed"].as_array().expect("changed");
    let changed_names: Vec<&str> = changed
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(changed_names, CHANGED_PROTOTYPES);
    assert!(changed.iter().all(|c| c["what"] == "prototype"), "{j}");
    // Only one differs in parameter names alone, and those are swapped: the
    // same ABI, with the arguments' meaning exchanged.
    let names_only: Vec<&serde_json::Value> = changed
        .iter()
        .filter(|c| c["param_names_only"] == true)
        .collect();
    assert_eq!(names_only.len(), 1, "{j}");
    assert_eq!(names_only[0]["name"], "cudaGraphKernelNodeCopyAttributes");
    assert_eq!(names_only[0]["params_reordered"], true);
    assert!(
        text.stdout
            .contains("changed (23, 1 in parameter names only):"),
        "{text}"
    );
    // The same added and removed names as between the real libraries.
    let f = fixtures();
    let real = json(&diff([
        f.cuda12.library.as_os_str(),
        f.cuda13.library.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]));
    assert_eq!(names(&report, "added"), names(&real, "added"));
    assert_eq!(names(&report, "removed"), names(&real, "removed"));
}

#[test]
fn a_manifest_major_is_the_same_as_the_library_it_was_imported_from() {
    for rt in fixtures().runtimes() {
        let spec = format!("cuda-api.yaml#cudart/{}", rt.major);
        let o = diff([spec.as_ref(), rt.library.as_os_str()]);
        o.expect_success();
        assert_eq!(
            first_line(&o),
            format!(
                "{spec} → {}: same ({} symbols)",
                rt.library.display(),
                rt.export_count
            )
        );
        let j = json(&diff([
            spec.as_ref(),
            rt.library.as_os_str(),
            "--format".as_ref(),
            "json".as_ref(),
        ]));
        assert_eq!(j["verdict"], "same");
        assert_eq!(j["schema_version"], 3);
        // A library has no types: they are not compared.
        assert!(j["types"].is_null(), "{j}");
        assert!(j["new"]["types"].is_null(), "{j}");
        assert!(j["counts"]["types_changed"].is_null(), "{j}");
    }
}

#[test]
fn a_symbol_that_became_hidden_or_data_is_changed() {
    let dir = tempdir();
    let good = StubLibrary::like_manifest(12).build(dir.path(), "good.so");
    let mut stub = StubLibrary::like_manifest(12)
        .without_definition("cudaFree")
        .without_definition("cudaMalloc");
    stub.hidden
        .push(("cudaFree".into(), "libcudart.so.12".into()));
    stub.objects.push("cudaMalloc".into());
    let bad = stub.build(dir.path(), "bad.so");
    let o = diff([&good, &bad]);
    o.expect_code(1);
    assert!(
        first_line(&o).ends_with(": 0 added, 0 removed, 2 changed"),
        "{o}"
    );
    assert!(
        o.stdout.contains(
            "  ~ cudaFree (version)\n      old: cudaFree@@libcudart.so.12\n      new: cudaFree@libcudart.so.12\n"
        ),
        "{o}"
    );
    assert!(
        o.stdout
            .contains("  ~ cudaMalloc (type)\n      old: FUNC\n      new: OBJECT (4 bytes)\n"),
        "{o}"
    );
    // In JSON, both sides of each change are exports, not prose.
    let j = json(&diff([
        good.as_os_str(),
        bad.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]));
    let change = |name: &str| {
        j["changed"]
            .as_array()
            .expect("changed")
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no change of {name}: {j}"))
            .clone()
    };
    let free = change("cudaFree");
    assert_eq!(free["what"], "version");
    assert_eq!(
        free["old"],
        serde_json::json!([{"name": "cudaFree", "version": "libcudart.so.12", "binding": "default", "type": "FUNC", "size": null}])
    );
    assert_eq!(free["new"][0]["binding"], "hidden");
    let malloc = change("cudaMalloc");
    assert_eq!(malloc["what"], "type");
    assert_eq!(malloc["new"][0]["type"], "OBJECT");
}

#[test]
fn an_unreadable_side_is_named_and_exits_2() {
    let dir = tempdir();
    let nothing = dir.path().join("nothing.so");
    let o = diff([nothing.as_os_str(), fixtures().cuda12.library.as_os_str()]);
    o.expect_code(2);
    assert!(
        o.stderr
            .contains(&format!("{}: error: cannot read", nothing.display())),
        "{o}"
    );
    let o = diff(["cuda-api.yaml#cudart/11", "cuda-api.yaml#cudart/12"]);
    o.expect_code(2);
    assert!(
        o.stderr
            .contains("codegen/api/cudart.yaml: error: the manifest has no major 11"),
        "{o}"
    );
    let missing_manifest = dir.path().join("none.yaml#12");
    let o = diff([
        missing_manifest.as_os_str(),
        "cuda-api.yaml#cudart/12".as_ref(),
    ]);
    o.expect_code(2);
    assert!(
        o.stderr.contains(&format!(
            "{}: error: cannot read the manifest",
            dir.path().join("none.yaml").display()
        )),
        "{o}"
    );
    assert!(o.stdout.is_empty(), "{o}");
}

/// The type changes of the manifest's 12 → 13 diff, by name.
fn type_changes_12_to_13() -> (String, serde_json::Value) {
    let text = diff(["cuda-api.yaml#cudart/12", "cuda-api.yaml#cudart/13"]);
    text.expect_code(1);
    let j = json(&diff([
        "cuda-api.yaml#cudart/12",
        "cuda-api.yaml#cudart/13",
        "--format",
        "json",
    ]));
    (text.stdout, j)
}

fn type_change<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["types"]["changed"]
        .as_array()
        .expect("types.changed")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not among the changed types: {report}"))
}

#[test]
fn manifest_12_to_13_reports_that_cuda_device_prop_shrank_from_1032_to_1008_bytes() {
    let (text, j) = type_changes_12_to_13();
    // 12's plain cudaGetDeviceProperties is the legacy entry point, taking
    // CUDA 11's struct (`cudaDeviceProp_v1`, gone in 13); 12's current one
    // (`_v2`, removed in 13) and 13's take the `struct cudaDeviceProp` whose
    // layout changed.
    assert!(
        text.contains(
            "  ~ cudaGetDeviceProperties (prototype)\n      old: cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp_v1 *prop, int device)\n      new: cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)\n"
        ),
        "{text}"
    );
    assert!(text.contains("  - struct cudaDeviceProp_v1\n"), "{text}");
    assert!(text.contains("types changed (35):\n"), "{text}");
    assert!(
        text.contains(
            "  ~ struct cudaDeviceProp: size 1032 → 1008 bytes; 8 fields removed, 7 added, 68 moved, 1 changed\n\
             \x20     used by 2 functions\n\
             \x20       directly: cudaChooseDevice, cudaGetDeviceProperties\n\
             \x20     - int clockRate, at offset 348\n"
        ),
        "{text}"
    );
    for line in [
        "      ~ int multiProcessorCount: offset 388 → 384\n",
        "      + int hostNumaId, at offset 768\n",
        "      ~ reserved: int reserved[63] at offset 780 → int reserved[56] at offset 784\n",
    ] {
        assert!(text.contains(line), "no `{}` in:\n{text}", line.trim());
    }

    let prop = type_change(&j, "struct cudaDeviceProp");
    assert_eq!(prop["kind"], "struct");
    assert_eq!(prop["size"], serde_json::json!({"old": 1032, "new": 1008}));
    assert!(prop["align"].is_null(), "the alignment stays 8: {prop}");
    let field = |name: &str| {
        prop["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no change of field {name}: {prop}"))
            .clone()
    };
    assert_eq!(
        field("clockRate"),
        serde_json::json!({"name": "clockRate", "change": "removed",
                           "old": {"offset": 348, "decl": "int clockRate"}, "new": null})
    );
    assert_eq!(field("multiProcessorCount")["change"], "moved");
    assert_eq!(field("hostNumaId")["change"], "added");
    assert_eq!(field("reserved")["change"], "changed");
    let count = |change: &str| {
        prop["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .filter(|f| f["change"] == change)
            .count()
    };
    assert_eq!(
        [
            count("removed"),
            count("added"),
            count("moved"),
            count("changed")
        ],
        [8, 7, 68, 1]
    );
    assert_eq!(
        prop["functions"],
        serde_json::json!([{"name": "cudaChooseDevice", "via": []},
                           {"name": "cudaGetDeviceProperties", "via": []}])
    );
    assert_eq!(j["counts"]["types_changed"], 35);
    // Among 12's 229 types (the layouts of every struct a parameter points
    // to included), CUDA 11's cudaDeviceProp_v1.
    assert_eq!(j["old"]["types"], 229);
}

#[test]
fn manifest_12_to_13_reports_enum_values_and_the_functions_reaching_them() {
    let (text, j) = type_changes_12_to_13();
    let attr = type_change(&j, "enum cudaDeviceAttr");
    let value = |name: &str| {
        attr["values"]
            .as_array()
            .expect("values")
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no change of {name}: {attr}"))
            .clone()
    };
    assert_eq!(
        value("cudaDevAttrMax"),
        serde_json::json!({"name": "cudaDevAttrMax", "change": "renumbered", "old": 144, "new": 161})
    );
    assert_eq!(
        value("cudaDevAttrCooperativeMultiDeviceLaunch"),
        serde_json::json!({"name": "cudaDevAttrCooperativeMultiDeviceLaunch",
                           "change": "removed", "old": 96, "new": null})
    );
    assert_eq!(
        value("cudaDevAttrHostMemoryPoolsSupported")["change"],
        "added"
    );
    assert!(
        text.contains("  ~ enum cudaDeviceAttr: 2 values removed, 10 added, 1 renumbered\n"),
        "{text}"
    );
    assert!(
        text.contains("      ~ cudaDevAttrMax: 144 → 161\n"),
        "{text}"
    );

    // Reached through another type: cudaMallocArray takes a
    // `const struct cudaChannelFormatDesc *`, whose field `f` is the enum.
    let kind = type_change(&j, "enum cudaChannelFormatKind");
    let users = kind["functions"].as_array().expect("functions");
    assert!(
        users.contains(
            &serde_json::json!({"name": "cudaMallocArray", "via": ["struct cudaChannelFormatDesc"]})
        ),
        "{kind}"
    );
    assert!(
        users.contains(&serde_json::json!({"name": "cudaCreateChannelDesc", "via": []})),
        "{kind}"
    );
    assert!(
        text.contains("        through struct cudaChannelFormatDesc: cudaArrayGetInfo, "),
        "{text}"
    );
    // A type every function returns is summarised, not listed in full.
    assert!(
        text.contains("  ~ enum cudaError: 5 values added\n"),
        "{text}"
    );
    assert!(
        text.contains(", and 386 more\n"),
        "the users of enum cudaError should be cut short: {text}"
    );
    assert_eq!(
        type_change(&j, "enum cudaError")["functions"]
            .as_array()
            .map(Vec::len),
        Some(394)
    );
}
