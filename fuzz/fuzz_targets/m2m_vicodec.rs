//! `cargo fuzz run m2m_vicodec`: programs for the vicodec driver's node (found by driver name;
//! `M2MFUZZ_NODE_VICODEC_STATEFUL_ENCODER=/dev/videoN` overrides).
#![no_main]
libfuzzer_sys::fuzz_target!(init: m2mfuzz_fuzz::init("vicodec"), |data: &[u8]| m2mfuzz_fuzz::run(data));
