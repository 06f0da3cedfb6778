//! The call model: every parameter of every function of the five libraries
//! and both majors has a role in the checked-in manifests, inferred by rules
//! that get the real APIs right, and a manifest that says something wrong
//! about roles is refused with its file, line and column.

use std::path::Path;

use cudastub_codegen::catalog::Catalog;
use cudastub_codegen::roles::{CallClass, Role};
use cudastub_codegen::view::LibraryMajor;
use cudastub_tests::{copy_manifest_to_tempdir, index_path, location_of, run_cudastub};

fn catalog() -> Catalog {
    Catalog::load(&index_path()).unwrap_or_else(|e| panic!("the index does not load:\n{e}"))
}

/// The roles text of `function` in `library`/`major`, `param: role; …`.
fn roles_of(catalog: &Catalog, library: &str, major: u32, function: &str) -> (String, CallClass) {
    let entry = catalog.library(library).expect("a library of the index");
    let view = LibraryMajor::new(&entry.manifest, major).expect("a major of the library");
    let f = view
        .function(function)
        .unwrap_or_else(|| panic!("{library} {major} has no `{function}`"));
    (
        cudastub_codegen::roles::roles_text(&f.proto.params, f.roles),
        f.class,
    )
}

#[test]
fn every_parameter_of_every_library_and_major_has_a_role() {
    let catalog = catalog();
    let mut functions = 0;
    for view in catalog.views() {
        for f in &view.functions {
            functions += 1;
            if f.proto.unknown_params {
                assert!(f.roles.is_empty(), "{}: `(...)` has no roles", f.name);
                continue;
            }
            assert_eq!(
                f.roles.len(),
                f.proto.params.len(),
                "{} {}: `{}` has {} parameters and {} roles",
                view.library,
                view.major,
                f.name,
                f.proto.params.len(),
                f.roles.len()
            );
        }
    }
    assert!(functions > 4900, "{functions} functions in all");
    // And each is written in the manifests, as the rules give it today.
    run_cudastub(["roles", "--check"]).expect_success();
}

#[test]
fn the_completeness_goals_hold_and_check_prints_the_table() {
    let catalog = catalog();
    // (library, the least share of complete functions in every major, %):
    // the goals.
    for (library, least) in [
        ("cudart", 95.0),
        ("cublas", 90.0),
        ("nvml", 90.0),
        ("cuda", 95.0),
    ] {
        for view in catalog.views().iter().filter(|v| v.library == library) {
            let c = view.completeness();
            assert!(
                c.percent() >= least,
                "{library} {}: {} of {} functions complete ({:.1}%), below {least}%",
                view.major,
                c.complete,
                c.total,
                c.percent()
            );
        }
    }
    let out = run_cudastub(["check"]);
    out.expect_success();
    assert!(
        out.stdout
            .contains("| library | major | complete functions |")
            && out.stdout.contains("| cudart | 12 | "),
        "{}",
        out.stdout
    );
}

