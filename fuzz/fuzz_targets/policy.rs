//! `Policy::parse`, the text form of a shim policy (`forward`,
//! `fail:STATUS`, `rust`, `c`) that `ShimBuild::policy_str` takes from a
//! build script: an error or a policy, never a panic, and a policy that
//! parses prints back as text that parses to the same policy.
#![no_main]

use cudastub_codegen::emit::shim::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::parse(text) {
        Ok(policy) => {
            let printed = policy.to_string();
            assert_eq!(printed, text, "a policy prints back differently");
            assert_eq!(Policy::parse(&printed), Ok(policy));
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
