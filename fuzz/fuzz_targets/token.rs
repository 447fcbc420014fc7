//! Token verification and the token inspector (SPEC §3) on arbitrary input;
//! the body is `embedgate::fuzzing::token`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| embedgate::fuzzing::token(data));
