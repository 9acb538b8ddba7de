//! Pieces of the local stack that its integration tests drive directly.

pub mod cors;
pub mod keys;
pub mod pg_net_worker;
pub mod rest;
pub mod standins;
pub mod testing;
