//! `cargo fuzz run m2m_rga`: programs for the rga driver's node (found by driver name;
//! `M2MFUZZ_NODE_ROCKCHIP_RGA=/dev/videoN` overrides).
#![no_main]
libfuzzer_sys::fuzz_target!(init: m2mfuzz_fuzz::init("rga"), |data: &[u8]| m2mfuzz_fuzz::run(data));