#[test]
fn the_rules_know_the_real_apis() {
    let catalog = catalog();
    for (library, major, function, roles, class) in [
        (
            "cudart",
            12,
            "cudaGetDeviceCount",
            "count: out scalar",
            CallClass::Call,
        ),
        (
            "cudart",
            13,
            "cudaMemcpy",
            "dst: out buffer size=count space=kind; src: in buffer size=count space=kind; count: value; kind: value",
            CallClass::Call,
        ),
        (
            "cudart",
            12,
            "cudaMemcpy2D",
            "dst: out buffer size=rows(dpitch,width,height) space=kind; dpitch: value; src: in buffer size=rows(spitch,width,height) space=kind; spitch: value; width: value; height: value; kind: value",
            CallClass::Call,
        ),
        (
            "cudart",
            12,
            "cudaStreamCreate",
            "pStream: out stream create",
            CallClass::Call,
        ),
        (
            "cudart",
            13,
            "cudaStreamDestroy",
            "stream: stream destroy",
            CallClass::Call,
        ),
        (
            "cudart",
            12,
            "cudaMalloc",
            "devPtr: out device; size: value",
            CallClass::Call,
        ),
        ("cudart", 12, "cudaFree", "devPtr: device", CallClass::Call),
        (
            "cudart",
            12,
            "cudaMemsetAsync",
            "devPtr: device; value: value; count: value; stream: stream",
            CallClass::Async,
        ),
        (
            "cudart",
            13,
            "cudaLaunchKernel",
            "func: symbol; gridDim: value; blockDim: value; args: in kernel-args nullable; sharedMem: value; stream: stream",
            CallClass::Async,
        ),
        ("cudart", 12, "cudaDeviceSynchronize", "", CallClass::Sync),
        (
            "cudart",
            12,
            "cudaGetErrorString",
            "error: value",
            CallClass::Local,
        ),
        (
            "cudart",
            12,
            "cudaStreamAddCallback",
            "stream: stream; callback: callback data=userData; userData: userdata; flags: value",
            CallClass::Async,
        ),
        (
            "cudart",
            12,
            "__cudaRegisterFatBinary",
            "fatCubin: in fatbinary",
            CallClass::Call,
        ),
        (
            "cudart",
            13,
            "cudaGetDeviceProperties",
            "prop: out struct; device: value",
            CallClass::Call,
        ),
        (
            "cudart",
            12,
            "cudaGraphGetNodes",
            "graph: handle; nodes: out buffer size=*numNodes nullable; numNodes: inout scalar",
            CallClass::Call,
        ),
        (
            "cuda",
            12,
            "cuDeviceGet",
            "device: out scalar; ordinal: value",
            CallClass::Call,
        ),
        (
            "cuda",
            13,
            "cuMemcpyHtoD_v2",
            "dstDevice: device; srcHost: in buffer size=ByteCount; ByteCount: value",
            CallClass::Call,
        ),
        (
            "cuda",
            12,
            "cuGetErrorString",
            "error: value; pStr: out address",
            CallClass::Call,
        ),
        (
            "nvml",
            13,
            "nvmlDeviceGetName",
            "device: handle; name: out string size=length; length: value",
            CallClass::Call,
        ),
        (
            "nvml",
            12,
            "nvmlDeviceGetComputeRunningProcesses_v3",
            "device: handle; infoCount: inout scalar; infos: out buffer size=*infoCount nullable",
            CallClass::Call,
        ),
        (
            "cublas",
            12,
            "cublasCreate_v2",
            "handle: out handle create",
            CallClass::Call,
        ),
        (
            "cublas",
            13,
            "cublasSdot_v2",
            "handle: handle; n: value; x: device; incx: value; y: device; incy: value; result: out scalar space=pointer-mode",
            CallClass::Call,
        ),
    ] {
        let (got, got_class) = roles_of(&catalog, library, major, function);
        assert_eq!(got, roles, "{library} {major} `{function}`");
        assert_eq!(got_class, class, "{library} {major} `{function}`: class");
    }
    // cuBLAS's GEMM: scalars where the pointer mode says, matrices on the device.
    let (gemm, _) = roles_of(&catalog, "cublas", 12, "cublasSgemm_v2");
    for part in [
        "alpha: in scalar space=pointer-mode",
        "A: device",
        "B: device",
        "beta: in scalar space=pointer-mode",
        "C: device",
    ] {
        assert!(
            gemm.contains(part),
            "cublasSgemm_v2: `{part}` not in `{gemm}`"
        );
    }
}

#[test]
fn unknown_stays_explicit() {
    let catalog = catalog();
    // A JIT option's value is a number, a log buffer or an array, as the
    // option says: no rule guesses it.
    let (roles, _) = roles_of(&catalog, "cudart", 13, "cudaLibraryLoadData");
    assert!(
        roles.contains("jitOptionsValues: unknown") && roles.contains("jitOptions: in buffer"),
        "{roles}"
    );
    assert_eq!(Role::parse("unknown"), Ok(Role::Unknown));
}

#[test]
fn values_sized_by_their_attribute() {
    let catalog = catalog();
    // The value behind `void *value` is as big as the attribute says: the
    // library's `import.value_sizes` table, checked against every enumerator.
    for (library, major, function, roles) in [
        (
            "cudart",
            12,
            "cudaMemPoolSetAttribute",
            "memPool: handle; attr: value; value: in buffer size=of(attr)",
        ),
        (
            "cuda",
            13,
            "cuPointerGetAttribute",
            "data: out buffer size=of(attribute); attribute: value; ptr: device",
        ),
        (
            "cuda",
            12,
            "cuMemExportToShareableHandle",
            "shareableHandle: out buffer size=of(handleType); handle: value; handleType: value; flags: value",
        ),
        // The 580 driver's function that only CUDA 13's headers declare has
        // that prototype in major 12 too: it is one file.
        (
            "cuda",
            12,
            "cuCtxGetDevice_v2",
            "device: out scalar; ctx: handle",
        ),
    ] {
        let (got, _) = roles_of(&catalog, library, major, function);
        assert_eq!(got, roles, "{library} {major} `{function}`");
    }
}

