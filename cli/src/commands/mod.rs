//! One module per command: `serve`, `simulate`, and the two device roles.

pub mod customer;
pub mod device;
pub mod friend;
pub mod serve;
pub mod shared;
pub mod simulate;
pub mod views;
