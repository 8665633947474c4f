//! dma-buf.h: CPU access brackets and implicit-sync fence export/import.
#![allow(non_camel_case_types)]

pub const DMA_BUF_SYNC_READ: u64 = 1;
pub const DMA_BUF_SYNC_WRITE: u64 = 2;
pub const DMA_BUF_SYNC_RW: u64 = DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE;
pub const DMA_BUF_SYNC_START: u64 = 0;
pub const DMA_BUF_SYNC_END: u64 = 4;

/// `struct dma_buf_sync`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct dma_buf_sync {
    pub flags: u64,
}

/// `struct dma_buf_export_sync_file`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct dma_buf_export_sync_file {
    pub flags: u32,
    pub fd: i32,
}

/// `struct dma_buf_import_sync_file`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct dma_buf_import_sync_file {
    pub flags: u32,
    pub fd: i32,
}