/// `cudastub check --manifest PATH` on the copy, expecting exit 2 and a
/// message at the place `needle` is.
fn refused(path: &Path, text: &str, needle: &str, message: &str) {
    let out = run_cudastub(["check", "--manifest", path.to_str().expect("a UTF-8 path")]);
    out.expect_code(2);
    let (line, column) = location_of(text, needle);
    let place = format!("{}:{line}:", path.display());
    assert!(
        out.stderr.contains(&place) && out.stderr.contains(message),
        "expected `{place}{column}: …{message}…`:\n{}",
        out.stderr
    );
}

#[test]
fn wrong_roles_are_refused_with_their_place() {
    let copy = copy_manifest_to_tempdir();
    let original = copy.text();
    let anchor = "roles: \"count: out scalar\"";
    assert!(
        original.contains(anchor),
        "the manifest writes cudaGetDeviceCount's roles"
    );
    for (bad, message) in [
        (
            "roles: \"count: out sclar\"",
            "unknown pointer target `sclar`",
        ),
        (
            "roles: \"cnt: out scalar\"",
            "role for `cnt` where parameter `count`",
        ),
        (
            "roles: \"count: out buffer size=n\"",
            "`n` is not a parameter",
        ),
        (
            "roles: \"count: out scalar; extra: value\"",
            "has 1 parameters but 2 roles",
        ),
    ] {
        let text = original.replacen(anchor, bad, 1);
        copy.write(&text);
        refused(&copy.path, &text, bad, message);
    }
    let rules = "  role_rules:\n";
    assert!(
        original.contains(rules),
        "the runtime's manifest has role rules"
    );
    let text = original.replacen(
        rules,
        "  role_rules:\n    - {function: \"cuda*\", param: \"count\", role: \"out bufer\"}\n",
        1,
    );
    copy.write(&text);
    refused(
        &copy.path,
        &text,
        "{function: \"cuda*\"",
        "unknown pointer target `bufer`",
    ); // A release that adds an attribute the size table lacks is refused at
    // the roles that need it, naming the enumerator.
    let entry = "      cudaMemPoolAttrUsedMemHigh: 8\n";
    assert!(original.contains(entry), "cudart's value_sizes table");
    let text = original.replacen(entry, "", 1);
    copy.write(&text);
    refused(
        &copy.path,
        &text,
        "roles: \"memPool: handle; attr: value; value: out buffer size=of(attr)\"",
        "gives no size for cudaMemPoolAttrUsedMemHigh",
    );
}

#[test]
fn roles_kept_by_hand_survive_and_rules_are_data() {
    let copy = copy_manifest_to_tempdir();
    let original = copy.text();
    // A role kept by hand (roles_source: overlay), and a library rule.
    let text = original
        .replacen(
            "roles: \"count: out scalar\"",
            "roles: \"count: inout scalar nullable\"\n    roles_source: overlay",
            1,
        )
        .replacen(
            "  role_rules:\n",
            "  role_rules:\n    - {function: \"cudaRuntimeGetVersion\", param: \"runtimeVersion\", role: \"out scalar nullable\"}\n",
            1,
        );
    copy.write(&text);
    run_cudastub(["roles", "--manifest", copy.path.to_str().expect("UTF-8")]).expect_success();
    let after = copy.text();
    assert!(
        after.contains(
            "roles: \"count: inout scalar nullable\"\n    class: call\n    roles_source: overlay"
        ),
        "the hand-kept roles changed"
    );
    assert!(
        after.contains("roles: \"runtimeVersion: out scalar nullable\""),
        "the library's rule did not apply"
    );
    // Nothing else changed: the rule's function is the only one rewritten.
    // (A class kept by hand is written even where it is `call`.)
    let expected = text
        .replacen(
            "roles: \"runtimeVersion: out scalar\"",
            "roles: \"runtimeVersion: out scalar nullable\"",
            1,
        )
        .replacen(
            "roles: \"count: inout scalar nullable\"\n",
            "roles: \"count: inout scalar nullable\"\n    class: call\n",
            1,
        );
    assert!(
        after == expected,
        "`cudastub roles` changed more than the rule's function"
    );
}
