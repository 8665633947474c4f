//! `cargo fuzz run m2m_vicodec`: programs for the vicodec driver's node (found by driver name;
//! `M2MFUZZ_NODE_VICODEC_STATEFUL_ENCODER=/dev/videoN` overrides).
#![no_main]
libfuzzer_sys::fuzz_target!(init: m2mfuzz_fuzz::init("vicodec"), |data: &[u8]| m2mfuzz_fuzz::run(data));
libfuzzer_sys::fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    m2mfuzz_fuzz::mutate(data, size, max_size, seed)
});
libfuzzer_sys::fuzz_crossover!(|a: &[u8], b: &[u8], out: &mut [u8], seed: u32| {
    m2mfuzz_fuzz::crossover(a, b, out, seed)
});
