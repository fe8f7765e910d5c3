#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sfu_core::fuzzing::red(data);
});
