//! `cargo fuzz run m2m_hantro`: programs for the hantro driver's node (found by driver name;
//! `M2MFUZZ_NODE_HANTRO_VPU=/dev/videoN` overrides).
#![no_main]
libfuzzer_sys::fuzz_target!(init: m2mfuzz_fuzz::init("hantro"), |data: &[u8]| m2mfuzz_fuzz::run(data));
