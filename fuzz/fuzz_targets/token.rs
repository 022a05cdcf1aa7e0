//! The token verifier (`Verifier::verify_at`, what every request's bearer token goes
//! through) on arbitrary token strings, on tampered copies of a valid token, and on
//! correctly signed tokens with arbitrary claims (see `checks::token`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| show_service_fuzz::checks::token(data));
