//! What the database tests share.

/// The test database's URL: `./scripts/test` starts a throwaway database and sets it.
pub fn database_url() -> String {
    std::env::var("TRIPSAGE_TEST_DB_URL").unwrap_or_else(|_| {
        panic!(
            "TRIPSAGE_TEST_DB_URL is not set: these tests need the TripSage database. \
             Run ./scripts/test, or `scripts/db start` and set TRIPSAGE_TEST_DB_URL=$(scripts/db url)"
        )
    })
}
