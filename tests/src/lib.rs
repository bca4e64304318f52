//! End-to-end tests of gmhsm on the simulator live in `tests/`.
