//! The feed parser and validator (`Feed::parse`) on arbitrary bytes: no panic, and every
//! result keeps the feed's invariants (see `checks::feed`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| show_service_fuzz::checks::feed(data));
