//! One module per command: `serve`, `simulate`, the two device roles, and `admin`.

pub mod admin;
pub mod customer;
pub mod device;
pub mod friend;
pub mod serve;
pub mod shared;
pub mod simulate;
pub mod views;
