//! `ElfImage::parse` on arbitrary bytes: an error or an image, never a
//! panic, a hang or unbounded memory. An image that parses must also be
//! usable: compared with itself it shows no difference.
#![no_main]

use std::path::Path;

use cudastub_codegen::{audit, diff, elf::ElfImage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(image) = ElfImage::parse(Path::new("fuzz.so"), data) else {
        return;
    };
    let _ = image.version_nodes();
    for needed in &image.needed {
        let _ = image.requirements_from(needed).count();
    }
    assert!(
        audit::against_reference(&image, &image, None).is_empty(),
        "a library differs from itself"
    );
    let surface = diff::Surface::from_image("fuzz.so", &image);
    assert!(
        diff::diff(&surface, &surface).is_same(),
        "a surface differs from itself"
    );
});
