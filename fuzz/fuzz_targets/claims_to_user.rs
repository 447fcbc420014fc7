//! Claims → user plan → access decision (SPEC §4, §5) on arbitrary JSON;
//! the body is `embedgate::fuzzing::claims_to_user`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| embedgate::fuzzing::claims_to_user(data));
