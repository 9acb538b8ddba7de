//! What the database tests share.

pub use local_stack::testing::database_url;
