//! `cudastub import` against the real runtime libraries and headers: the
//! checked-in manifest is exactly what importing the pinned wheels gives, and
//! importing is a merge that never loses what another release exported.

use cudastub_codegen::import::{ImportRequest, ImportSummary, import};
use cudastub_codegen::manifest::{self, Manifest};
use cudastub_tests::{
    Runtime, checked_in_manifest, copy_manifest_to_tempdir, fixtures, run_cudastub,
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
        include_dirs: vec![runtime.include.clone()],
        release: Some(release.to_string()),
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
