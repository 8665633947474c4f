//! `cargo fuzz run m2m_visl`: programs for the visl driver's node (found by driver name;
//! `M2MFUZZ_NODE_VISL=/dev/videoN` overrides).
#![no_main]
libfuzzer_sys::fuzz_target!(init: m2mfuzz_fuzz::init("visl"), |data: &[u8]| m2mfuzz_fuzz::run(data));
