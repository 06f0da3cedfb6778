//! The trace formatter (`cudastub_runtime::TraceLine`) on arbitrary values:
//! whatever an argument holds — any bytes, any number, any address passed as
//! a `const char *`, mapped or not — formatting never panics or faults, and
//! the result stays one line: no newline or other control character, and a
//! bounded length per value (at most 64 bytes of any string are shown).
#![no_main]

use cudastub_runtime::TraceLine;
use libfuzzer_sys::fuzz_target;

/// Takes `n` bytes from the front of `data`.
fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let n = n.min(data.len());
    let (head, tail) = data.split_at(n);
    *data = tail;
    head
}

fn word(data: &mut &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let got = take(data, 8);
    b[..got.len()].copy_from_slice(got);
    u64::from_le_bytes(b)
}

const NAMES: &[(i64, &str)] = &[(0, "cudaSuccess"), (1, "cudaErrorInvalidValue")];

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let mut line = TraceLine::new();
    let mut values = 0usize;
    let mut keep = Vec::new();
    while let Some((&op, rest)) = data.split_first() {
        data = rest;
        values += 1;
        line.arg("x");
        match op % 8 {
            0 => {
                // A string in memory, NUL-terminated or not.
                let len = usize::from(take(&mut data, 1).first().copied().unwrap_or(0));
                let mut s = take(&mut data, len).to_vec();
                if op & 0x80 == 0 {
                    s.push(0);
                }
                line.c_str(s.as_ptr().cast());
                keep.push(s);
            }
            1 => {
                // Any address at all, as a `const char *`.
                line.c_str(word(&mut data) as usize as *const libc::c_char);
            }
            2 => {
                let len = usize::from(take(&mut data, 1).first().copied().unwrap_or(0));
                line.bytes(take(&mut data, len));
            }
            3 => line.int(i128::from(word(&mut data) as i64) * i128::from(word(&mut data))),
            4 => line.float(f64::from_bits(word(&mut data))),
            5 => line.ptr(word(&mut data) as usize as *const libc::c_void),
            6 => line.enumerated(word(&mut data) as i64, NAMES),
            _ => {
                line.open('{');
                line.field("y");
                line.int(i128::from(op));
                line.close('}');
            }
        }
    }
    line.returned();
    let text = line.as_str();
    assert!(
        !text.chars().any(|c| c.is_control()),
        "a control character in a trace line: {text:?}"
    );
    // The longest value: 64 string bytes, each escaped to at most 10 characters.
    assert!(
        text.len() <= 8 + values * (5 + 64 * 10 + 8),
        "{} bytes for {values} values",
        text.len()
    );
});
