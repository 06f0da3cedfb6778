//! `Role::parse`, the text of one parameter's role in a manifest (`out
//! buffer size=*numNodes nullable`): an error or a role, never a panic, and
//! a role that parses prints back as text that parses to the same role.
#![no_main]

use cudastub_codegen::roles::Role;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Role::parse(text) {
        Ok(role) => {
            let printed = role.to_string();
            assert_eq!(Role::parse(&printed), Ok(role), "`{text}` prints back as `{printed}`");
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
