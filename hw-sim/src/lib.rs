//! gmhsm simulator.
