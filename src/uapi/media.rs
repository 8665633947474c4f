//! media.h: device info and the request API.
#![allow(non_camel_case_types)]

/// `struct media_device_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct media_device_info {
    pub driver: [u8; 16],
    pub model: [u8; 32],
    pub serial: [u8; 40],
    pub bus_info: [u8; 32],
    pub media_version: u32,
    pub hw_revision: u32,
    pub driver_version: u32,
    pub reserved: [u32; 31],
}

impl Default for media_device_info {
    fn default() -> Self {
        // SAFETY: all-zero is a valid value of this plain-data struct.
        unsafe { std::mem::zeroed() }
    }
}
