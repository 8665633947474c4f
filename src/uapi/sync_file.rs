//! sync_file.h and the sw_sync debugfs interface (drivers/dma-buf/sw_sync.c; no public header).
#![allow(non_camel_case_types)]

/// `struct sync_merge_data`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct sync_merge_data {
    pub name: [u8; 32],
    pub fd2: i32,
    pub fence: i32,
    pub flags: u32,
    pub pad: u32,
}

/// `struct sync_fence_info`; `status` is 1 signalled, 0 active, negative an error.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct sync_fence_info {
    pub obj_name: [u8; 32],
    pub driver_name: [u8; 32],
    pub status: i32,
    pub flags: u32,
    pub timestamp_ns: u64,
}

/// `struct sync_file_info`; `sync_fence_info` is a user pointer to `num_fences` entries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct sync_file_info {
    pub name: [u8; 32],
    pub status: i32,
    pub flags: u32,
    pub num_fences: u32,
    pub pad: u32,
    pub sync_fence_info: u64,
}

/// `struct sw_sync_create_fence_data` (sw_sync.c).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct sw_sync_create_fence_data {
    pub value: u32,
    pub name: [u8; 32],
    pub fence: i32,
}
