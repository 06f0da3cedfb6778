//! The remote GPU server's decoder (`cudastub_remote::wire::decode`), which
//! reads what any client sends: an error or a message, never a panic, and a
//! message that decodes encodes back to the same message.
#![no_main]

use cudastub_remote::wire::{Request, decode, send};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode::<Request>(data) {
        let mut frame = Vec::new();
        send(&mut frame, &request).expect("a decoded message encodes");
        let again: Request = decode(&frame[4..]).expect("and decodes again");
        assert_eq!(again, request);
    }
    // A whole frame, as the server reads it from its socket.
    let _ = cudastub_remote::wire::receive::<Request>(&mut &data[..]);
});
