//! gmhsmd library.
