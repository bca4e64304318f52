//! gmhsm crypto card firmware.
#![no_std]
extern crate alloc;
