//! Spot checks of the checked-in manifest against facts measured on the real
//! libraries and headers (see /work/shared/cuda-facts.md): the ABI details a
//! shim gets wrong silently if the manifest does.

use std::collections::BTreeSet;

use cudastub_codegen::ctype::{CType, Prototype};
use cudastub_codegen::manifest::{Manifest, TypeDef};
use cudastub_tests::{checked_in_manifest, fixtures, list_difference, read_elf};

/// The prototype of `name` in `major`.
fn proto<'a>(m: &'a Manifest, name: &str, major: u32) -> &'a Prototype {
    &m.function(name)
        .unwrap_or_else(|| panic!("`{name}` is not in the manifest"))
        .majors
        .get(&major)
        .unwrap_or_else(|| panic!("`{name}` is not in major {major}"))
        .proto
}

/// A struct's size and alignment in `major`.
fn layout(m: &Manifest, major: u32, key: &str) -> (u64, u64) {
    match m.majors[&major].types.get(key) {
        Some(TypeDef::Aggregate(l)) => (l.size, l.align),
        other => {
            panic!("major {major}: `{key}` should be an aggregate with a layout, is {other:?}")
        }
    }
}

#[test]
fn every_export_of_the_real_libraries_has_a_prototype() {
    let m = checked_in_manifest();
    let mut union = BTreeSet::new();
    for runtime in fixtures().runtimes() {
        let real: Vec<String> = read_elf(&runtime.library)
            .exports
            .into_iter()
            .map(|s| s.name)
            .collect();
        let ours: Vec<String> = m
            .symbols_of(runtime.major)
            .into_iter()
            .map(str::to_string)
            .collect();
        assert!(
            ours == real,
            "major {}: the manifest's functions are not the exports of {}: {}",
            runtime.major,
            runtime.library.display(),
            list_difference("the manifest", &ours, "the real library", &real)
        );
        assert_eq!(ours.len(), runtime.export_count, "major {}", runtime.major);
        for (f, entry) in m.functions_of(runtime.major) {
            assert_eq!(
                entry.proto.name, f.name,
                "the prototype of {} names another function",
                f.name
            );
        }
        union.extend(ours);
    }
    assert_eq!(union.len(), 488, "functions in either major");
    assert_eq!(m.functions.len(), 488, "functions in the manifest");
}

#[test]
fn launches_pass_two_dim3_by_value() {
    let m = checked_in_manifest();
    for major in [12, 13] {
        let p = proto(m, "cudaLaunchKernel", major);
        let by_value_dim3: Vec<&str> = p
            .params
            .iter()
            .filter(|d| m.resolve(major, &d.ty) == CType::named("struct dim3"))
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(by_value_dim3, ["gridDim", "blockDim"], "major {major}: {p}");
        assert_eq!(
            layout(m, major, "struct dim3"),
            (12, 4),
            "major {major}: struct dim3"
        );
    }
}

#[test]
fn mem_advise_changed_abi_between_majors() {
    let m = checked_in_manifest();
    let last = |major| {
        proto(m, "cudaMemAdvise", major)
            .params
            .last()
            .expect("cudaMemAdvise has parameters")
            .to_string()
    };
    assert_eq!(last(12), "int device");
    assert_eq!(last(13), "struct cudaMemLocation location");
    assert!(
        matches!(
            m.majors[&13].types.get("struct cudaMemLocation"),
            Some(TypeDef::Aggregate(_))
        ),
        "major 13 passes struct cudaMemLocation by value, so the manifest needs its layout"
    );
}

#[test]
fn unusual_return_types() {
    let m = checked_in_manifest();
    for major in [12, 13] {
        let push = proto(m, "__cudaPushCallConfiguration", major);
        assert_eq!(
            push.returns,
            CType::named("unsigned int"),
            "major {major}: {push}"
        );
        let dim3_params = push
            .params
            .iter()
            .filter(|d| m.resolve(major, &d.ty) == CType::named("struct dim3"))
            .count();
        assert_eq!(dim3_params, 2, "major {major}: {push}");
        let channel = proto(m, "cudaCreateChannelDesc", major);
        assert_eq!(
            m.resolve(major, &channel.returns),
            CType::named("struct cudaChannelFormatDesc"),
            "major {major}: {channel}"
        );
    }
}

#[test]
fn ipc_handles_are_64_bytes() {
    let m = checked_in_manifest();
    for major in [12, 13] {
        for handle in ["cudaIpcMemHandle_t", "cudaIpcEventHandle_t"] {
            let resolved = m.resolve(major, &CType::named(handle));
            assert!(
                resolved.pointers.is_empty(),
                "major {major}: {handle} should be a struct, is {resolved}"
            );
            assert_eq!(
                layout(m, major, &resolved.base).0,
                64,
                "major {major}: {handle} ({resolved})"
            );
        }
        let open = proto(m, "cudaIpcOpenMemHandle", major);
        assert!(
            open.params
                .iter()
                .any(|d| d.ty == CType::named("cudaIpcMemHandle_t")),
            "major {major}: cudaIpcOpenMemHandle takes the 64-byte handle by value: {open}"
        );
    }
}
