//! Raw bindings to libxenlight. Filled in by the bindings work.
