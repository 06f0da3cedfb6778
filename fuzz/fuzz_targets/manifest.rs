//! `manifest::parse` on arbitrary UTF-8: diagnostics or a manifest, never a
//! panic or a hang. A manifest that parses must read back the same from its
//! canonical YAML, which is what `cudastub import` writes.
#![no_main]

use std::path::Path;

use cudastub_codegen::manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.yaml");
    let Ok(m) = manifest::parse(path, text) else {
        return;
    };
    let written = manifest::to_yaml(&m);
    match manifest::parse(path, &written) {
        Ok(again) => assert_eq!(again, m, "the canonical YAML reads back differently"),
        Err(e) => panic!("the canonical YAML does not parse:\n{e}\n---\n{written}"),
    }
});
