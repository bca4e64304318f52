//! gmhsm client.
