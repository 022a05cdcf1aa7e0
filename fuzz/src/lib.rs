//! Shared by the fuzz targets and by `tests/properties.rs`, which replays the committed
//! seeds through the very same checks in the normal test run.

pub mod checks;
